"""The outputs layout: one place names every file, its type and which ones a report lists."""

from __future__ import annotations

import pytest

from include.video_pipeline.core import outputs
from include.video_pipeline.core.subtitles import TranscriptFormat


@pytest.mark.parametrize("name", [*outputs.DOWNLOAD_ORDER, outputs.REPORT, outputs.THUMBNAILS_VTT, outputs.HLS_MASTER])
def test_every_named_output_has_a_specific_type(name: str):
    kind = outputs.content_type(name)
    assert kind != "application/octet-stream"
    if kind.startswith("text/"):
        assert kind.endswith("charset=utf-8")  # Cyrillic transcripts and reports


def test_transcript_files_are_the_ones_the_report_offers():
    names = {fmt.file_name for fmt in TranscriptFormat}
    assert names == {"transcript.srt", "transcript.vtt", "transcript.txt", "transcript.json"}
    assert names <= set(outputs.DOWNLOAD_ORDER)
    assert TranscriptFormat.SRT.content_type == "application/x-subrip; charset=utf-8"


def test_listings_keep_the_hls_master_only_and_always_the_manifest():
    names = [outputs.VIDEO, "hls/720/index.m3u8", "hls/720/seg_001.m4s", outputs.HLS_MASTER_PATH]
    assert outputs.listed_files(names) == ["hls/master.m3u8", "manifest.json", "video.mp4"]


def test_keys_of_a_video_folder():
    assert outputs.video_key("outputs/", "Встреча-7b81e226c4a3", outputs.REPORT) == (
        "outputs/Встреча-7b81e226c4a3/report.html"
    )
    assert outputs.video_key("staging/", "v1") == "staging/v1/"
