"""`make run` and `make up` prepare Airflow's metadata DB once, not on every run.

A real migration of a real metadata DB (a copy of the session's), then the decision
to skip or prepare again as the database, the pools or Airflow change.
"""

from __future__ import annotations

import json

import psycopg2

from tests.reliability.conftest import clone_metadata_db
from tools import airflow_env
from tools.airflow_env import PREPARED_STAMP, airflow_environment, prepare_metadata


def _pools(url: str) -> dict[str, int]:
    with psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://")) as conn, conn.cursor() as cur:
        cur.execute("SELECT pool, slots FROM slot_pool")
        return dict(cur.fetchall())


def test_a_prepared_metadata_db_is_not_migrated_again(postgres, airflow_home, tmp_path, monkeypatch):
    url = clone_metadata_db(postgres)
    home = tmp_path / "home"
    base = {"PATH": "/usr/bin:/bin", "VIDEO_PIPELINE_ENV_FILE": "/dev/null", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    env = airflow_environment(postgres.port, home, base=base)

    # No stamp yet: the real `airflow db migrate` and `pools import` run, then the stamp is written.
    assert prepare_metadata(env) is True
    stamp = json.loads((home / PREPARED_STAMP).read_text())
    assert stamp["airflow"] and stamp["revision"]
    assert _pools(url)["video_transcribe"] == 1

    calls: list[list[str]] = []
    monkeypatch.setattr(airflow_env, "airflow", lambda args, env, **_: calls.append(args))

    assert prepare_metadata(env) is False and calls == []

    # A pool sized differently (or changed in the UI) is imported again; so is everything after
    # an Airflow upgrade, and a database whose revision is not the stamped one.
    assert prepare_metadata({**env, "VIDEO_PIPELINE_TRANSCRIBE_POOL_SLOTS": "3"}) is True
    assert [c[:2] for c in calls] == [["db", "migrate"], ["pools", "import"]]
    calls.clear()
    (home / PREPARED_STAMP).write_text(json.dumps({**stamp, "airflow": "3.0.0"}))
    assert prepare_metadata(env) is True and [c[:2] for c in calls] == [["db", "migrate"], ["pools", "import"]]
    calls.clear()
    (home / PREPARED_STAMP).write_text(json.dumps({**stamp, "revision": "an-older-revision"}))
    assert prepare_metadata(env) is True and [c[:2] for c in calls] == [["db", "migrate"], ["pools", "import"]]


def test_an_empty_database_is_always_prepared(postgres, tmp_path, monkeypatch):
    from tests.conftest import create_database

    url = f"postgresql+psycopg2://postgres@127.0.0.1:{postgres.port}/{create_database(postgres, 'empty_meta')}"
    home = tmp_path / "home"
    home.mkdir()
    env = airflow_environment(
        postgres.port, home, base={"VIDEO_PIPELINE_ENV_FILE": "/dev/null", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    )
    (home / PREPARED_STAMP).write_text(json.dumps({"airflow": "3.3.2", "revision": None}))
    calls: list[list[str]] = []
    monkeypatch.setattr(airflow_env, "airflow", lambda args, env, **_: calls.append(args))
    assert prepare_metadata(env) is True and [c[:2] for c in calls] == [["db", "migrate"], ["pools", "import"]]
