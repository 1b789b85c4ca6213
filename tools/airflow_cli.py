"""Run the Airflow CLI against this project's local Airflow (the one `make up` / `make run` use).

.venv/bin/python tools/airflow_cli.py dags list-runs video_pipeline
.venv/bin/python tools/airflow_cli.py backfill create --dag-id video_pipeline --from-date ... --to-date ...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import local_postgres  # noqa: E402
from tools.airflow_env import VENV_BIN, airflow_environment  # noqa: E402


def main(argv: list[str]) -> int:
    data_dir = Path(os.environ.get("VIDEO_PIPELINE_DATA_DIR") or ROOT / ".data")
    server = local_postgres.start(data_dir / "postgres")
    env = airflow_environment(server.port, Path(os.environ.get("AIRFLOW_HOME") or ROOT / ".airflow"))
    os.execve(str(VENV_BIN / "airflow"), ["airflow", *argv], env)  # noqa: S606 - replaces this process
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
