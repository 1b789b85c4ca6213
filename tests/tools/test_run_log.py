"""Every `make run` keeps its own log; ``last_run.log`` points at the newest."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tools.run_pipeline import run_log_path


def test_each_run_gets_its_own_log_and_the_latest_is_linked(tmp_path):
    first = run_log_path(tmp_path, datetime.now(UTC))
    first.write_text("first run")
    time.sleep(1.1)  # the file name has second resolution (plus the process id)
    second = run_log_path(tmp_path, datetime.now(UTC))
    second.write_text("second run")
    assert first != second and first.read_text() == "first run"
    assert (tmp_path / "last_run.log").read_text() == "second run"
    assert sorted(p.name for p in (tmp_path / "logs" / "make-run").iterdir()) == sorted([first.name, second.name])
