"""The upload rules on their own: names, types, sizes, free keys."""

from __future__ import annotations

import pytest

from include.video_pipeline.api.uploads import (
    SINGLE_PUT_LIMIT_BYTES,
    UploadRefused,
    candidate_keys,
    clean_filename,
    first_free_key,
    validate_upload,
)


@pytest.mark.parametrize(
    "name",
    ["Встреча 1.mp4", "team a/Созвон от 12.03 (финал).mov", "clip.final.v2.mkv", "ü-e\u0301.webm"],
)
def test_names_people_use_are_kept(name: str) -> None:
    import unicodedata

    assert clean_filename(name) == unicodedata.normalize("NFC", name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "../x.mp4",
        "a/../x.mp4",
        "./x.mp4",
        "a//x.mp4",
        "/x.mp4",
        "a\\x.mp4",
        "x\x00.mp4",
        "x\x1b.mp4",
        "a\u200bb.mp4",
        "x\u202e.mp4",
        " lead.mp4",
        "folder /x.mp4",
        "x/",
    ],
)
def test_names_that_escape_or_hide_are_refused(name: str) -> None:
    with pytest.raises(UploadRefused):
        clean_filename(name)


def test_content_type_parameters_and_case_are_ignored() -> None:
    upload = validate_upload(filename="a.MP4", content_type="Video/MP4; codecs=avc1", size_bytes=5, max_upload_bytes=10)
    assert upload.content_type == "video/mp4" and upload.relative_key == "a.MP4"


def test_audio_is_accepted() -> None:
    assert validate_upload(filename="call.m4a", content_type="audio/mp4", size_bytes=1, max_upload_bytes=1)


def test_the_size_limit_is_inclusive_and_capped_at_a_single_put() -> None:
    assert validate_upload(filename="a.mp4", content_type="video/mp4", size_bytes=10, max_upload_bytes=10)
    with pytest.raises(UploadRefused, match="VIDEO_PIPELINE_MAX_UPLOAD_BYTES"):
        validate_upload(filename="a.mp4", content_type="video/mp4", size_bytes=11, max_upload_bytes=10)
    with pytest.raises(UploadRefused, match="multipart"):
        validate_upload(
            filename="a.mp4",
            content_type="video/mp4",
            size_bytes=SINGLE_PUT_LIMIT_BYTES + 1,
            max_upload_bytes=10 * 1024**3,
        )


def test_candidates_keep_folder_and_extension() -> None:
    assert candidate_keys("f/Встреча.mp4")[:3] == ["f/Встреча.mp4", "f/Встреча (2).mp4", "f/Встреча (3).mp4"]
    assert first_free_key("a.mp4", lambda key: key != "a (4).mp4") == "a (4).mp4"
    assert first_free_key("a.mp4", lambda key: True) is None
