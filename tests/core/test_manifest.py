"""core.stage_outputs and core.manifest: typed stage results cross XCom as dicts, and the manifest says what
a published video's folder holds."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from include.video_pipeline.core.manifest import (
    MANIFEST_VERSION,
    ManifestInput,
    build_manifest,
    encode_manifest,
    file_entry,
    media_flags,
)
from include.video_pipeline.core.stage_outputs import AnalysisOutput, MediaOutput, TranscriptOutput

FILES = [{"name": "video.mp4", "size": 3, "sha256": "ab", "content_type": "video/mp4"}]


def test_results_round_trip_through_their_dicts() -> None:
    media = MediaOutput(files=FILES, duration=2.5, has_video=True, has_audio=True, audio_tracks=[1], hls="hls/m.m3u8")
    transcript = TranscriptOutput(files=FILES, language="ru", quality="good", segments=3, audio_track={"index": 1})
    analysis = AnalysisOutput(files=FILES, analyzer="offline", flags=["no_audio"], cacheable=False)
    for result in (media, transcript, analysis):
        data = result.to_dict()
        assert json.loads(json.dumps(data)) == data  # plain JSON: what XCom and the ledger hold
        assert type(result).from_dict(data) == result


def test_a_result_without_hls_never_names_it() -> None:
    data = MediaOutput(files=FILES, duration=1.0).to_dict()
    assert "hls" not in data
    assert list(data) == ["files", "duration", "has_video", "has_audio", "remuxed", "audio_tracks", "media_flags"]


def test_older_results_read_back_with_defaults() -> None:
    # A duplicate upload may reuse a result recorded before a field existed, or by a stage of its own.
    media = MediaOutput.from_dict({"files": FILES, "duration": 4.0, "has_video": True, "retired_field": 1})
    assert (media.audio_tracks, media.media_flags, media.hls) == ([], {}, None)
    assert TranscriptOutput.from_dict(None) == TranscriptOutput()
    assert AnalysisOutput.from_dict({"files": []}).cacheable is True
    assert TranscriptOutput.from_dict({"files": FILES}).file("video.mp4") == FILES[0]
    assert TranscriptOutput.from_dict({"files": FILES}).file("transcript.json") is None


def test_from_dict_copies_the_file_entries() -> None:
    data = {"files": [dict(FILES[0])]}
    MediaOutput.from_dict(data).files[0]["key"] = "outputs/v/video.mp4"  # publish adds keys to its copy
    assert "key" not in data["files"][0]


def test_the_manifest_lists_every_file_and_the_report() -> None:
    media = MediaOutput(
        files=FILES, duration=2.0, has_video=True, has_audio=True, audio_tracks=[1], media_flags={"late_audio": "x"}
    )
    transcript = TranscriptOutput(media_flags={"gaps": "y"}, audio_track={"index": 1, "reason": "only track"})
    flags = media_flags(media, transcript)
    assert flags == {"late_audio": "x", "gaps": "y"}
    page = b"<html></html>"
    report = file_entry("report.html", page, "text/html; charset=utf-8", "outputs/v1/report.html")
    assert report["sha256"] == hashlib.sha256(page).hexdigest() and report["size"] == len(page)
    files = [{**FILES[0], "key": "outputs/v1/video.mp4"}, {"name": "analysis.json", "key": "outputs/v1/analysis.json"}]
    manifest = build_manifest(
        ManifestInput(
            video_id="v1",
            source_key="team/clip.mp4",
            source_name="clip.mp4",
            source_size=10,
            source_etag="e",
            published_at=datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
            run_id="run-1",
            media=media,
            transcript_output=transcript,
            transcript={"language": "ru", "quality": "good", "backend": "faster-whisper", "model": "small"},
            analysis={"analyzer": "offline", "model": None, "prompt_version": "v1", "made_by": "offline"},
            report=report,
            files=files,
            media_flags=flags,
        )
    )
    assert list(manifest) == [
        "manifest_version",
        "video_id",
        "source",
        "published_at",
        "run_id",
        "media",
        "video_outputs",
        "media_flags",
        "transcript",
        "analysis",
        "report",
        "files",
    ]
    assert manifest["manifest_version"] == MANIFEST_VERSION
    assert manifest["source"] == {"key": "team/clip.mp4", "name": "clip.mp4", "size": 10, "etag": "e"}
    assert manifest["published_at"] == "2026-01-02T03:04:05+00:00"
    # The media facts without the files and flags (those are listed on their own).
    assert manifest["media"] == {
        "duration": 2.0,
        "has_video": True,
        "has_audio": True,
        "remuxed": False,
        "audio_tracks": [1],
    }
    assert manifest["video_outputs"] is True and manifest["media_flags"] == flags
    assert manifest["transcript"] == {
        "language": "ru",
        "quality": "good",
        "backend": "faster-whisper",
        "model": "small",
        "audio_track": {"index": 1, "reason": "only track"},
    }
    assert manifest["report"] == "outputs/v1/report.html"
    assert [f["name"] for f in manifest["files"]] == ["analysis.json", "report.html", "video.mp4"]
    assert json.loads(encode_manifest(manifest)) == manifest
