"""Start, stop and inspect a throwaway PostgreSQL cluster in a folder of the project.

Used by ``make run`` / ``make up`` (results database and Airflow metadata) and by
the test session. The cluster listens on 127.0.0.1 only, on a free port, with
trust authentication for local connections: it is a development database, never
a production one (docker-compose.yaml runs the production PostgreSQL).

    python tools/local_postgres.py start .data/postgres   # prints the port
    python tools/local_postgres.py stop .data/postgres
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DATABASES = ("video_pipeline", "airflow")


def _bin_dir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries not found; install them with `apt-get install -y postgresql` "
        "(make run and make test do this for you)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(args: list[str], owner: str | None) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", owner, "--", *args] if owner else args


@dataclass(frozen=True)
class LocalPostgres:
    data_dir: Path
    port: int
    user: str = "postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


def start(data_dir: Path, port: int | None = None) -> LocalPostgres:
    """Initialise (first time) and start the cluster; idempotent."""
    data_dir = Path(data_dir).resolve()
    bin_dir = _bin_dir()
    owner = "postgres" if os.geteuid() == 0 else None
    port_file = data_dir / "port"
    status = running(data_dir)
    if status is not None:
        return status

    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        if owner:
            shutil.chown(data_dir, owner, owner)
            # The owner must be able to reach the folder through its parents.
            for parent in data_dir.parents:
                if parent == Path("/"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)  # noqa: S103 - traverse only, no read
        subprocess.run(
            _as_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                owner,
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    port = port or _free_port()
    socket_dir = data_dir / "socket"
    socket_dir.mkdir(exist_ok=True)
    if owner:
        shutil.chown(socket_dir, owner, owner)
    options = (
        f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_owner(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-o",
                options,
                "-l",
                str(data_dir / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            owner,
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port_file.write_text(str(port))
    server = LocalPostgres(data_dir=data_dir, port=port)
    _create_databases(server)
    return server


def _create_databases(server: LocalPostgres) -> None:
    import psycopg2

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg2.connect(server.dsn("postgres"))
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in DATABASES:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def running(data_dir: Path) -> LocalPostgres | None:
    data_dir = Path(data_dir).resolve()
    port_file = data_dir / "port"
    if not (data_dir / "postmaster.pid").exists() or not port_file.exists():
        return None
    port = int(port_file.read_text())
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            return None
    return LocalPostgres(data_dir=data_dir, port=port)


def stop(data_dir: Path) -> None:
    data_dir = Path(data_dir).resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    owner = "postgres" if os.geteuid() == 0 else None
    subprocess.run(
        _as_owner([str(_bin_dir() / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"], owner),
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in {"start", "stop", "status"}:
        print(__doc__, file=sys.stderr)
        return 2
    data_dir = Path(argv[2])
    if argv[1] == "start":
        print(start(data_dir).port)
    elif argv[1] == "stop":
        stop(data_dir)
    else:
        server = running(data_dir)
        print(server.port if server else "stopped")
        return 0 if server else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
