"""The README's backfill example, for real: `make up`'s Airflow (scheduler, executor, api-server)
plus `airflow backfill create` reprocesses exactly the videos that arrived in the window."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from tests.fixtures import clips
from tests.fixtures.env import user_environment
from tests.fixtures.net import free_port, wait_for
from tools import local_postgres
from tools.airflow_env import airflow_environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_backfill_create_reprocesses_the_window_s_videos(tmp_path, whisper_tiny_env, monkeypatch):
    data_dir, home, port = tmp_path / "data", tmp_path / "airflow", free_port()
    storage = data_dir / "storage"
    env = {
        **user_environment(),
        **whisper_tiny_env,
        "VIDEO_PIPELINE_DATA_DIR": str(data_dir),
        "VIDEO_PIPELINE_LOCAL_ROOT": str(storage),
        "AIRFLOW_HOME": str(home),
        "VIDEO_PIPELINE_UI_PORT": str(port),
        "VIDEO_PIPELINE_ANALYZER": "offline",
        "VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work"),
    }
    # Two finished videos that arrived in different hours of a past day.
    for name, text in (("monday standup.mp4", "We ship the release today."), ("later.mp4", "Lunch is at noon.")):
        clips.make_speech_video(storage / "completed" / name, text)

    output = open(tmp_path / "standalone.out", "w")  # a file, not a pipe nobody reads
    standalone = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "standalone.py")],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        pg = wait_for(lambda: local_postgres.running(data_dir / "postgres"), 120, "PostgreSQL")
        results_dsn = pg.dsn("video_pipeline")
        airflow_env = airflow_environment(pg.port, home, env)

        from include.video_pipeline.hooks.results_db import ResultsDbHook

        # This process seeds the results DB through the hook; monkeypatch, so that the connection
        # does not outlive the test and point later stacks in this worker at a stopped server.
        monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", results_dsn)
        hook = ResultsDbHook(postgres_conn_id="postgres_default")
        hook.migrate()
        with hook.cursor() as cur:
            for vid, key, hour in (("standup-1", "monday standup.mp4", 10), ("later-1", "later.mp4", 12)):
                cur.execute(
                    "INSERT INTO videos (video_id, bucket, source_key, etag, size_bytes, state, claims, uploaded_at)"
                    " VALUES (%s, %s, %s, 'e', %s, 'completed', 1, %s)",
                    (vid, str(storage), key, (storage / "completed" / key).stat().st_size, f"2026-11-20 {hour}:20+00"),
                )
        hook.close()

        wait_for(lambda: _health(port), 300, "the Airflow api-server", interval=3)
        wait_for(
            lambda: (
                subprocess.run(
                    [str(Path(sys.executable).parent / "airflow"), "dags", "details", "video_pipeline"],
                    env=airflow_env,
                    capture_output=True,
                    text=True,
                ).returncode
                == 0
            ),
            180,
            "the DAG to be parsed",
            interval=5,
        )
        created = subprocess.run(
            [
                str(Path(sys.executable).parent / "airflow"),
                "backfill",
                "create",
                "--dag-id",
                "video_pipeline",
                "--from-date",
                "2026-11-20T10:00:00+00:00",
                "--to-date",
                "2026-11-20T10:00:00+00:00",
                "--reprocess-behavior",
                "completed",
            ],
            env=airflow_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stdout + created.stderr

        def backfill_done():
            with psycopg2.connect(pg.dsn("airflow")) as conn, conn.cursor() as cur:
                cur.execute("SELECT state FROM dag_run WHERE dag_id = 'video_pipeline' AND run_type = 'backfill'")
                states = [r[0] for r in cur.fetchall()]
            return states if states and all(s in ("success", "failed") for s in states) else None

        states = wait_for(backfill_done, 420, "the backfill run to finish", interval=5)
        assert states == ["success"]

        with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT video_id, state, claims FROM videos ORDER BY video_id")
            assert cur.fetchall() == [("later-1", "completed", 1), ("standup-1", "completed", 2)]
            cur.execute("SELECT video_id, text FROM transcripts WHERE is_current")
            transcripts = dict(cur.fetchall())
        assert set(transcripts) == {"standup-1"}
        assert "release" in transcripts["standup-1"].lower()
        assert (storage / "completed" / "monday standup.mp4").is_file()
        assert (storage / "outputs" / "standup-1" / "manifest.json").is_file()
    finally:
        os.killpg(standalone.pid, signal.SIGINT)
        try:
            standalone.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(standalone.pid, signal.SIGKILL)
        output.close()
        local_postgres.stop(data_dir / "postgres")


def _health(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False
