"""The whole DAG over native GCS: the emulator as a process, a service-account key, faults on the way.

One run (``tools/run_pipeline.py``, what ``make run`` runs) with
``VIDEO_PIPELINE_STORAGE=gcs`` and a ``google_cloud_default`` connection that
holds a service-account key made here (its tokens come from Google's OAuth
endpoint on loopback). The storage proxy applies GCS's preconditions and fails
a copy, loses the answer of a copy and of a delete during the run; every upload
must still end in exactly one place, with the ledger agreeing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import psycopg2
import pytest
import requests

from tests.fakes import gcs_emulator as gcs
from tests.fakes.gcs_emulator import FaultRule, GoogleAuthServer, emulator_client, service_account_key
from tests.fakes.gcs_emulator import verify_v4_signed_url as signature_ok
from tests.fixtures import clips

gcs_emulator, gcs_proxy, gcs_bucket = gcs.gcs_emulator, gcs.gcs_proxy, gcs.gcs_bucket

SPEECH = "Welcome to the quarterly review. Revenue grew and the new product launch went well."

UPLOADS = {
    # name in pending/ -> (maker, expected prefix, expected reason or None)
    "review.mp4": (lambda p: clips.make_speech_video(p, SPEECH), "completed", None),
    "team a/voice memo.m4a": (lambda p: clips.make_speech_audio(p, "Call the client on Friday."), "completed", None),
    "broken.mp4": (clips.make_truncated_video, "failed", "corrupt"),
}
MARKERS = ["pending/", "pending/team a/"]  # the console's "create folder"


def _keys(bucket: str, prefix: str = "") -> set[str]:
    return {b.name for b in emulator_client().list_blobs(bucket, prefix=prefix)}


def _read(bucket: str, key: str) -> bytes:
    return bytes(emulator_client().bucket(bucket).blob(key).download_as_bytes())


@pytest.fixture
def auth_server():
    with GoogleAuthServer() as server:
        yield server


@pytest.fixture
def uploaded(gcs_bucket, tmp_path) -> dict[str, bytes]:
    bucket = emulator_client().bucket(gcs_bucket)
    sources = {}
    for name, (make, _, _) in UPLOADS.items():
        data = Path(make(tmp_path / "src" / name.replace("/", "_"))).read_bytes()
        bucket.blob(f"pending/{name}").upload_from_string(data)
        sources[name] = data
    for marker in MARKERS:
        bucket.blob(marker).upload_from_string(b"")
    return sources


def test_a_run_over_native_gcs_survives_storage_faults_and_links_signed_reports(
    run_pipeline, gcs_bucket, gcs_proxy, auth_server, uploaded, results_dsn, postgres, monkeypatch
):
    key, public = service_account_key(auth_server.token_uri)
    auth_server.trust(key["client_email"], public)
    connection = {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(key)}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
    gcs_proxy.clear()
    faults = [
        # The claim's copy into processing/ meets a 503: the client retries it.
        gcs_proxy.add_rule(FaultRule(op="COPY", fault="503", key_contains="processing/review.mp4")),
        # Publishing review.mp4: GCS copies, the answer is lost; the retry meets the copy (412).
        gcs_proxy.add_rule(FaultRule(op="COPY", fault="drop_after", key_contains="completed/review.mp4")),
        # Settling the memo: GCS deletes processing/, the answer is lost; the retry gets 404.
        gcs_proxy.add_rule(FaultRule(op="DELETE", fault="drop_after", key_contains="processing/team a/voice memo")),
    ]

    run = run_pipeline({"VIDEO_PIPELINE_STORAGE": "gcs", "VIDEO_PIPELINE_BUCKET": gcs_bucket})

    assert run.returncode == 0, run.output + run.log[-5000:]
    assert run.state == "success"
    assert [rule.fired for rule in faults] == [1, 1, 1]
    log = gcs_proxy.log
    assert ("COPY", "completed/review.mp4", 412) in [(e.op, e.key, e.status) for e in log]
    # Every copy was conditional on its source's generation, every delete after a copy on the copied one.
    assert all("ifSourceGenerationMatch" in e.query and "ifGenerationMatch" in e.query for e in log if e.op == "COPY")

    # Every upload is in exactly one final place, unchanged; only the folder markers stay in pending/.
    assert _keys(gcs_bucket, "pending/") == set(MARKERS)
    assert _keys(gcs_bucket, "processing/") == set() and _keys(gcs_bucket, "staging/") == set()
    for name, (_, prefix, reason) in UPLOADS.items():
        other = "failed" if prefix == "completed" else "completed"
        assert _read(gcs_bucket, f"{prefix}/{name}") == uploaded[name], f"{name} changed on its way to {prefix}/"
        assert f"{other}/{name}" not in _keys(gcs_bucket, f"{other}/")
        if reason:
            report = json.loads(_read(gcs_bucket, f"failed/{name}.error.json"))
            assert report["reason"] == reason and report["retryable"] is False and report["source_key"] == name

    # The ledger agrees, and knows the bucket by its gs:// name.
    with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_key, state, bucket, outputs_prefix FROM videos")
        rows = {r[0]: r for r in cur.fetchall()}
        cur.execute("SELECT v.source_key, t.text FROM transcripts t JOIN videos v USING (video_id) WHERE t.is_current")
        transcripts = dict(cur.fetchall())
    assert {k: v[1] for k, v in rows.items()} == {name: spec[1] for name, spec in UPLOADS.items()}
    assert {v[2] for v in rows.values()} == {f"gs://{gcs_bucket}"}
    assert "friday" in transcripts["team a/voice memo.m4a"].lower()
    assert "quarterly" in transcripts["review.mp4"].lower()

    # Outputs are whole: the manifest lists every file with its size and SHA-256.
    for name, row in rows.items():
        if row[1] != "completed":
            continue
        manifest = json.loads(_read(gcs_bucket, f"{row[3]}manifest.json"))
        assert manifest["source"]["key"] == name
        for item in manifest["files"]:
            body = _read(gcs_bucket, item["key"])
            assert len(body) == item["size"] and hashlib.sha256(body).hexdigest() == item["sha256"]

    # The run authenticated with the connection's key: Google's token endpoint saw JWTs it signed.
    assert key["client_email"] in auth_server.tokens_issued

    # The "Outputs" button: a V4 URL signed by that key, and it opens the report.
    with psycopg2.connect(postgres.dsn("airflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT value FROM xcom WHERE key = '_link_VideoOutputsLink' AND task_id = 'video.publish' AND run_id = %s",
            (run.run_id,),
        )
        links = [row[0] if isinstance(row[0], str) else json.loads(row[0]) for row in cur.fetchall()]
    assert len(links) == 2
    for link in links:
        assert "/outputs/" in link and "report.html" in link and "X-Goog-Signature=" in link
        assert signature_ok(link, "GET", {}, public)
        response = requests.get(link, timeout=10)
        assert response.status_code == 200 and b"<html" in response.content

    # The private key never shows up in what the run printed or logged.
    secret = key["private_key"].splitlines()[1]
    assert secret not in run.output and secret not in run.log
