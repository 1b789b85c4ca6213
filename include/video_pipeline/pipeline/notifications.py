"""Telling people a video finished, failed, or a run ended: webhook, Slack, Telegram.

A notification must never fail a video: every public function here logs and
returns, whatever goes wrong (no channel configured, an endpoint down, a
provider not installed). Channels:

* **webhook** (signed JSON, see ``hooks/webhook.py``): the connection
  ``video_pipeline_webhook`` or ``VIDEO_PIPELINE_WEBHOOK_URL`` / ``_SECRET``;
* **Slack**: the connection ``video_pipeline_slack`` (type ``slackwebhook``)
  through ``SlackWebhookNotifier`` from ``apache-airflow-providers-slack``;
* **Telegram**: the connection ``video_pipeline_telegram`` (type ``telegram``,
  password = bot token, host = chat id) through ``TelegramHook`` from
  ``apache-airflow-providers-telegram`` (4.10 ships a hook and an operator but
  no notifier class, so the hook is called the way its operator does).

Slack and Telegram are optional: configured by connection only, and their
providers are listed in ``requirements-notify.txt``, not in the image. A
connection without its provider installed is reported once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from include.video_pipeline.config import Settings
from include.video_pipeline.core.report import REPORT_NAME
from include.video_pipeline.core.states import error_report_key, run_summary_key

log = logging.getLogger(__name__)

SLACK_CONN_ID = "video_pipeline_slack"
TELEGRAM_CONN_ID = "video_pipeline_telegram"
VIDEO_EVENTS = {"completed": "video.completed", "failed": "video.failed"}
RUN_EVENT = "run.finished"
# A run of 1000 videos must not become a megabyte webhook; the full list is in outputs/_runs/.
MAX_FAILURES_IN_RUN_EVENT = 50

_warned: set[str] = set()


def _uri(settings: Settings, key: str) -> str:
    if settings.storage == "local":
        return str(settings.local_root / key)
    return f"{settings.location}/{key}"  # s3:// or gs://


def video_event(settings: Settings, row: Mapping[str, Any], state: str) -> dict[str, Any]:
    """The event for one settled video, from its ledger row and the state it moved to.

    :param row: the ``videos`` row (``ResultsDbHook.get_video``), read before or after the move.
    :param state: ``completed`` or ``failed``.
    """
    vid = str(row.get("video_id"))
    source_key = str(row.get("source_key") or "")
    event: dict[str, Any] = {
        "video_id": vid,
        "state": state,
        "source_key": source_key,
        "name": source_key.rsplit("/", 1)[-1],
        "size_bytes": row.get("size_bytes"),
        "run_id": row.get("claim_run_id"),
        "location": settings.location,
    }
    if state == "completed":
        prefix = f"{settings.output_prefix}{vid}/"
        event["outputs_prefix"] = prefix
        event["report_key"] = prefix + REPORT_NAME
        event["report_uri"] = _uri(settings, prefix + REPORT_NAME)
    else:
        error = dict(row.get("error") or row.get("last_error") or {})
        event["error"] = {k: error.get(k) for k in ("stage", "reason", "error_class", "message", "retryable")}
        event["error_report_key"] = error_report_key(source_key, settings.prefixes) if source_key else None
    return event


def notify_video(settings: Settings, event: Mapping[str, Any]) -> None:
    """Announce a video that reached ``completed`` or ``failed``; never raises."""
    try:
        state = str(event.get("state"))
        kind = VIDEO_EVENTS.get(state)
        if kind is None:
            log.debug("No notification for state %r", state)
            return
        _send(kind, dict(event), _video_text(event))
    except Exception:
        log.exception("Could not send the notification for video %s", event.get("video_id"))


def notify_run(settings: Settings, summary: Mapping[str, Any]) -> None:
    """Announce the end of a run with its summary (``run_summary.build_run_summary``); never raises."""
    try:
        run_id = str(summary.get("run_id"))
        failures = [f for f in summary.get("failures") or [] if isinstance(f, Mapping)]
        data = {
            "run_id": run_id,
            "status": summary.get("status"),
            "counts": summary.get("counts") or {},
            "wall_seconds": summary.get("wall_seconds"),
            "stages": summary.get("stages") or {},
            "failures": failures[:MAX_FAILURES_IN_RUN_EVENT],
            "failures_omitted": max(0, len(failures) - MAX_FAILURES_IN_RUN_EVENT),
            "summary_key": run_summary_key(settings.output_prefix, run_id),
            "summary_uri": _uri(settings, run_summary_key(settings.output_prefix, run_id)),
        }
        _send(RUN_EVENT, data, _run_text(data))
    except Exception:
        log.exception("Could not send the run notification for %s", summary.get("run_id"))


# -- texts for chat channels ----------------------------------------------------------


def _video_text(event: Mapping[str, Any]) -> str:
    name = event.get("name") or event.get("source_key")
    if event.get("state") == "completed":
        return f"Video processed: {name}\nReport: {event.get('report_uri')}"
    error = event.get("error") or {}
    reason = error.get("reason") or error.get("error_class") or "error"
    return f"Video failed: {name}\nStage: {error.get('stage')}, {reason}: {error.get('message')}"


def _run_text(data: Mapping[str, Any]) -> str:
    counts = data.get("counts") or {}
    parts = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
    lines = [f"Run {data.get('run_id')} {data.get('status')}: {parts or 'nothing to do'}"]
    for failure in data.get("failures") or []:
        lines.append(f"- {failure.get('source_key')}: {failure.get('reason') or 'error'} at {failure.get('stage')}")
    lines.append(f"Summary: {data.get('summary_uri')}")
    return "\n".join(lines)


def slack_escape(text: str) -> str:
    """Slack reads ``<!channel>`` and ``<url|label>`` in message text: a file name must not ping anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- channels -------------------------------------------------------------------------


def _send(event: str, data: dict[str, Any], text: str) -> None:
    # Each channel on its own: Slack being down must not keep the webhook from firing.
    for name, channel in (("webhook", _webhook), ("slack", _slack), ("telegram", _telegram)):
        try:
            channel(event, data, text)
        except Exception:
            log.exception("Notification channel %s failed for %s", name, event)


def _webhook(event: str, data: dict[str, Any], text: str) -> None:
    from include.video_pipeline.hooks.webhook import WebhookHook

    hook = WebhookHook()
    if hook.configured:
        hook.send(event, data)


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception:
        return False
    return True


def _provider_missing(conn_id: str, package: str) -> None:
    if conn_id not in _warned:
        _warned.add(conn_id)
        log.warning(
            "Connection %r is set but %s is not installed, so nothing is sent there; "
            "install it with: pip install -r requirements-notify.txt",
            conn_id,
            package,
        )


def _via_provider(conn_id: str, package: str, send: Callable[[], None]) -> None:
    if not _connection_exists(conn_id):
        return
    try:
        send()
    except ImportError:
        _provider_missing(conn_id, package)


def _slack(event: str, data: dict[str, Any], text: str) -> None:
    def send() -> None:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        # notify() directly, not the notifier's __call__: that renders the text as a
        # Jinja template, and a file name like "{{ conn.x.password }}" is user content.
        SlackWebhookNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=slack_escape(text)).notify({})

    _via_provider(SLACK_CONN_ID, "apache-airflow-providers-slack", send)


def _telegram(event: str, data: dict[str, Any], text: str) -> None:
    def send() -> None:
        from airflow.providers.telegram.hooks.telegram import TelegramHook

        # No parse_mode: the text goes out as plain text, so names need no escaping.
        TelegramHook(telegram_conn_id=TELEGRAM_CONN_ID).send_message({"text": text})

    _via_provider(TELEGRAM_CONN_ID, "apache-airflow-providers-telegram", send)
