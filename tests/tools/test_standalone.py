"""``make up`` for real: tools/standalone.py starts Airflow, prints the login, and Ctrl-C leaves nothing behind.

The whole stack runs (local PostgreSQL, ``airflow db migrate``, ``airflow
standalone`` with api-server, scheduler, dag-processor and triggerer) in a
temporary AIRFLOW_HOME and data folder, on a free port. On a 2-core machine the
UI answers one to two minutes after the start.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.net import free_port
from tools import local_postgres

ROOT = Path(__file__).resolve().parents[2]
STANDALONE = ROOT / "tools" / "standalone.py"

SETUP_TIMEOUT = 240  # PostgreSQL + db migrate + pools (~30-60 s) and the UI (~60-150 s)
BANNER_TIMEOUT = 60
STOP_TIMEOUT = 45  # standalone.py waits 20 s after SIGTERM before SIGKILL


def _group(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = raw[raw.rfind(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def _health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _wait_for(predicate, timeout: float, process: subprocess.Popen, log: Path, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"standalone.py exited ({process.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(1)
    pytest.fail(f"no {what} after {timeout} s:\n{log.read_text()[-4000:]}")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="process-group bookkeeping reads /proc")
def test_make_up_serves_the_ui_prints_the_password_and_stops_every_process(tmp_path: Path) -> None:
    airflow_home = tmp_path / "airflow"
    data_dir = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIDEO_PIPELINE_"))}
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        VIDEO_PIPELINE_DATA_DIR=str(data_dir),
        VIDEO_PIPELINE_UI_PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "standalone.out"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(STANDALONE)],
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    airflow_group: int | None = None
    try:
        found = _wait_for(
            lambda: re.search(r"process group (\d+)", log.read_text()),
            SETUP_TIMEOUT,
            process,
            log,
            "airflow standalone start",
        )
        airflow_group = int(found.group(1))
        assert airflow_group != process.pid

        health = _wait_for(lambda: _health(port), SETUP_TIMEOUT, process, log, f"health answer on port {port}")
        assert health["metadatabase"]["status"] == "healthy"

        printed = _wait_for(
            lambda: re.search(r"Login:\s+user '(\w+)'\s+password (\S+)", log.read_text()),
            BANNER_TIMEOUT,
            process,
            log,
            "password in the banner",
        )
        stored = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
        assert stored == {printed.group(1): printed.group(2)}
        output = log.read_text()
        assert f"http://127.0.0.1:{port}" in output
        assert str(data_dir / "storage" / "pending") in output
        assert (data_dir / "storage" / "pending").is_dir()
        assert "one_shot" in output
        assert len(_group(airflow_group)) >= 5  # standalone + api-server, scheduler, dag-processor, triggerer

        # What Ctrl-C in the terminal does: SIGINT to standalone.py's own group, which
        # Airflow is not part of.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"standalone.py still running {STOP_TIMEOUT} s after SIGINT:\n{log.read_text()[-4000:]}")
        assert process.returncode == 0, log.read_text()[-4000:]
        assert _group(airflow_group) == [], f"left behind: {_group(airflow_group)}"
        assert _group(process.pid) == []
        assert "every Airflow process has stopped" in log.read_text()
        assert _health(port) is None
    finally:
        for pgid in (process.pid, airflow_group):
            if pgid is not None and _group(pgid):
                os.killpg(pgid, signal.SIGKILL)
        if process.poll() is None:
            process.wait(timeout=10)
        # standalone.py leaves PostgreSQL running on purpose (make down stops it).
        local_postgres.stop(data_dir / "postgres")
