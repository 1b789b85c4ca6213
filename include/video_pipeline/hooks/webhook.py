"""WebhookHook: signed JSON POSTs to the team's own endpoint.

Each delivery is one JSON object. The receiver checks where it came from and
that it is fresh with two headers:

* ``X-Video-Pipeline-Timestamp``: Unix seconds when this attempt was signed;
* ``X-Video-Pipeline-Signature``: ``sha256=<hex>``, the HMAC-SHA256 with the
  shared secret of ``<timestamp>.<raw body>``.

The timestamp is inside the signed bytes on purpose: a signature over the body
alone would let anyone who saw one request replay it later with a fresh
timestamp header. Receivers reject timestamps older than a few minutes and may
drop repeats of ``X-Video-Pipeline-Delivery`` (the same on every retry of one
delivery). :func:`verify_signature` is the reference check.

Deliveries are retried with exponential backoff on connection errors, timeouts,
429 and 5xx, a bounded number of times; other 4xx answers are final (retrying
a refused request only repeats the refusal).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

log = logging.getLogger(__name__)

URL_ENV = "VIDEO_PIPELINE_WEBHOOK_URL"
SECRET_ENV = "VIDEO_PIPELINE_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret
SIGNATURE_HEADER = "X-Video-Pipeline-Signature"
TIMESTAMP_HEADER = "X-Video-Pipeline-Timestamp"
EVENT_HEADER = "X-Video-Pipeline-Event"
DELIVERY_HEADER = "X-Video-Pipeline-Delivery"
USER_AGENT = "video-pipeline-webhook/1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def redact_url(url: str) -> str:
    """Scheme and host only: webhook URLs often carry a token in the path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


@dataclass(frozen=True)
class WebhookResult:
    """How one delivery ended. ``delivered`` is true only for a 2xx answer."""

    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None


class WebhookHook(BaseHook):
    """POSTs signed JSON events to a webhook.

    The URL and the secret come from the Airflow connection ``webhook_conn_id``
    (host: the full URL, or host + port + schema as the path; password: the
    secret), else from ``VIDEO_PIPELINE_WEBHOOK_URL`` / ``VIDEO_PIPELINE_WEBHOOK_SECRET``.
    Without a URL nothing is sent; without a secret requests go out unsigned
    (with a warning).

    :param webhook_conn_id: the connection id (default ``video_pipeline_webhook``).
    :param max_attempts: tries per delivery, the first included.
    :param backoff_seconds: wait before the first retry; doubled each time (with jitter).
    :param max_backoff_seconds: the longest single wait.
    :param timeout_seconds: connect and read timeout of each attempt.
    """

    conn_name_attr = "webhook_conn_id"
    default_conn_name = "video_pipeline_webhook"
    conn_type = "http"
    hook_name = "Video pipeline webhook"

    def __init__(
        self,
        webhook_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 4,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 8.0,
        timeout_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__()
        self.webhook_conn_id = webhook_conn_id
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._target: tuple[str | None, str | None] | None = None

    # -- configuration --------------------------------------------------------

    def get_target(self) -> tuple[str | None, str | None]:
        """``(url, secret)`` from the connection, else the environment; None where unset."""
        if self._target is None:
            url, secret = self._from_connection()
            url = url or os.environ.get(URL_ENV, "").strip() or None
            secret = secret or os.environ.get(SECRET_ENV, "").strip() or None
            self._target = (url, secret)
        return self._target

    def _from_connection(self) -> tuple[str | None, str | None]:
        try:
            conn = self.get_connection(self.webhook_conn_id)
        except Exception as exc:
            # No such connection, or no Airflow context to ask: use the environment.
            log.debug("No usable connection %r (%s); trying the environment", self.webhook_conn_id, type(exc).__name__)
            return None, None
        host = (conn.host or "").strip()
        if not host:
            return None, conn.password or None
        if "://" in host:
            url = host
        else:
            # A URI-style connection (https://:secret@host:port/path) keeps the
            # scheme in conn_type and the path in schema; a UI-made HTTP
            # connection may put the scheme in schema instead.
            schema = (conn.schema or "").strip()
            scheme = (
                schema
                if schema in ("http", "https")
                else (conn.conn_type if conn.conn_type in ("http", "https") else "https")
            )
            path = "" if schema in ("http", "https") else schema
            port = f":{conn.port}" if conn.port else ""
            url = f"{scheme}://{host}{port}/{path.lstrip('/')}"
        return url, conn.password or None

    @property
    def configured(self) -> bool:
        return self.get_target()[0] is not None

    # -- delivery -------------------------------------------------------------

    def send(self, event: str, data: Mapping[str, Any]) -> WebhookResult:
        """Deliver one event; returns how it ended and never raises for network or HTTP errors."""
        url, secret = self.get_target()
        if url is None:
            return WebhookResult(delivered=False, attempts=0, error="no webhook configured")
        if urlsplit(url).scheme not in ("http", "https"):
            # urllib would also open file: and ftp: URLs; a webhook is HTTP only.
            log.error("Webhook URL must be http(s); got scheme %r, not sending", urlsplit(url).scheme)
            return WebhookResult(delivered=False, attempts=0, error="not an http(s) URL")
        delivery = str(uuid.uuid4())
        body = json.dumps(
            {
                "event": event,
                "delivery_id": delivery,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "data": data,
            },
            ensure_ascii=False,
            default=str,
        ).encode("utf-8")
        if secret is None:
            log.warning("Webhook %s has no secret (%s): sending unsigned", redact_url(url), SECRET_ENV)
        return self._post(url, secret, event, delivery, body)

    def _post(self, url: str, secret: str | None, event: str, delivery: str, body: bytes) -> WebhookResult:
        where = redact_url(url)
        # The standard library rather than requests: urllib3 logs every request
        # line at DEBUG, and a webhook URL's path is often its credential.
        opener = urllib.request.build_opener(_NoRedirect())
        status: int | None = None
        error: str | None = None
        for attempt in range(1, self.max_attempts + 1):
            # Signed per attempt: a retry after a long backoff still looks fresh.
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                EVENT_HEADER: event,
                DELIVERY_HEADER: delivery,
                TIMESTAMP_HEADER: timestamp,
            }
            if secret is not None:
                headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
            retry_after: float | None = None
            try:
                with opener.open(request, timeout=self.timeout_seconds) as response:
                    status = int(response.status)
            except urllib.error.HTTPError as exc:
                status, error = exc.code, f"HTTP {exc.code}"
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                exc.close()
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                status, error = None, type(reason if isinstance(reason, BaseException) else exc).__name__
            if status is not None and 200 <= status < 300:
                log.info("Webhook %s: %s delivered (attempt %d)", where, event, attempt)
                return WebhookResult(delivered=True, attempts=attempt, status=status)
            if status is not None:
                error = f"HTTP {status}"
                if status != 429 and status < 500:
                    log.error("Webhook %s refused %s with HTTP %d; not retrying", where, event, status)
                    return WebhookResult(delivered=False, attempts=attempt, status=status, error=error)
            if attempt < self.max_attempts:
                wait = retry_after if retry_after is not None else self.backoff_seconds * 2 ** (attempt - 1)
                wait = min(self.max_backoff_seconds, wait) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter
                log.warning(
                    "Webhook %s: %s failed (%s, attempt %d/%d); retrying in %.1f s",
                    where,
                    event,
                    error,
                    attempt,
                    self.max_attempts,
                    wait,
                )
                self._sleep(wait)
        log.error("Webhook %s: giving up on %s after %d attempts (%s)", where, event, self.max_attempts, error)
        return WebhookResult(delivered=False, attempts=self.max_attempts, status=status, error=error)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a new address: following it could hand the signed event elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
