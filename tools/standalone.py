"""Run Airflow locally with its UI: what ``make up`` calls.

Starts the project's local PostgreSQL (Airflow metadata + results), migrates
Airflow's database and creates the pools, then runs ``airflow standalone``
(api-server with the UI, scheduler, dag-processor, triggerer) with settings for
a small machine:

* the api-server listens on 127.0.0.1 only, port 8080 or ``VIDEO_PIPELINE_UI_PORT``;
* LocalExecutor ``parallelism`` is 2 x CPU cores, not Airflow's 32 (standalone
  forks that many workers up front);
* ``[core] dags_are_paused_at_creation`` is off, so the hourly schedule is on.

Airflow runs in its own process group; Ctrl-C (or SIGTERM) stops the whole
group (SIGTERM, then SIGKILL after a grace period), so no scheduler or worker
outlives this command. The local PostgreSQL keeps running: ``make down`` stops it.

Honoured from the environment: ``AIRFLOW_HOME`` (default ``.airflow``),
``VIDEO_PIPELINE_DATA_DIR`` (default ``.data``: PostgreSQL in ``postgres/``,
local storage in ``storage/`` unless ``VIDEO_PIPELINE_LOCAL_ROOT`` is set),
``VIDEO_PIPELINE_UI_PORT`` and every other ``VIDEO_PIPELINE_*`` / ``AIRFLOW__*`` setting.

    python tools/standalone.py [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import local_postgres  # noqa: E402
from tools.airflow_env import VENV_BIN, airflow_environment, prepare_metadata  # noqa: E402
from tools.process_group import STOP_GRACE_SECONDS, group_members, stop_group  # noqa: E402

DEFAULT_UI_PORT = 8080
# Airflow 3's SimpleAuthManager writes generated passwords here (see
# SimpleAuthManager.get_generated_password_file) unless
# [core] simple_auth_manager_passwords_file says otherwise.
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json.generated"


def ui_port(env: Mapping[str, str]) -> int:
    raw = (env.get("VIDEO_PIPELINE_UI_PORT") or "").strip()
    if not raw:
        return DEFAULT_UI_PORT
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"VIDEO_PIPELINE_UI_PORT must be a port number, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise SystemExit(f"VIDEO_PIPELINE_UI_PORT must be between 1 and 65535, got {port}")
    return port


def standalone_settings(env: Mapping[str, str], port: int, cores: int) -> dict[str, str]:
    """The Airflow settings ``make up`` needs on top of :func:`airflow_environment`."""
    forced = {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # Task processes reach the api-server's execution API; its default assumes port 8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    defaults = {
        "AIRFLOW__CORE__PARALLELISM": str(2 * cores),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": str(min(2, cores)),
        # Standalone starts the scheduler and the api-server together; on a small machine the
        # scheduler can queue a task before the api-server answers, and a task whose calls to
        # the execution API fail (5 tries, 5 s timeout by default) dies before it starts.
        "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
    }
    return {**{k: v for k, v in defaults.items() if not env.get(k)}, **forced}


def passwords_file(env: Mapping[str, str]) -> Path:
    configured = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    return Path(configured) if configured else Path(env["AIRFLOW_HOME"]) / PASSWORDS_FILE_NAME


def read_passwords(path: Path) -> dict[str, str] | None:
    try:
        content = path.read_text().strip()
    except OSError:
        return None
    if not content:
        return None
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        return None  # being written
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a loopback URL we built
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _follow(path: Path, stop: threading.Event) -> None:
    """Copy a growing log file to stdout (``--verbose``)."""
    with open(path, errors="replace") as log:
        while not stop.is_set():
            line = log.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- main ------------------------------------------------------------------------------


def banner(
    *,
    url: str,
    passwords: dict[str, str] | None,
    password_path: Path,
    all_admins: bool,
    uploads: str,
    outputs: str,
    log_path: Path,
    pg: local_postgres.LocalPostgres,
    data_dir: Path,
) -> str:
    rule = "=" * 78
    lines = [rule, f"  Airflow is up:  {url}"]
    if all_admins:
        lines.append("  Login:          none needed ([core] simple_auth_manager_all_admins is on)")
    elif passwords:
        for user, password in passwords.items():
            lines.append(f"  Login:          user {user!r}  password {password}")
        lines.append(f"                  (kept in {password_path})")
    else:
        lines.append(f"  Login:          password not generated yet; it will be in {password_path}")
    lines += [
        f"  Uploads:        put videos in {uploads}",
        "                  (the hourly run's sensor looks for them every VIDEO_PIPELINE_SENSOR_POKE_SECONDS, 60 s)",
        f"  Outputs:        {outputs}",
        f"  Videos:         {url}/plugin/videos  (the library: every video, search in what was said)",
        "  One-shot run:   in the UI open Dags -> video_pipeline -> Trigger, switch on 'one_shot', press Trigger.",
        "                  It processes what is pending and finishes without waiting for uploads; an hourly",
        "                  run that is waiting for uploads steps aside for it (max_active_runs=1).",
        f"  Logs:           {log_path}   (tail -f it, or run with --verbose)",
        f"  Stop:           Ctrl-C stops every Airflow process. PostgreSQL keeps running on 127.0.0.1:{pg.port};",
        "                  `make down` stops it"
        + ("." if data_dir == ROOT / ".data" else f" (here: python tools/local_postgres.py stop {pg.data_dir})."),
        rule,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", "-v", action="store_true", help="also stream Airflow's output here")
    parser.add_argument(
        "--ready-timeout", type=float, default=600.0, help="give up when the UI does not answer in this many seconds"
    )
    args = parser.parse_args(argv)

    data_dir = Path(os.environ.get("VIDEO_PIPELINE_DATA_DIR") or ROOT / ".data").resolve()
    airflow_home = Path(os.environ.get("AIRFLOW_HOME") or ROOT / ".airflow").resolve()
    port = ui_port(os.environ)
    if not port_is_free(port):
        print(
            f"✗ 127.0.0.1:{port} is already in use (another `make up`?); set VIDEO_PIPELINE_UI_PORT to another port",
            file=sys.stderr,
        )
        return 1
    cores = os.cpu_count() or 1

    try:
        print("• starting the local PostgreSQL …", flush=True)
        pg = local_postgres.start(data_dir / "postgres")
        print(f"  PostgreSQL on 127.0.0.1:{pg.port} (data in {pg.data_dir})", flush=True)
        base = dict(os.environ)
        base.setdefault("VIDEO_PIPELINE_LOCAL_ROOT", str(data_dir / "storage"))
        base["AIRFLOW_HOME"] = str(airflow_home)
        env = airflow_environment(pg.port, airflow_home, base)
        env.update(standalone_settings(env, port, cores))
        from tools.run_pipeline import OFFLINE_MODEL_NOTICE, offline_demo_model

        demo_model = offline_demo_model(env)
        if demo_model:
            env.update({"VIDEO_PIPELINE_WHISPER_MODEL": demo_model, "HF_HUB_OFFLINE": "1"})
            print(OFFLINE_MODEL_NOTICE, flush=True)
        print("• Airflow's metadata database and pools: ", end="", flush=True)
        print("migrated and imported" if prepare_metadata(env) else "already prepared", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; Airflow was not started", file=sys.stderr)
        return 130

    from include.video_pipeline.config import load_settings

    settings = load_settings(env)
    if settings.storage == "local":
        pending = settings.local_root / settings.prefixes.pending
        pending.mkdir(parents=True, exist_ok=True)
        uploads = f"{pending}/"
        outputs = f"{settings.local_root / settings.output_prefix}/"
    else:
        uploads = f"{settings.location}/{settings.prefixes.pending}"
        outputs = f"{settings.location}/{settings.output_prefix}"

    log_path = airflow_home / "standalone.log"
    url = f"http://127.0.0.1:{port}"
    health_url = f"{url}/api/v2/monitor/health"
    password_path = passwords_file(env)
    all_admins = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").lower() == "true"

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop_requested.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)

    print(
        f"• starting airflow standalone (LocalExecutor parallelism {env['AIRFLOW__CORE__PARALLELISM']}, "
        f"UI on {url}; first start takes a minute or two) …",
        flush=True,
    )
    log = open(log_path, "ab")  # kept open for the child's lifetime
    process = subprocess.Popen(
        [str(VENV_BIN / "airflow"), "standalone"],
        env=env,
        cwd=str(ROOT),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    print(f"  airflow standalone is process group {process.pid}; output in {log_path}", flush=True)
    follow_stop = threading.Event()
    if args.verbose:
        threading.Thread(target=_follow, args=(log_path, follow_stop), daemon=True).start()

    exit_code = 0
    started = time.monotonic()
    try:
        shown = False
        ready_at: float | None = None
        while not stop_requested.is_set():
            if process.poll() is not None:
                print(
                    f"✗ airflow standalone exited with code {process.returncode}; last lines of {log_path}:",
                    file=sys.stderr,
                )
                sys.stderr.write(_tail(log_path) + "\n")
                exit_code = 1
                break
            if not shown:
                if ready_at is None and healthy(health_url):
                    ready_at = time.monotonic()
                    print(f"  the UI answers after {ready_at - started:.0f} s", flush=True)
                passwords = read_passwords(password_path)
                # The api-server writes the password file as it starts; wait a little for it.
                if ready_at is not None and (passwords or all_admins or time.monotonic() - ready_at > 30):
                    print(
                        banner(
                            url=url,
                            passwords=passwords,
                            password_path=password_path,
                            all_admins=all_admins,
                            uploads=uploads,
                            outputs=outputs,
                            log_path=log_path,
                            pg=pg,
                            data_dir=data_dir,
                        ),
                        flush=True,
                    )
                    shown = True
                elif ready_at is None and time.monotonic() - started > args.ready_timeout:
                    print(
                        f"✗ the UI did not answer on {health_url} within {args.ready_timeout:.0f} s; "
                        f"last lines of {log_path}:",
                        file=sys.stderr,
                    )
                    sys.stderr.write(_tail(log_path) + "\n")
                    exit_code = 1
                    break
            stop_requested.wait(1.0)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
        print(
            f"\n• stopping Airflow (process group {process.pid}; SIGKILL after {STOP_GRACE_SECONDS:.0f} s) …",
            flush=True,
        )
        clean = stop_group(process)
        follow_stop.set()
        log.close()
        left = group_members(process.pid)
        if left:
            print(f"✗ processes still running in group {process.pid}: {left}", file=sys.stderr)
            exit_code = exit_code or 1
        else:
            print("  every Airflow process has stopped" + ("" if clean else " (some needed SIGKILL)") + ".")
        print(
            f"  PostgreSQL is still running on 127.0.0.1:{pg.port} (data in {pg.data_dir}); "
            + (
                "`make down` stops it."
                if data_dir == ROOT / ".data"
                else f"stop it with: python tools/local_postgres.py stop {pg.data_dir}"
            ),
            flush=True,
        )
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
