"""The pipeline under Airflow's scheduler and LocalExecutor (what `make up` runs): how much runs in parallel.

`bench_pipeline.py` measures one `dag.test()` run, where tasks run one at a time.
This one starts the real stack (tools/standalone.py: scheduler, LocalExecutor,
api-server, dag-processor) in a temporary folder, drops N speech clips into
pending/, lets the hourly run pick them up, and compares:

* serial work: the sum of every stage's seconds (what a one-at-a-time run does);
* the batch's wall time: from `claim_uploads` starting to `reconcile` ending;
* speedup = serial work / wall, and the per-video critical path
  max(transcode, transcribe + analyze) + publish.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_executor.py [--clips 6] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.clips import make_speech_video  # noqa: E402
from tests.fixtures.models import faster_whisper_tiny_en  # noqa: E402
from tools import local_postgres  # noqa: E402

SENTENCES = [
    "The quarterly report shows steady growth in every region and a strong pipeline for next year.",
    "Please send the signed contract to the legal team before the end of the week.",
    "Our new studio opens in March and tickets for the first concert go on sale next Monday.",
    "The engineering team fixed the login problem and the release goes out tomorrow morning.",
    "Customer interviews suggest that onboarding is still too long for small businesses.",
    "The budget for the marketing campaign was approved with a small increase for video ads.",
    "We will move the weekly meeting to Thursday afternoon because of the holiday on Monday.",
    "Thank you all for coming today, and special thanks to the volunteers who made this possible.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def _query(dsn: str, sql: str, *params):
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vp-bench-executor-"))
    data_dir, storage, home, port = work / "data", work / "data" / "storage", work / "airflow", _free_port()
    for index in range(args.clips):
        make_speech_video(storage / "pending" / f"clip {index:02d}.mp4", SENTENCES[index % len(SENTENCES)])

    env = {
        **os.environ,
        "VIDEO_PIPELINE_DATA_DIR": str(data_dir),
        "VIDEO_PIPELINE_LOCAL_ROOT": str(storage),
        "AIRFLOW_HOME": str(home),
        "VIDEO_PIPELINE_UI_PORT": str(port),
        "VIDEO_PIPELINE_ANALYZER": "offline",
        "VIDEO_PIPELINE_WHISPER_MODEL": str(faster_whisper_tiny_en()),
        "VIDEO_PIPELINE_SENSOR_POKE_SECONDS": "5",
        "VIDEO_PIPELINE_WORK_DIR": str(work / "tmp"),
        "HF_HUB_OFFLINE": "1",
        "VIDEO_PIPELINE_ENV_FILE": os.devnull,
    }
    log = open(work / "standalone.out", "w")
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "standalone.py")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() - started > args.timeout:
                raise RuntimeError(f"standalone did not come up; see {work / 'standalone.out'}")
            time.sleep(2)
        print(
            f"Airflow up in {time.monotonic() - started:.0f}s; waiting for the hourly run to process "
            f"{args.clips} clips …",
            flush=True,
        )
        pg = local_postgres.running(data_dir / "postgres")
        assert pg is not None
        results, metadata = pg.dsn("video_pipeline"), pg.dsn("airflow")
        while True:
            if time.monotonic() - started > args.timeout:
                raise TimeoutError("the batch did not finish in time")
            try:
                rows = _query(
                    results, "SELECT count(*) FILTER (WHERE state IN ('completed', 'failed')), count(*) FROM videos"
                )
            except Exception:
                rows = [(0, 0)]
            done, total = rows[0]
            if total == args.clips and done == total:
                runs = _query(
                    metadata,
                    "SELECT state FROM task_instance WHERE task_id = 'reconcile' AND state IN ('success', 'failed')",
                )
                if runs:
                    break
            time.sleep(3)

        (run_id,) = _query(results, "SELECT DISTINCT claim_run_id FROM videos")[0]
        window = _query(
            metadata,
            "SELECT min(start_date) FILTER (WHERE task_id = 'claim_uploads'),"
            " max(end_date) FILTER (WHERE task_id = 'reconcile') FROM task_instance WHERE run_id = %s",
            run_id,
        )[0]
        wall = (window[1] - window[0]).total_seconds()
        stages = _query(
            results,
            "SELECT video_id, stage, sum(seconds) FROM stage_runs GROUP BY video_id, stage",
        )
        per_video: dict[str, dict[str, float]] = {}
        for vid, stage, seconds in stages:
            per_video.setdefault(vid, {})[stage] = float(seconds)
        durations = [float(r[0]) for r in _query(results, "SELECT (media->'probe'->>'duration')::float FROM videos")]
        media_seconds = sum(durations)
        serial = sum(sum(s.values()) for s in per_video.values())
        critical = [
            max(s.get("transcode", 0), s.get("transcribe", 0) + s.get("analyze", 0)) + s.get("publish", 0)
            for s in per_video.values()
        ]
        task_overhead = _query(
            metadata,
            "SELECT avg(extract(epoch FROM (end_date - start_date))) FROM task_instance"
            " WHERE run_id = %s AND task_id LIKE 'video.%%'",
            run_id,
        )[0][0]
        result = {
            "clips": args.clips,
            "media_seconds": round(media_seconds, 1),
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "wall_seconds": round(wall, 1),
            "serial_stage_seconds": round(serial, 1),
            "sum_critical_paths": round(sum(critical), 1),
            "mean_critical_path": round(statistics.mean(critical), 2),
            "speedup_vs_serial": round(serial / wall, 2) if wall else None,
            "realtime_factor": round(media_seconds / wall, 2) if wall else None,
            "mean_task_seconds_incl_startup": round(float(task_overhead or 0), 2),
            "per_stage_mean": {
                stage: round(statistics.mean(s[stage] for s in per_video.values() if stage in s), 2)
                for stage in ("transcode", "transcribe", "analyze", "publish")
            },
        }
        print(json.dumps(result, indent=2))
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / f"executor-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2))
        return 0
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        local_postgres.stop(data_dir / "postgres")
        log.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
