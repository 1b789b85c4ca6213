"""The whole DAG over a bucket on a local S3 endpoint (moto over HTTP), Gemini on loopback.

One run over a realistic mix of uploads; then every object, row and output is
accounted for: nothing lost, nothing stuck, every failure explained.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import S3_TEST_ACCESS_KEY  # noqa: F401  (documents where the keys come from)
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fixtures import clips

GEMINI_KEY = "fake-gemini-key-for-the-loopback-server"
WEBHOOK_SECRET = "webhook-shared-secret-for-tests"

SPEECH = "Welcome to the quarterly review. Revenue grew and the new product launch went well."
CYRILLIC_SPEECH = "The meeting starts at nine. Please bring the project plan and the budget."

UPLOADS = {
    # name in pending/ -> (maker, expected prefix, expected reason or None)
    "review.mp4": (lambda p: clips.make_speech_video(p, SPEECH), "completed", None),
    "Отчёт за май (итог).mp4": (lambda p: clips.make_speech_video(p, CYRILLIC_SPEECH), "completed", None),
    "team a/screen capture.mp4": (lambda p: clips.make_silent_video(p, duration=2.0), "completed", None),
    "voice memo.m4a": (lambda p: clips.make_speech_audio(p, "Call the client on Friday."), "completed", None),
    "broken.mp4": (clips.make_truncated_video, "failed", "corrupt"),
    "notes.mp4": (clips.make_non_video, "failed", "not_media"),
    "empty.mov": (clips.make_empty_file, "failed", "empty_file"),
}


def _keys(s3_client, bucket: str, prefix: str = "") -> set[str]:
    paginator = s3_client.get_paginator("list_objects_v2")
    return {o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])}


def _words(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()}


@pytest.fixture
def uploaded(s3_bucket, s3_client, tmp_path) -> dict[str, bytes]:
    sources = {}
    for name, (make, _, _) in UPLOADS.items():
        path = make(tmp_path / "src" / name.replace("/", "_"))
        data = Path(path).read_bytes()
        s3_client.put_object(Bucket=s3_bucket, Key=f"pending/{name}", Body=data)
        sources[name] = data
    s3_client.put_object(Bucket=s3_bucket, Key="pending/", Body=b"")  # a console's folder marker
    return sources


class WebhookReceiver:
    """A loopback HTTP endpoint that records what the pipeline POSTs to it."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/video"

    def close(self) -> None:
        self.server.shutdown()


def test_a_batch_of_real_world_uploads_ends_where_it_should(
    run_pipeline, s3_bucket, s3_client, s3_endpoint, results_dsn, uploaded, postgres
):
    from include.video_pipeline.hooks.webhook import verify_signature

    webhook = WebhookReceiver()
    with FakeGeminiServer(api_key=GEMINI_KEY) as gemini:
        run = run_pipeline(
            {
                "VIDEO_PIPELINE_STORAGE": "s3",
                "VIDEO_PIPELINE_BUCKET": s3_bucket,
                "VIDEO_PIPELINE_GEMINI_BASE_URL": gemini.base_url,
                "GEMINI_API_KEY": GEMINI_KEY,
                "VIDEO_PIPELINE_WEBHOOK_URL": webhook.url,
                "VIDEO_PIPELINE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            }
        )
        gemini_requests = gemini.generate_requests
    webhook.close()

    assert run.returncode == 0, run.output + run.log[-5000:]
    # Bad uploads are the uploads' fault, not the pipeline's: the run is green.
    assert run.state == "success"

    # Every upload is accounted for: exactly one final place, nothing left behind.
    assert _keys(s3_client, s3_bucket, "processing/") == set()
    assert _keys(s3_client, s3_bucket, "staging/") == set()
    assert _keys(s3_client, s3_bucket, "pending/") == {"pending/"}
    for name, (_, prefix, reason) in UPLOADS.items():
        other = "failed" if prefix == "completed" else "completed"
        body = s3_client.get_object(Bucket=s3_bucket, Key=f"{prefix}/{name}")["Body"].read()
        assert body == uploaded[name], f"{name} changed on its way to {prefix}/"
        assert f"{other}/{name}" not in _keys(s3_client, s3_bucket, f"{other}/")
        if reason:
            report = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=f"failed/{name}.error.json")["Body"].read())
            assert report["reason"] == reason
            assert report["stage"] in {"transcode", "transcribe"}
            assert report["retryable"] is False
            assert report["source_key"] == name and report["message"] and report["time"]

    # The ledger agrees with the bucket.
    with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_key, state, outputs_prefix, manifest FROM videos")
        rows = {r[0]: r for r in cur.fetchall()}
        cur.execute(
            "SELECT v.source_key, t.language, t.quality, t.text FROM transcripts t"
            " JOIN videos v USING (video_id) WHERE t.is_current"
        )
        transcripts = {r[0]: r for r in cur.fetchall()}
        cur.execute(
            "SELECT v.source_key, a.analyzer, a.data FROM analyses a JOIN videos v USING (video_id) WHERE a.is_current"
        )
        analyses = {r[0]: r for r in cur.fetchall()}
        cur.execute("SELECT DISTINCT stage FROM stage_runs WHERE status = 'success'")
        stages = {r[0] for r in cur.fetchall()}
    assert {k: v[1] for k, v in rows.items()} == {name: spec[1] for name, spec in UPLOADS.items()}
    assert stages == {"transcode", "transcribe", "analyze", "publish"}

    # Transcripts are real: the spoken words come back (tiny.en, so allow a few slips).
    for name, spoken in (("review.mp4", SPEECH), ("Отчёт за май (итог).mp4", CYRILLIC_SPEECH)):
        _, language, quality, text = transcripts[name]
        assert language == "en" and quality == "ok"
        expected = _words(spoken)
        assert len(expected & _words(text)) / len(expected) > 0.7, text
    assert transcripts["team a/screen capture.mp4"][2] == "no_audio"
    assert transcripts["team a/screen capture.mp4"][3] == ""
    assert "friday" in _words(transcripts["voice memo.m4a"][3])

    # Analyses came from Gemini (the loopback server) for speech, with the key sent as a header.
    assert analyses["review.mp4"][1] == "gemini"
    assert analyses["review.mp4"][2]["summary"]
    assert gemini_requests and all(r.api_key == GEMINI_KEY for r in gemini_requests)
    assert any("quarterly review" in r.prompt_text.lower() for r in gemini_requests)

    # Outputs: the manifest lists every file, and each file is whole.
    for name, row in rows.items():
        if row[1] != "completed":
            continue
        outputs_prefix, manifest = row[2], row[3]
        stored = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=f"{outputs_prefix}manifest.json")["Body"].read())
        assert stored["source"]["key"] == name
        listed = {f["name"] for f in stored["files"]}
        assert {"transcript.json", "transcript.srt", "transcript.vtt", "transcript.txt", "analysis.json"} <= listed
        has_video = not name.endswith(".m4a")
        assert ({"video.mp4", "poster.jpg"} <= listed) == has_video
        assert stored["video_outputs"] == has_video
        for item in stored["files"]:
            body = s3_client.get_object(Bucket=s3_bucket, Key=item["key"])["Body"].read()
            assert len(body) == item["size"] and hashlib.sha256(body).hexdigest() == item["sha256"]
        assert _keys(s3_client, s3_bucket, outputs_prefix) == {f["key"] for f in stored["files"]} | {
            f"{outputs_prefix}manifest.json"
        }
        assert manifest["video_id"] == stored["video_id"]

    # Reports for people: one per completed video, listed in its manifest; a summary per run.
    for name, row in rows.items():
        if row[1] == "completed":
            report = s3_client.get_object(Bucket=s3_bucket, Key=f"{row[2]}report.html")["Body"].read().decode()
            assert "<html" in report and name.rsplit("/", 1)[-1].split(" ")[0] in report
    summaries = _keys(s3_client, s3_bucket, "outputs/_runs/")
    assert len(summaries) == 1
    summary = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=summaries.pop())["Body"].read())
    assert summary["counts"]["completed"] == 4 and summary["counts"]["failed"] == 3

    # Notifications: a signed event per finished video and one for the run.
    events = []
    for headers, body in webhook.received:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert verify_signature(
            WEBHOOK_SECRET, body, lowered["x-video-pipeline-timestamp"], lowered["x-video-pipeline-signature"]
        )
        events.append(json.loads(body)["event"])
    assert sorted(events) == sorted(["video.completed"] * 4 + ["video.failed"] * 3 + ["run.finished"])

    # Each video's tasks carry an "Outputs" link (kept in XCom for the UI): a presigned report URL.
    import urllib.request

    with psycopg2.connect(postgres.dsn("airflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT value FROM xcom WHERE key = '_link_VideoOutputsLink' AND task_id = 'video.publish' AND run_id = %s",
            (run.run_id,),
        )
        links = [row[0] if isinstance(row[0], str) else json.loads(row[0]) for row in cur.fetchall()]
    assert len(links) == 4  # the published videos; the rejected ones never reached publish
    for link in links:
        assert "/outputs/" in link and "report.html" in link and "Signature" in link
        with urllib.request.urlopen(link, timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read()

    # The Cyrillic name survives in the summary make run prints.
    assert "Отчёт за май (итог).mp4" in run.output
    # The key never leaks into what the run printed or logged.
    assert GEMINI_KEY not in run.output and GEMINI_KEY not in run.log
    assert WEBHOOK_SECRET not in run.output and WEBHOOK_SECRET not in run.log
