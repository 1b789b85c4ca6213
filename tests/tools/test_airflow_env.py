"""How make run / make up build Airflow's environment: .env, old pipeline names, defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tools.airflow_env import ROOT, airflow_environment, legacy_connections, read_dotenv


def test_old_pipeline_variables_become_connections():
    env = {
        "S3_INPUT_ACCESS_KEY_ID": "old-key-id",
        "S3_INPUT_SECRET_ACCESS_KEY": "old-secret",
        "S3_INPUT_ENDPOINT": "s3.ru1.storage.beget.cloud",
        "S3_INPUT_REGION": "ru-1",
        "GOOGLE_API_KEY": "old-gemini-key",
    }
    connections = legacy_connections(env)
    aws = json.loads(connections["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["login"] == "old-key-id" and aws["password"] == "old-secret"
    assert aws["extra"] == {"endpoint_url": "https://s3.ru1.storage.beget.cloud", "region_name": "ru-1"}
    assert json.loads(connections["AIRFLOW_CONN_GEMINI_DEFAULT"])["password"] == "old-gemini-key"


def test_explicit_connections_win_over_old_names():
    env = {"S3_INPUT_ACCESS_KEY_ID": "a", "S3_INPUT_SECRET_ACCESS_KEY": "b", "AIRFLOW_CONN_AWS_DEFAULT": "{}"}
    assert legacy_connections(env) == {}


def test_dotenv_fills_gaps_but_the_environment_wins(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\nVIDEO_PIPELINE_STORAGE=s3\nVIDEO_PIPELINE_BUCKET='team-videos'\n"
        'export VIDEO_PIPELINE_BATCH_SIZE=7\nVIDEO_PIPELINE_S3_REGION=\nGOOGLE_API_KEY="k-from-file"\n'
    )
    assert read_dotenv(dotenv) == {
        "VIDEO_PIPELINE_STORAGE": "s3",
        "VIDEO_PIPELINE_BUCKET": "team-videos",
        "VIDEO_PIPELINE_BATCH_SIZE": "7",
        "GOOGLE_API_KEY": "k-from-file",
    }
    env = airflow_environment(
        5432, tmp_path / "home", {"VIDEO_PIPELINE_ENV_FILE": str(dotenv), "VIDEO_PIPELINE_BATCH_SIZE": "3"}
    )
    assert env["VIDEO_PIPELINE_STORAGE"] == "s3" and env["VIDEO_PIPELINE_BATCH_SIZE"] == "3"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("127.0.0.1:5432/airflow")
    assert json.loads(env["AIRFLOW_CONN_GEMINI_DEFAULT"])["password"] == "k-from-file"


def test_make_run_creates_every_pool_the_dag_uses():
    from include.video_pipeline.core.pools import ALL_POOLS
    from tools.airflow_env import DEFAULT_POOL_SLOTS

    assert set(DEFAULT_POOL_SLOTS) == set(ALL_POOLS)
    assert {spec.name for spec in ALL_POOLS} == {"video_transcode", "video_transcribe", "video_analysis"}
    assert all(slots >= 1 for slots in DEFAULT_POOL_SLOTS.values())


def test_airflow_processes_find_the_project_and_its_cluster_policy(tmp_path: Path):
    # The policy names a video's task instances in the grid (include/video_pipeline/api/grid_names.py);
    # Airflow imports it as `airflow_local_settings` from sys.path. A PYTHONPATH of the user's is kept.
    env = airflow_environment(5432, tmp_path / "home", {"VIDEO_PIPELINE_ENV_FILE": os.devnull, "PYTHONPATH": "/x"})
    project, policy, *rest = env["PYTHONPATH"].split(os.pathsep)
    assert Path(project) == ROOT and rest == ["/x"]
    assert (Path(policy) / "airflow_local_settings.py").is_file()
