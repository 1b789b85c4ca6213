"""GET /search and /library over a real PostgreSQL: Russian morphology, English stemming, times, filters.

Transcripts and analyses are written with the pipeline's own hook methods, so the
search index is kept by the migration's triggers exactly as in production.
"""

from __future__ import annotations

import pytest

from include.video_pipeline.core.errors import FailureReport, RejectReason

RUN = "manual__2026-03-01T00:00:00"

RU_SEGMENTS = [
    {"start": 0.0, "end": 4.0, "text": "Добрый день, коллеги."},
    {"start": 4.0, "end": 9.5, "text": "Сегодня обсуждаем бюджет на следующий год."},
    {"start": 9.5, "end": 15.0, "text": "Без бюджета проект не начнётся, бюджет нужен к пятнице."},
    {"start": 15.0, "end": 20.0, "text": "Отчёт о продажах пришлю вечером."},
]
EN_SEGMENTS = [
    {"start": 0.0, "end": 3.0, "text": "Welcome to the quarterly review."},
    {"start": 3.0, "end": 7.25, "text": "The marketing budgets were approved yesterday."},
    {"start": 7.25, "end": 12.0, "text": "Next we hire two engineers."},
]


def _video(db, vid: str, key: str, language: str, segments: list[dict], *, tags: list[str], uploaded: str) -> None:
    assert db.claim(
        video_id=vid, bucket="videos", source_key=key, etag="e-" + vid, size_bytes=1000, run_id=RUN, lease_seconds=3600
    )
    with db.cursor() as cur:
        cur.execute("UPDATE videos SET uploaded_at = %s WHERE video_id = %s", (uploaded, vid))
    db.save_transcript(
        vid,
        {
            "backend": "faster-whisper",
            "model": "small",
            "language": language,
            "language_probability": 0.98,
            "duration": segments[-1]["end"],
            "quality": "ok",
            "text": " ".join(s["text"] for s in segments),
            "segments": segments,
        },
    )
    db.save_analysis(
        vid,
        {
            "analyzer": "offline",
            "model": "",
            "prompt_version": "v1",
            "language": language,
            "data": {"title_suggestion": key, "summary": segments[1]["text"], "tags": tags, "speakers": ["Anna"]},
        },
    )
    assert db.set_outcome(vid, "succeeded")
    db.finish(vid, "completed")


@pytest.fixture
def library(results_db, s3_env):
    _video(
        results_db, "planerka-1", "Планёрка.mp4", "ru", RU_SEGMENTS, tags=["финансы"], uploaded="2026-03-01 10:00+00"
    )
    _video(
        results_db, "review-1", "Q1 review.mp4", "en", EN_SEGMENTS, tags=["recruitment"], uploaded="2026-03-05 10:00+00"
    )
    assert results_db.claim(
        video_id="bad-1",
        bucket="videos",
        source_key="bad upload.mp4",
        etag="e",
        size_bytes=5,
        run_id=RUN,
        lease_seconds=3600,
    )
    report = FailureReport(
        stage="transcode",
        error_class="InputRejected",
        message="bad-upload.mp4 is not a video or audio file",
        attempt=1,
        reason=RejectReason.NOT_MEDIA.value,
        video_id="bad-1",
        source_key="bad upload.mp4",
    )
    results_db.set_outcome("bad-1", "failed", report)
    results_db.finish("bad-1", "failed")
    return results_db


def _search(api, headers, q: str, **params) -> dict:
    response = api.get("/search", params={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_russian_morphology_finds_inflected_forms_with_their_time(api, airflow_auth, library) -> None:
    headers = airflow_auth.header("viewer")
    body = _search(api, headers, "бюджета")  # genitive; said as "бюджет" and "бюджета"
    segments = [h for h in body["hits"] if h["kind"] == "segment"]
    assert {h["video_id"] for h in segments} == {"planerka-1"}
    assert [h["start_seconds"] for h in segments] == [9.5, 4.0]  # two mentions rank above one
    assert segments[0]["name"] == "Планёрка.mp4" and segments[0]["language"] == "ru"
    marked = [p["text"] for p in segments[0]["snippet"] if p["hit"]]
    assert marked == ["бюджета", "бюджет"]
    assert "".join(p["text"] for p in segments[0]["snippet"]).startswith("Без бюджета проект")
    # Misses: another word with the same beginning, and a word nobody said.
    assert _search(api, headers, "бюджетный")["hits"] == []
    assert _search(api, headers, "зарплата")["hits"] == []


def test_english_stemming_and_the_other_fields(api, airflow_auth, library) -> None:
    headers = airflow_auth.header("viewer")
    hits = _search(api, headers, "budget approving")["hits"]
    segment = next(h for h in hits if h["kind"] == "segment")
    assert segment["video_id"] == "review-1" and segment["start_seconds"] == 3.0
    assert [p["text"] for p in segment["snippet"] if p["hit"]] == ["budgets", "approved"]
    assert _search(api, headers, "budgetary")["hits"] == []
    # Tags, titles and file names are searched too.
    assert [(h["video_id"], h["kind"]) for h in _search(api, headers, "recruitment")["hits"]] == [("review-1", "tags")]
    assert {h["video_id"] for h in _search(api, headers, "финансы")["hits"]} == {"planerka-1"}
    assert {h["video_id"] for h in _search(api, headers, "upload")["hits"]} == {"bad-1"}
    # Filters: by state and by arrival date.
    assert _search(api, headers, "upload", state="completed")["hits"] == []
    assert _search(api, headers, "бюджет", since="2026-03-02T00:00:00Z")["hits"] == []


def test_the_library_lists_every_video_with_the_reason_of_a_failure(api, airflow_auth, library) -> None:
    headers = airflow_auth.header("viewer")
    response = api.get("/library", headers=headers)
    assert response.status_code == 200, response.text
    videos = {v["video_id"]: v for v in response.json()["videos"]}
    assert set(videos) == {"planerka-1", "review-1", "bad-1"}
    assert videos["planerka-1"]["duration_seconds"] == 20.0 and videos["planerka-1"]["language"] == "ru"
    assert videos["planerka-1"]["speakers"] == ["Anna"]
    assert videos["bad-1"]["state"] == "failed" and videos["bad-1"]["error_reason"] == "not_media"
    # The message names the user's file, not the sanitised work copy.
    assert videos["bad-1"]["error_message"] == "bad upload.mp4 is not a video or audio file"
    failed = api.get("/library", params={"state": "failed"}, headers=headers).json()["videos"]
    assert [v["video_id"] for v in failed] == ["bad-1"]
    march_5 = api.get(
        "/library", params={"since": "2026-03-04T00:00:00Z", "until": "2026-03-06T00:00:00Z"}, headers=headers
    ).json()["videos"]
    assert [v["video_id"] for v in march_5] == ["review-1"]


def test_a_new_transcript_version_replaces_the_old_one_in_the_index(api, airflow_auth, library) -> None:
    library.save_transcript(
        "review-1",
        {
            "backend": "faster-whisper",
            "model": "medium",
            "language": "en",
            "duration": 5.0,
            "quality": "ok",
            "text": "Completely different words.",
            "segments": [{"start": 1.5, "end": 5.0, "text": "Completely different words."}],
        },
    )
    headers = airflow_auth.header("viewer")
    assert [h["kind"] for h in _search(api, headers, "budgets")["hits"]] == ["summary"]  # only the old analysis
    assert [h["start_seconds"] for h in _search(api, headers, "different")["hits"]] == [1.5]
    with library.cursor() as cur:
        cur.execute("SELECT count(*) FROM search_documents WHERE video_id = 'review-1' AND kind = 'segment'")
        assert cur.fetchone()[0] == 1


def test_search_needs_read_permission(api, library, airflow_auth) -> None:
    assert api.get("/search", params={"q": "бюджет"}).status_code == 401
    assert api.get("/library").status_code == 401
    assert api.post("/videos/bad-1/reprocess").status_code == 401
    # A viewer may read but not trigger a reprocess run.
    assert api.post("/videos/bad-1/reprocess", headers=airflow_auth.header("viewer")).status_code == 403


def test_the_search_is_documented_in_the_openapi_page(api) -> None:
    spec = api.get("/openapi.json").json()
    assert {"/search", "/library", "/videos/{video_id}/reprocess"} <= set(spec["paths"])
    assert "Russian morphology" in spec["paths"]["/search"]["get"]["description"]
    page = api.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/docs/assets/swagger-ui-bundle.js" in page.text
    bundle = api.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 500_000
    assert api.get("/docs/assets/../app.py").status_code == 404


def test_unsafe_snippets_stay_text(api, airflow_auth, library) -> None:
    library.save_transcript(
        "planerka-1",
        {
            "backend": "faster-whisper",
            "model": "large",
            "language": "ru",
            "duration": 3.0,
            "quality": "ok",
            "text": "x",
            "segments": [{"start": 0.0, "end": 3.0, "text": "<img src=x onerror=alert(1)> бюджет"}],
        },
    )
    hits = _search(api, airflow_auth.header("viewer"), "бюджет")["hits"]
    hit = next(h for h in hits if h["kind"] == "segment")
    # Plain text parts, never HTML: the page sets each as textContent.
    assert hit["snippet"][-1] == {"text": "бюджет", "hit": True}
    assert "onerror=alert(1)>" in hit["snippet"][0]["text"] and not hit["snippet"][0]["hit"]


def test_a_word_said_everywhere_is_ranked_among_a_bounded_set(api, airflow_auth, library) -> None:
    from include.video_pipeline.hooks.results_db.queries import MAX_CANDIDATES

    segments = [{"start": float(i), "end": i + 1.0, "text": f"бюджет номер {i}"} for i in range(MAX_CANDIDATES + 10)]
    library.save_transcript(
        "planerka-1",
        {
            "backend": "faster-whisper",
            "model": "huge",
            "language": "ru",
            "duration": len(segments),
            "quality": "ok",
            "text": "x",
            "segments": segments,
        },
    )
    body = _search(api, airflow_auth.header("viewer"), "бюджету")
    assert body["truncated"] is True and body["considered"] == MAX_CANDIDATES
    assert body["count"] == 50
    narrow = _search(api, airflow_auth.header("viewer"), "budgets")
    assert narrow["truncated"] is False and narrow["considered"] == narrow["count"] >= 1
