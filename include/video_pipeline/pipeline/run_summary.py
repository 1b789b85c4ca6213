"""The per-run summary: what a run did, how long it took, and what failed and why.

The reconcile task builds it at the end of every run from its ``ReconcileReport``
and the ledger (``videos`` and ``stage_runs``), logs it as a table and writes it
to ``outputs/_runs/<run id>.json`` for dashboards and people. A summary is an
aid, never a reason to fail a run whose videos are already settled: database
and store errors here are logged and the summary goes out with what is known.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from include.video_pipeline.config import Settings
from include.video_pipeline.core.states import run_summary_key
from include.video_pipeline.pipeline.reconcile import ReconcileReport
from include.video_pipeline.storage.base import ObjectStore

log = logging.getLogger(__name__)

SUMMARY_VERSION = 1
STAGE_ORDER = ("transcode", "transcribe", "analyze", "publish")


class LedgerReader(Protocol):
    """What the summary reads from ``ResultsDbHook``."""

    def videos_for_run(self, run_id: str) -> list[dict[str, Any]]: ...

    def stage_runs_for_run(self, run_id: str) -> list[dict[str, Any]]: ...


def _seconds_between(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return round((end - start).total_seconds(), 3)
    return None


def busy_seconds(rows: Iterable[Mapping[str, Any]]) -> float:
    """Seconds in which at least one of the stage attempts ``rows`` was working (overlaps counted once).

    Transcode and transcribe run side by side, so a video's working time is the
    union of its stage intervals, not their sum.
    """
    intervals = sorted(
        (row["started_at"], row["started_at"] + timedelta(seconds=float(row.get("seconds") or 0.0)))
        for row in rows
        if isinstance(row.get("started_at"), datetime)
    )
    total = 0.0
    current_start = current_end = None
    for start, end in intervals:
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += (current_end - current_start).total_seconds()
    return round(total, 3)


def summarize_stages(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per stage: attempts, how they ended, reuses of a duplicate's result, and total / mean / max seconds."""
    stages: dict[str, dict[str, Any]] = {}
    for row in rows:
        stage = str(row.get("stage"))
        seconds = float(row.get("seconds") or 0.0)
        entry = stages.setdefault(
            stage, {"attempts": 0, "statuses": {}, "reused": 0, "total_seconds": 0.0, "max_seconds": 0.0}
        )
        entry["attempts"] += 1
        entry["reused"] += int(bool(row.get("reused_from")))
        status = str(row.get("status"))
        entry["statuses"][status] = entry["statuses"].get(status, 0) + 1
        entry["total_seconds"] += seconds
        entry["max_seconds"] = max(entry["max_seconds"], seconds)
    for entry in stages.values():
        entry["mean_seconds"] = round(entry["total_seconds"] / entry["attempts"], 3)
        entry["total_seconds"] = round(entry["total_seconds"], 3)
        entry["max_seconds"] = round(entry["max_seconds"], 3)
    order = {name: i for i, name in enumerate(STAGE_ORDER)}
    return dict(sorted(stages.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def build_run_summary(report: ReconcileReport, db: LedgerReader) -> dict[str, Any]:
    """The run's summary as plain JSON types; call it right after ``reconcile`` with the same db."""
    counts = {**report.to_dict()["counts"], "errors": len(report.errors)}
    summary: dict[str, Any] = {
        "summary_version": SUMMARY_VERSION,
        "run_id": report.run_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # Mirrors what reconcile does to the run: red on infrastructure failures or
        # unsettled videos; a rejected upload (bad input) leaves the run green.
        "status": "failed" if report.errors or report.infrastructure_failures else "succeeded",
        "counts": counts,
        "videos": [],
        "stages": {},
        "wall_seconds": None,
        "failures": [dict(f) for f in report.failed],
        "swept": list(report.swept),
        "orphans_returned": list(report.orphans_returned),
        "errors": list(report.errors),
    }
    try:
        videos = db.videos_for_run(report.run_id)
        stage_rows = db.stage_runs_for_run(report.run_id)
    except Exception as exc:
        log.exception("Run summary: could not read the ledger for %s; summarising without timings", report.run_id)
        summary["ledger_error"] = f"{type(exc).__name__}: {exc}"
        return summary

    per_video: dict[str, dict[str, float]] = {}
    rows_of: dict[str, list[Mapping[str, Any]]] = {}
    reused_of: dict[str, dict[str, str]] = {}
    for row in stage_rows:
        vid = str(row["video_id"])
        stages = per_video.setdefault(vid, {})
        stages[str(row["stage"])] = round(stages.get(str(row["stage"]), 0.0) + float(row.get("seconds") or 0.0), 3)
        rows_of.setdefault(vid, []).append(row)
        if row.get("reused_from"):
            reused_of.setdefault(vid, {})[str(row["stage"])] = str(row["reused_from"])
    summary["stages"] = summarize_stages(stage_rows)
    summary["counts"]["reused_stages"] = sum(len(r) for r in reused_of.values())

    starts, ends = [], []
    for row in videos:
        vid = str(row["video_id"])
        claimed, finished = row.get("claimed_at"), row.get("finished_at")
        if isinstance(claimed, datetime):
            starts.append(claimed)
        if isinstance(finished, datetime):
            ends.append(finished)
        error = row.get("error") or {}
        total = _seconds_between(claimed, finished)
        working = busy_seconds(rows_of.get(vid, []))
        summary["videos"].append(
            {
                "video_id": vid,
                "source_key": row.get("source_key"),
                "state": row.get("state"),
                "size_bytes": row.get("size_bytes"),
                # claimed -> settled; of that, the time a stage of this video was working,
                # and the rest: queued behind other videos (pool and executor slots) or waiting
                # for a duplicate's result.
                "seconds": total,
                "working_seconds": working,
                "queued_seconds": None if total is None else round(max(total - working, 0.0), 3),
                "stage_seconds": per_video.get(vid, {}),
                # stage -> the video whose result this one reused (same content and settings)
                "reused": reused_of.get(vid, {}),
                "outputs_prefix": row.get("outputs_prefix"),
                "reason": error.get("reason") if row.get("state") == "failed" else None,
            }
        )
    if starts and ends:
        summary["wall_seconds"] = _seconds_between(min(starts), max(ends))
    try:
        from include.video_pipeline.hooks.provider_state import provider_check, spend_report

        summary["provider_check"] = provider_check(db, report.run_id)
        spend = spend_report(db, report.run_id)
    except Exception:
        log.warning("Run summary: could not read the analysis spend of %s", report.run_id, exc_info=True)
    else:
        summary["analysis_spend"] = spend
        per_video_usd = {v["video_id"]: v["usd"] for v in spend["videos"]}
        for video in summary["videos"]:
            video["analysis_usd"] = per_video_usd.get(video["video_id"], 0.0)
    return summary


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def format_run_summary(summary: Mapping[str, Any]) -> str:
    """The summary as aligned text tables for the task log."""
    counts = summary.get("counts") or {}
    lines = [f"Run {summary.get('run_id')}: {summary.get('status')}, wall {_cell(summary.get('wall_seconds'))} s"]
    lines.append(f"{'outcome':<18} {'videos':>6}")
    lines += [f"{name:<18} {count:>6}" for name, count in counts.items()]
    stages = summary.get("stages") or {}
    if stages:
        lines.append("")
        lines.append(
            f"{'stage':<12} {'attempts':>8} {'ok':>4} {'failed':>6} {'reused':>6} {'total s':>9} {'mean s':>8} "
            f"{'max s':>8}"
        )
        for name, entry in stages.items():
            statuses = entry.get("statuses") or {}
            not_ok = sum(n for status, n in statuses.items() if status != "success")
            lines.append(
                f"{name:<12} {entry['attempts']:>8} {statuses.get('success', 0):>4} {not_ok:>6} "
                f"{entry.get('reused', 0):>6} {entry['total_seconds']:>9.1f} {entry['mean_seconds']:>8.1f} "
                f"{entry['max_seconds']:>8.1f}"
            )
    videos = summary.get("videos") or []
    if videos:
        lines.append("")
        width = min(48, max(len(str(v.get("source_key"))) for v in videos))
        lines.append(f"{'video':<{width}} {'state':<10} {'total s':>8} {'working':>8} {'queued':>8}  reused")
        for video in videos:
            name = str(video.get("source_key"))
            name = name if len(name) <= width else name[: width - 1] + "…"
            reused = ", ".join(f"{stage} from {vid}" for stage, vid in (video.get("reused") or {}).items())
            lines.append(
                f"{name:<{width}} {_cell(video.get('state')):<10} {_cell(video.get('seconds')):>8} "
                f"{_cell(video.get('working_seconds')):>8} {_cell(video.get('queued_seconds')):>8}  {reused or '-'}"
            )
    check = summary.get("provider_check") or {}
    if check.get("ok") is False:
        lines.append(f"  analysis provider: {check.get('message')}")
    spend = summary.get("analysis_spend")
    if spend:
        lines.append(
            f"analysis spend: ${spend['run_usd']:.6f} this run, ${spend['day_usd']:.6f} on {spend['day']} (UTC)"
        )
    for failure in summary.get("failures") or []:
        lines.append(
            f"  failed: {failure.get('source_key')} at {failure.get('stage')}: "
            f"{failure.get('reason') or 'error'}: {failure.get('message')}"
        )
    for error in summary.get("errors") or []:
        lines.append(f"  not settled: {error}")
    if summary.get("ledger_error"):
        lines.append(f"  (no timings: {summary['ledger_error']})")
    return "\n".join(lines)


def write_run_summary(store: ObjectStore, settings: Settings, summary: Mapping[str, Any]) -> str | None:
    """Log the summary as a table and write it to ``outputs/_runs/<run id>.json``; returns the key.

    Returns None (after logging why) when the store refuses the write: the run's
    videos are settled by then, and a missing summary must not turn it red.
    """
    log.info("%s", format_run_summary(summary))
    key = run_summary_key(settings.output_prefix, str(summary.get("run_id")))
    try:
        store.put_bytes(
            key,
            json.dumps(summary, ensure_ascii=False, indent=2, default=str).encode("utf-8"),
            content_type="application/json",
        )
    except Exception:
        log.exception("Could not write the run summary to %s", key)
        return None
    log.info("Run summary written to %s", key)
    return key
