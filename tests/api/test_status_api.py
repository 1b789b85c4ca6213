"""GET /videos and /videos/{id}: what the ledger says, for rows written by the pipeline's own hook methods."""

from __future__ import annotations

import json

import requests

from include.video_pipeline.core.errors import FailureReport, RejectReason

RUN = "manual__2026-01-01T00:00:00"


def _claim(db, vid: str, key: str, size: int = 1000) -> None:
    assert db.claim(
        video_id=vid, bucket="videos", source_key=key, etag="e-" + vid, size_bytes=size, run_id=RUN, lease_seconds=3600
    )


def _complete(db, store_client, bucket: str, vid: str, key: str) -> None:
    _claim(db, vid, key)
    db.save_transcript(
        vid,
        {
            "backend": "faster-whisper",
            "model": "tiny",
            "language": "ru",
            "language_probability": 0.97,
            "duration": 12.5,
            "quality": "ok",
            "text": "Привет",
            "segments": [{"start": 0, "end": 1, "text": "Привет"}],
        },
    )
    db.save_analysis(
        vid,
        {
            "analyzer": "offline",
            "model": "",
            "prompt_version": "v1",
            "language": "ru",
            "data": {
                "title_suggestion": "Встреча команды",
                "summary": "Обсудили планы.",
                "key_points": ["план"],
                "topics": ["работа"],
                "tags": ["встреча"],
            },
        },
    )
    prefix = f"outputs/{vid}/"
    manifest = {"video_id": vid, "files": [{"name": "video.mp4", "key": prefix + "video.mp4"}]}
    store_client.put_object(Bucket=bucket, Key=prefix + "video.mp4", Body=b"web-ready video")
    store_client.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=json.dumps(manifest).encode())
    db.save_manifest(vid, prefix, manifest)
    assert db.set_outcome(vid, "succeeded")
    db.finish(vid, "completed")


def test_a_completed_video_shows_transcript_analysis_and_downloadable_outputs(
    api, airflow_auth, s3_env, results_db, s3_client
) -> None:
    _complete(results_db, s3_client, s3_env, "vstrecha-1-abc", "команда/Встреча 1.mp4")
    response = api.get("/videos/vstrecha-1-abc", headers=airflow_auth.header("viewer"))
    assert response.status_code == 200, response.text
    video = response.json()
    assert video["state"] == "completed" and video["outcome"] == "succeeded"
    assert video["name"] == "Встреча 1.mp4"
    assert video["current_key"] == "completed/команда/Встреча 1.mp4"
    assert video["claimed_at"] and video["finished_at"]
    assert video["error"] is None
    assert video["transcript"]["language"] == "ru" and video["transcript"]["quality"] == "ok"
    assert video["analysis"]["title"] == "Встреча команды"
    assert video["analysis"]["summary"] == "Обсудили планы."
    assert video["analysis"]["tags"] == ["встреча"]
    outputs = video["outputs"]
    assert outputs["location"] == f"s3://{s3_env}/outputs/vstrecha-1-abc/"
    assert requests.get(outputs["files"][0]["url"], timeout=10).content == b"web-ready video"
    assert requests.get(outputs["manifest_url"], timeout=10).json()["video_id"] == "vstrecha-1-abc"


def test_a_failed_video_shows_the_reason_and_where_the_report_is(api, airflow_auth, s3_env, results_db) -> None:
    _claim(results_db, "broken-1", "broken.mp4")
    report = FailureReport(
        stage="transcode",
        error_class="InputRejected",
        message="not a media file",
        attempt=1,
        reason=RejectReason.NOT_MEDIA.value,
        retryable=False,
    )
    assert results_db.set_outcome("broken-1", "failed", report)
    results_db.finish("broken-1", "failed")

    video = api.get("/videos/broken-1", headers=airflow_auth.header("viewer")).json()
    assert video["state"] == "failed"
    assert video["error"]["reason"] == "not_media"
    assert video["error"]["message"] == "not a media file"
    assert video["error"]["stage"] == "transcode"
    assert video["error_report_key"] == "failed/broken.mp4.error.json"
    assert video["outputs"] is None and video["analysis"] is None


def test_a_processing_video_has_no_results_yet(api, airflow_auth, s3_env, results_db) -> None:
    _claim(results_db, "busy-1", "busy.mov")
    video = api.get("/videos/busy-1", headers=airflow_auth.header("viewer")).json()
    assert video["state"] == "processing" and video["outcome"] is None
    assert video["current_key"] == "processing/busy.mov"
    assert video["finished_at"] is None and video["outputs"] is None and video["analysis"] is None


def test_an_unknown_video_is_404_with_a_hint(api, airflow_auth, s3_env, results_db) -> None:
    response = api.get("/videos/nope", headers=airflow_auth.header("viewer"))
    assert response.status_code == 404
    assert "GET /videos?key=" in response.json()["detail"]


def test_listing_filters_by_state_and_key_newest_first_and_bounds_the_limit(
    api, airflow_auth, s3_env, results_db, s3_client
) -> None:
    headers = airflow_auth.header("viewer")
    _claim(results_db, "a-1", "a.mp4")
    _claim(results_db, "b-1", "b.mp4")
    results_db.set_outcome("b-1", "failed", FailureReport(stage="probe", error_class="X", message="bad", attempt=1))
    results_db.finish("b-1", "failed")
    _complete(results_db, s3_client, s3_env, "c-1", "c.mp4")

    everything = api.get("/videos", headers=headers).json()
    assert [v["video_id"] for v in everything["videos"]] == ["c-1", "b-1", "a-1"]
    assert everything["count"] == 3

    failed = api.get("/videos", params={"state": "failed"}, headers=headers).json()
    assert [(v["video_id"], v["error_message"]) for v in failed["videos"]] == [("b-1", "bad")]

    by_key = api.get("/videos", params={"key": "a.mp4"}, headers=headers).json()
    assert [v["video_id"] for v in by_key["videos"]] == ["a-1"]

    assert len(api.get("/videos", params={"limit": 2}, headers=headers).json()["videos"]) == 2
    for bad in ({"limit": 0}, {"limit": 501}, {"state": "lost"}):
        assert api.get("/videos", params=bad, headers=headers).status_code == 422, bad


def test_docs_and_openapi_are_served(api) -> None:
    schema = api.get("/openapi.json").json()
    assert {"/uploads", "/videos", "/videos/{video_id}"} <= set(schema["paths"])
    assert "UploadTicket" in schema["components"]["schemas"]
    # The bearer scheme shows in the docs so "Authorize" accepts an Airflow token.
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
