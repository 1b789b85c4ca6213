"""Start, stop and inspect a throwaway PostgreSQL cluster in a folder of the project.

Used by ``make run`` / ``make up`` (results database and Airflow metadata) and by
the test session. The cluster listens on 127.0.0.1 only, on a free port, with
trust authentication for local connections: it is a development database, never
a production one (docker-compose.yaml runs the production PostgreSQL).

    python tools/local_postgres.py start .data/postgres   # prints the port
    python tools/local_postgres.py stop .data/postgres
    python tools/local_postgres.py remove .data/postgres  # stop and delete the cluster

Run as root, the server runs as the ``postgres`` user (initdb and postgres
refuse root) and its cluster lives in a folder that user owns in its own home
(``~postgres/video-pipeline/<name>-<hash>/pgdata``), because a project under ``/root``
or pytest's ``/tmp/pytest-of-root`` is not reachable by that user and no
permission outside the project is changed to make it so. The project folder
then holds ``cluster`` (the cluster's path) and ``port``. Clusters whose project
folder is gone are deleted on the next start.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATABASES = ("video_pipeline", "airflow")


def bin_dir() -> Path:
    """The folder of initdb/pg_ctl/postgres (Debian and Ubuntu keep it off PATH)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries not found; install them with `apt-get install -y postgresql` "
        "(make run and make test do this for you)"
    )


def _version_key(path: str) -> int:
    # /usr/lib/postgresql/9.6 must not sort above /usr/lib/postgresql/15.
    match = re.search(r"/(\d+)(?:\.\d+)?/bin$", path)
    return int(match.group(1)) if match else -1


SERVER_USER = "postgres"
CLUSTERS_FOLDER = "video-pipeline"  # in the server user's home


def _owner() -> str | None:
    """The user the server runs as: ``postgres`` when we are root, else ourselves (None)."""
    return SERVER_USER if os.geteuid() == 0 else None


def _owner_home(owner: str) -> Path:
    try:
        home = Path(pwd.getpwnam(owner).pw_dir)
    except KeyError:
        raise RuntimeError(
            f"running as root needs the '{owner}' user that the postgresql package creates; "
            "install it with `apt-get install -y postgresql`, or run as a normal user"
        ) from None
    if not home.is_dir():
        raise RuntimeError(f"the '{owner}' user's home {home} does not exist; reinstall the postgresql package")
    return home


def cluster_dir(data_dir: Path) -> Path:
    """Where the cluster's files are for the project folder ``data_dir`` (that folder itself unless root made it)."""
    pointer = Path(data_dir).resolve() / "cluster"
    return Path(pointer.read_text().strip()) if pointer.is_file() else Path(data_dir).resolve()


def _new_cluster_dir(data_dir: Path, owner: str | None) -> Path:
    if owner is None or (data_dir / "PG_VERSION").exists():  # normal user, or a cluster made in place earlier
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{data_dir.parent.name}-{data_dir.name}").strip("-")[:40]
    return _owner_home(owner) / CLUSTERS_FOLDER / f"{slug}-{digest}" / "pgdata"


def _prepare_cluster_dir(data_dir: Path, cluster: Path, owner: str) -> None:
    """A folder the server user owns, recorded in the project folder; no other permission changes."""
    home = cluster.parent  # <clusters>/<name>-<hash>: pgdata/ and the back-reference (initdb wants pgdata empty)
    if not home.parent.exists():
        _run_as(["mkdir", "-p", "-m", "0700", str(home.parent)], owner, check=True)
    _prune_orphans(home.parent)
    _run_as(["mkdir", "-p", "-m", "0700", str(cluster)], owner, check=True)
    (home / "project-folder").write_text(str(data_dir))
    (data_dir / "cluster").write_text(str(cluster))


def _prune_orphans(clusters: Path) -> None:
    """Delete clusters whose project folder is gone (pytest keeps only its last few tmp folders)."""
    for home in clusters.iterdir():
        try:
            project = Path((home / "project-folder").read_text().strip())
        except OSError:
            continue  # being created right now, or not ours
        if not project.exists() and not _server_alive(home / "pgdata"):
            shutil.rmtree(home, ignore_errors=True)


def _server_alive(cluster: Path) -> bool:
    try:
        pid = int((cluster / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(args: list[str], owner: str | None) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", owner, "--", *args] if owner else args


def _run_as(args: list[str], owner: str | None, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    # From "/" as the server user: our working folder (under /root, say) may be closed to it.
    return subprocess.run(_as_owner(args, owner), cwd="/" if owner else None, **kwargs)


@dataclass(frozen=True)
class LocalPostgres:
    data_dir: Path  # the project's folder for this server (port file, and the cluster unless root)
    port: int
    user: str = "postgres"
    cluster: Path | None = None  # where PG_VERSION and server.log are; data_dir when None

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


def start(data_dir: Path, port: int | None = None) -> LocalPostgres:
    """Initialise (first time) and start the cluster; idempotent."""
    data_dir = Path(data_dir).resolve()
    binaries = bin_dir()
    owner = _owner()
    port_file = data_dir / "port"
    status = running(data_dir)
    if status is not None:
        return status

    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = cluster_dir(data_dir) if (data_dir / "cluster").is_file() else _new_cluster_dir(data_dir, owner)
    if not (cluster / "PG_VERSION").exists():
        if owner and cluster != data_dir:
            _prepare_cluster_dir(data_dir, cluster, owner)
        initdb = [str(binaries / "initdb"), "-D", str(cluster), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        _run_as(
            [*initdb, "--locale=C.UTF-8"],
            owner,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    port = port or _free_port()
    socket_dir = cluster / "socket"
    if not socket_dir.is_dir():
        _run_as(["mkdir", "-m", "0700", str(socket_dir)], owner, check=True)
    options = (
        f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(cluster), "-o", options, "-l", str(cluster / "server.log")]
    _run_as(
        [*pg_ctl, "-w", "-t", "60", "start"],
        owner,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port_file.write_text(str(port))
    server = LocalPostgres(data_dir=data_dir, port=port, cluster=cluster)
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
    cluster = cluster_dir(data_dir)
    if not (cluster / "postmaster.pid").exists() or not port_file.exists():
        return None
    port = int(port_file.read_text())
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            return None
    return LocalPostgres(data_dir=data_dir, port=port, cluster=cluster)


def stop(data_dir: Path) -> None:
    cluster = cluster_dir(Path(data_dir))
    if not (cluster / "postmaster.pid").exists():
        return
    _run_as(
        [str(bin_dir() / "pg_ctl"), "-D", str(cluster), "-m", "fast", "-w", "stop"],
        _owner(),
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def remove(data_dir: Path) -> None:
    """Stop the server and delete its cluster, wherever it lives (``make clean``)."""
    data_dir = Path(data_dir).resolve()
    if not data_dir.exists():
        return
    cluster = cluster_dir(data_dir)
    stop(data_dir)
    if cluster != data_dir and (cluster.parent / "project-folder").is_file():
        shutil.rmtree(cluster.parent, ignore_errors=True)
    shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in {"start", "stop", "status", "remove"}:
        print(__doc__, file=sys.stderr)
        return 2
    data_dir = Path(argv[2])
    if argv[1] == "start":
        print(start(data_dir).port)
    elif argv[1] == "stop":
        stop(data_dir)
    elif argv[1] == "remove":
        remove(data_dir)
    else:
        server = running(data_dir)
        print(server.port if server else "stopped")
        return 0 if server else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
