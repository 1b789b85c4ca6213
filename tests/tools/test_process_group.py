"""stop_group leaves nothing behind: not the group, not a child that left it with setsid."""

from __future__ import annotations

import subprocess
import sys
import time

from tools.process_group import descendants, group_members, stop_group

# A leader that ignores SIGTERM (so SIGKILL has to follow), one child in its group and one
# that left it with setsid, as Airflow's forked workers can.
SCRIPT = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
print("ready", flush=True)
time.sleep(120)
"""


def test_a_group_and_its_escaped_child_are_all_stopped():
    leader = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert leader.stdout is not None and leader.stdout.readline().strip() == "ready"
    children = descendants(leader.pid)
    assert len(children) == 2
    assert len(group_members(leader.pid)) == 2  # the leader and the child that stayed

    assert stop_group(leader, grace=1.0) is False  # SIGTERM was ignored: SIGKILL did it
    assert leader.returncode is not None
    assert group_members(leader.pid) == []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def test_a_process_that_exits_on_sigterm_needs_no_sigkill():
    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    time.sleep(0.2)
    assert stop_group(leader, grace=5.0) is True
    assert leader.returncode == -15
