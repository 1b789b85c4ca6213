"""Reading one benchmarked DAG run back: stage seconds from the results database, task times
from Airflow's, and the overhead between them (bench_pipeline.py prints them)."""

from __future__ import annotations

import re
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

STAGES = ("transcode", "transcribe", "analyze", "publish")


def query(dsn: str, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def per_video_stages(results_dsn: str, run_id: str) -> dict[str, dict[str, Any]]:
    videos = query(
        results_dsn,
        "SELECT video_id, source_key, state FROM videos WHERE claim_run_id = %s ORDER BY source_key",
        (run_id,),
    )
    runs = query(
        results_dsn,
        "SELECT video_id, stage, try_number, status, seconds FROM stage_runs WHERE run_id = %s ORDER BY id",
        (run_id,),
    )
    table: dict[str, dict[str, Any]] = {
        v["video_id"]: {"name": Path(v["source_key"]).name, "state": v["state"], "attempts": {}, "status": {}}
        | dict.fromkeys(STAGES, 0.0)
        for v in videos
    }
    for r in runs:
        row = table.get(r["video_id"])
        if row is None or r["stage"] not in STAGES:
            continue
        row[r["stage"]] += float(r["seconds"])  # every attempt costs wall time
        row["attempts"][r["stage"]] = row["attempts"].get(r["stage"], 0) + 1
        row["status"][r["stage"]] = r["status"]
    for row in table.values():
        row["critical_path"] = max(row["transcode"], row["transcribe"] + row["analyze"]) + row["publish"]
        row["serial_work"] = sum(row[s] for s in STAGES)
    return table


def airflow_task_times(airflow_dsn: str, run_id: str) -> dict[str, Any]:
    rows = query(
        airflow_dsn,
        "SELECT task_id, map_index, state, EXTRACT(EPOCH FROM (end_date - start_date)) AS seconds,"
        " start_date, end_date FROM task_instance WHERE run_id = %s",
        (run_id,),
    )
    timed = [r for r in rows if r["seconds"] is not None]
    by_task: dict[str, float] = {}
    for r in timed:
        by_task[r["task_id"]] = by_task.get(r["task_id"], 0.0) + float(r["seconds"])
    span = None
    if timed:
        span = (max(r["end_date"] for r in timed) - min(r["start_date"] for r in timed)).total_seconds()
    return {
        "task_instances": len(rows),
        "seconds_by_task": {k: round(v, 3) for k, v in sorted(by_task.items())},
        "sum_seconds": round(sum(by_task.values()), 3),
        "first_start_to_last_end": round(span, 3) if span is not None else None,
        "states": sorted({str(r["state"]) for r in rows}),
    }


def overhead_breakdown(
    started: float, ended: float, phases: dict[str, float], tasks: dict[str, Any], serial_work: float
) -> dict[str, float]:
    """Split wall - serial stage work into where it goes; the parts add up to that difference."""
    by_task = tasks["seconds_by_task"]
    span = tasks["first_start_to_last_end"] or 0.0
    stage_task_time = sum(by_task.get(f"video.{s}", 0.0) for s in STAGES)
    other_tasks = {k: v for k, v in by_task.items() if not k.startswith("video.")}
    dag_test = phases["dag_test_done"] - phases["dag_parsed"]
    parts = {
        "child_interpreter_start": phases["main"] - started,
        "child_import_airflow": phases["airflow_imported"] - phases["main"],
        "child_parse_dag": phases["dag_parsed"] - phases["airflow_imported"],
        "dag_test_outside_tasks": dag_test - span,  # DAG sync, run creation, in-process API start, teardown
        "gaps_between_tasks": span - tasks["sum_seconds"],
        "stage_tasks_beyond_stage_seconds": stage_task_time - serial_work,  # ledger checks, XCom, callbacks
        **{f"task_{k}": v for k, v in other_tasks.items()},  # sensor, claim, reconcile
        "child_exit": ended - phases["dag_test_done"],
    }
    return {k: round(v, 3) for k, v in parts.items()}


def task_start_latency(log_text: str) -> dict[str, float] | None:
    """Seconds from dag.test's "running task" to the task's "Task started": first task vs the others."""
    stamp = r"^(\d{4}-\d\d-\d\dT[\d:.]+)Z"
    events = re.findall(stamp + r".*?(\[DAG TEST\] running task|\] Task started )", log_text, flags=re.M)
    delays: list[float] = []
    pending: datetime | None = None
    for when, what in events:
        moment = datetime.fromisoformat(when)
        if "running task" in what:
            pending = moment
        elif pending is not None:
            delays.append((moment - pending).total_seconds())
            pending = None
    if not delays:
        return None
    rest = delays[1:] or [0.0]
    return {"first": round(delays[0], 3), "median_others": round(statistics.median(rest), 3)}


def model_load_seconds(log_text: str) -> list[float]:
    """Every "model loaded in X s" the Whisper hook logged (the cached value repeats)."""
    return [float(x) for x in re.findall(r"model loaded in ([0-9.]+) s", log_text)]


def stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "max": max(values)} if values else {"mean": 0.0, "max": 0.0}
