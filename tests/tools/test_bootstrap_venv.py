"""The install decisions for the machines users have: Debian 12, Ubuntu 22.04 and 24.04.

tools/bootstrap_venv.sh (which Python makes .venv, and what apt-get must add) and
tools/ensure_system_packages.sh (which system packages, from apt or snap) run here
with ``--plan`` against simulated machines: a PATH of small executables that answer
like the real interpreters, uv, apt-get and sudo do, and an os-release file. One
test then creates a real virtualenv with this machine's own interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "tools" / "bootstrap_venv.sh"
SYSTEM = ROOT / "tools" / "ensure_system_packages.sh"
BASH = shutil.which("bash") or "/bin/bash"

OS_RELEASES = {
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
    "ubuntu-22.04": 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n',
    "ubuntu-24.04": 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n',
    "debian-11": 'NAME="Debian GNU/Linux"\nVERSION_ID="11"\nID=debian\n',
    "mint-21": 'NAME="Linux Mint"\nVERSION_ID="21.3"\nID=linuxmint\nID_LIKE="ubuntu debian"\n',
}


class Machine:
    """A simulated machine: fake executables on an otherwise empty PATH, and an os-release."""

    def __init__(self, root: Path, os_release: str, *, root_user: bool = True) -> None:
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.os_release = root / "os-release"
        self.os_release.write_text(OS_RELEASES[os_release])
        self.euid = "0" if root_user else "1000"

    def tool(self, name: str, script: str = "exit 0") -> Path:
        path = self.bin / name
        path.write_text(f"#!{BASH}\n{script}\n")
        path.chmod(0o755)
        return path

    def python(self, name: str, version: str, *, venv: bool, pip: bool = False) -> Path:
        # Answers the three probes the script makes: version, `import ensurepip, venv`, `-m pip`.
        return self.tool(
            name,
            f"""case "$*" in
  *version_info*) echo {version} ;;
  *ensurepip*) exit {0 if venv else 1} ;;
  "-m pip --version") exit {0 if pip else 1} ;;
  *) exit 3 ;;
esac""",
        )

    def run(self, script: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BASH, str(script), *args],
            env={
                "PATH": str(self.bin),
                "HOME": str(self.bin.parent / "home"),
                "BOOTSTRAP_OS_RELEASE": str(self.os_release),
                "BOOTSTRAP_EUID": self.euid,
                **env,
            },
            capture_output=True,
            text=True,
            timeout=30,
        )

    def plan(self, **env: str) -> dict[str, str]:
        result = self.run(BOOTSTRAP, "--plan", **env)
        assert result.returncode == 0, result.stderr
        return dict(part.split("=", 1) for part in result.stdout.split())

    def refusal(self, script: Path = BOOTSTRAP, *args: str) -> str:
        """The one sentence a machine that cannot be set up gets (and no traceback, no usage dump)."""
        result = self.run(script, *(args or ("--plan",)))
        assert result.returncode == 1 and result.stdout == "", (result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result.stderr.strip()


@pytest.fixture
def machine(tmp_path: Path):
    return lambda os_release, **kw: Machine(tmp_path / os_release, os_release, **kw)


# --- the interpreter ----------------------------------------------------------------------


def test_debian_12_as_shipped_gets_python3_11_venv_from_apt(machine) -> None:
    m = machine("debian-12")
    py = m.python("python3.11", "3.11", venv=False)
    m.python("python3", "3.11", venv=False)
    m.tool("apt-get")
    assert m.plan() == {"method": "apt", "python": str(py), "apt": "python3.11-venv", "uv": "", "sudo": ""}


def test_debian_12_with_venv_installed_uses_it_directly(machine) -> None:
    m = machine("debian-12")
    py = m.python("python3.11", "3.11", venv=True)
    m.tool("apt-get")
    assert m.plan() == {"method": "venv", "python": str(py), "apt": "", "uv": ""}


def test_ubuntu_22_04_python3_10_is_too_old_so_apt_adds_python3_11(machine) -> None:
    m = machine("ubuntu-22.04", root_user=False)
    m.python("python3", "3.10", venv=True)
    m.python("python3.10", "3.10", venv=True)
    m.tool("apt-get")
    m.tool("sudo")
    plan = m.plan()
    assert (plan["method"], plan["python"], plan["apt"], plan["sudo"]) == (
        "apt",
        "3.11",
        "python3.11,python3.11-venv",
        "sudo",
    )


def test_ubuntu_22_04_without_sudo_is_told_what_to_install(machine) -> None:
    m = machine("ubuntu-22.04", root_user=False)
    m.python("python3", "3.10", venv=True)
    m.tool("apt-get")
    sentence = m.refusal()
    assert "python3 is 3.10" in sentence
    assert "sudo apt-get install python3.11 python3.11-venv" in sentence


def test_ubuntu_22_04_with_uv_lets_uv_provide_the_interpreter(machine) -> None:
    m = machine("ubuntu-22.04")
    m.python("python3", "3.10", venv=True)
    m.tool("apt-get")
    uv = m.tool("uv")
    assert m.plan() == {"method": "uv", "python": "3.11", "apt": "", "uv": str(uv)}


def test_ubuntu_24_04_python3_12_without_venv_gets_python3_12_venv_with_sudo(machine) -> None:
    m = machine("ubuntu-24.04", root_user=False)
    py = m.python("python3", "3.12", venv=False)
    m.python("python3.12", "3.12", venv=False)
    m.tool("apt-get")
    m.tool("sudo")
    plan = m.plan()
    assert plan == {
        "method": "apt",
        "python": str(py.with_name("python3.12")),
        "apt": "python3.12-venv",
        "uv": "",
        "sudo": "sudo",
    }


def test_a_python_without_venv_is_used_through_uv_when_uv_is_there(machine) -> None:
    m = machine("ubuntu-24.04", root_user=False)
    py = m.python("python3.12", "3.12", venv=False)
    uv = m.tool("uv")  # no apt-get, no sudo: uv needs neither
    assert m.plan() == {"method": "uv", "python": str(py), "apt": "", "uv": str(uv)}


def test_python3_11_is_preferred_to_a_newer_default_python3(machine) -> None:
    # The lock files are compiled for 3.11 (make lock), so 3.11 wins when both are there.
    m = machine("ubuntu-24.04")
    m.python("python3", "3.12", venv=True)
    py = m.python("python3.11", "3.11", venv=True)
    assert m.plan()["python"] == str(py)


def test_too_new_and_explicitly_chosen_too_old_interpreters_are_refused(machine) -> None:
    m = machine("debian-12")
    m.python("python3", "3.14", venv=True)
    m.tool("apt-get")
    assert m.plan() == {"method": "apt", "python": "3.11", "apt": "python3.11,python3.11-venv", "uv": "", "sudo": ""}
    m.python("python3.10", "3.10", venv=True)
    result = m.run(BOOTSTRAP, "--plan", PYTHON="python3.10")
    assert result.returncode == 1
    assert result.stderr.strip() == "✗ PYTHON=python3.10 is python3.10 is 3.10; the project needs Python 3.11-3.13."


def test_an_unknown_release_with_pip_installs_uv_and_one_without_gets_one_sentence(machine) -> None:
    m = machine("debian-11")
    py = m.python("python3", "3.9", venv=True, pip=True)
    m.tool("apt-get")
    assert m.plan() == {"method": "pip-uv", "python": "3.11", "apt": "", "uv": "", "pip": str(py)}
    m.python("python3", "3.9", venv=True, pip=False)
    sentence = m.refusal()
    assert sentence.startswith("✗ No Python 3.11-3.13 found (python3 is 3.9)") and "install uv" in sentence


def test_the_real_interpreter_makes_a_venv_with_uv(tmp_path: Path) -> None:
    """No simulation: this machine's Python creates a venv and uv goes into it, as make run does."""
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert uv_version
    venv = tmp_path / "venv"
    # Only the real interpreter's folder (and the basics) on PATH: no uv, so the venv path is taken.
    real = Path(sys.base_prefix) / "bin"
    interpreter = real / f"python{sys.version_info.major}.{sys.version_info.minor}"  # python3 may not exist
    result = subprocess.run(
        [BASH, str(BOOTSTRAP), str(venv), uv_version.group(1)],
        env={**os.environ, "PATH": f"{real}:/usr/bin:/bin", "PYTHON": str(interpreter)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    version = subprocess.run([str(venv / "bin" / "uv"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith(f"uv {uv_version.group(1)}")
    assert (venv / "bin" / "python").exists()


# --- system packages ----------------------------------------------------------------------


def _system_plan(m: Machine, layer: str) -> dict[str, str]:
    result = m.run(SYSTEM, "--plan", layer)
    assert result.returncode == 0, result.stderr
    return dict(part.split("=", 1) for part in result.stdout.split())


def test_chromium_comes_from_apt_on_debian_and_from_snap_on_ubuntu(machine) -> None:
    debian = machine("debian-12")
    assert _system_plan(debian, "test") == {"distro": "debian", "apt": "espeak-ng,chromium", "snap": ""}

    # A socket path must stay under ~100 bytes, shorter than pytest's tmp paths.
    folder = Path(tempfile.mkdtemp(prefix="snapd-", dir="/tmp"))
    try:
        with socket.socket(socket.AF_UNIX) as snapd:
            snapd.bind(str(folder / "snapd.socket"))
            ubuntu = machine("ubuntu-24.04")
            ubuntu.tool("snap")  # `snap version` answers
            result = ubuntu.run(SYSTEM, "--plan", "test", BOOTSTRAP_SNAPD_SOCKET=str(folder / "snapd.socket"))
            assert result.stdout.split() == ["distro=ubuntu", "apt=espeak-ng", "snap=chromium"], result.stderr
    finally:
        shutil.rmtree(folder)

    # No snapd (a container, WSL without systemd), and an Ubuntu derivative: one sentence, no apt attempt.
    for name in ("ubuntu-22.04", "mint-21"):
        no_snapd = machine(name)
        no_snapd.tool("snap")
        no_snapd.tool("apt-get")
        sentence = no_snapd.refusal(SYSTEM, "--plan", "test")
        assert sentence.startswith("✗ Ubuntu ships Chromium only as a snap and snapd is not running here")
        assert "snap install chromium" in sentence


def test_installed_tools_are_not_installed_again_and_runtime_needs_no_test_packages(machine) -> None:
    m = machine("ubuntu-22.04")
    runtime = _system_plan(m, "runtime")
    assert "chromium" not in runtime["apt"] and "espeak-ng" not in runtime["apt"] and runtime["snap"] == ""
    assert "ffmpeg" in runtime["apt"].split(",")  # not on this simulated PATH
    for name in ("ffmpeg", "ffprobe", "espeak-ng", "chromium"):
        m.tool(name)
    assert _system_plan(m, "test") == {"distro": "ubuntu", "apt": "", "snap": ""}
    assert "ffmpeg" not in _system_plan(m, "runtime")["apt"]
