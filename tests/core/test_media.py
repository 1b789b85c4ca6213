"""core.media without ffmpeg: ffprobe JSON in, decisions and argument lists out."""

from __future__ import annotations

import ast
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from include.video_pipeline.core import media
from include.video_pipeline.core.errors import InputRejected, RejectReason
from include.video_pipeline.core.media import (
    MediaInfo,
    check_complete_output,
    classify_ffmpeg_failure,
    classify_probe_failure,
    output_size,
    parse_ffmpeg_banner,
    parse_probe,
    plan_poster,
    plan_thumbnails,
    plan_transcode,
    progress_seconds,
    render_thumbnails_vtt,
    sniff_container,
    stage_timeout,
    transcode_args,
    validate_media,
)

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
GiB = 1024**3


def video_stream(index: int = 0, **overrides: Any) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "index": index,
        "codec_type": "video",
        "codec_name": "h264",
        "profile": "High",
        "width": 1280,
        "height": 720,
        "pix_fmt": "yuv420p",
        "r_frame_rate": "30/1",
        "avg_frame_rate": "30/1",
        "sample_aspect_ratio": "1:1",
        "field_order": "progressive",
        "bit_rate": "3000000",
        "duration": "10.0",
        "disposition": {"default": 1, "attached_pic": 0},
    }
    stream.update(overrides)
    return stream


def audio_stream(index: int = 1, **overrides: Any) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "index": index,
        "codec_type": "audio",
        "codec_name": "aac",
        "profile": "LC",
        "channels": 2,
        "sample_rate": "48000",
        "duration": "10.0",
        "disposition": {"default": 1, "attached_pic": 0},
        "tags": {"language": "rus"},
    }
    stream.update(overrides)
    return stream


def probe(*streams: dict[str, Any], container: str = MP4, duration: str | None = "10.0") -> dict[str, Any]:
    fmt: dict[str, Any] = {"format_name": container, "size": "5000000", "bit_rate": "3200000"}
    if duration is not None:
        fmt["duration"] = duration
    return {"format": fmt, "streams": list(streams)}


def info_of(*streams: dict[str, Any], **kwargs: Any) -> MediaInfo:
    return parse_probe(probe(*streams, **kwargs))


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("stream_extra", "expected_rotation", "display"),
    [
        ({}, 0, (1280, 720)),
        # ffprobe's display matrix angle is counter-clockwise; phones write -90.
        ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}, 90, (720, 1280)),
        ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 90}]}, 270, (720, 1280)),
        ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 180}]}, 180, (1280, 720)),
        ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -89.99}]}, 90, (720, 1280)),
        ({"tags": {"rotate": "90"}}, 90, (720, 1280)),
        ({"tags": {"rotate": "270"}}, 270, (720, 1280)),
        ({"side_data_list": [{"side_data_type": "Mastering display metadata"}]}, 0, (1280, 720)),
    ],
)
def test_rotation_and_display_size(stream_extra: dict[str, Any], expected_rotation: int, display: tuple[int, int]):
    info = info_of(video_stream(**stream_extra))
    assert info.video is not None
    assert info.video.rotation == expected_rotation
    assert (info.video.display_width, info.video.display_height) == display
    assert info.video.portrait is (display[1] > display[0])


@pytest.mark.parametrize(
    ("pix_fmt", "bits_per_raw_sample", "depth"),
    [
        ("yuv420p", None, 8),
        ("yuv420p10le", None, 10),
        ("p010le", None, 10),
        ("yuv422p12be", None, 12),
        ("nv12", "10", 10),
    ],
)
def test_bit_depth(pix_fmt: str, bits_per_raw_sample: str | None, depth: int):
    extra = {"bits_per_raw_sample": bits_per_raw_sample} if bits_per_raw_sample else {}
    info = info_of(video_stream(pix_fmt=pix_fmt, **extra))
    assert info.video is not None and info.video.bit_depth == depth


@pytest.mark.parametrize(
    ("r_rate", "avg_rate", "fps", "vfr"),
    [
        ("30/1", "30/1", 30.0, False),
        ("30000/1001", "30000/1001", 29.97, False),
        ("30/1", "525/29", 18.103, True),
        ("0/0", "0/0", None, False),
    ],
)
def test_frame_rate_and_vfr_hint(r_rate: str, avg_rate: str, fps: float | None, vfr: bool):
    info = info_of(video_stream(r_frame_rate=r_rate, avg_frame_rate=avg_rate))
    assert info.video is not None
    assert info.video.frame_rate == fps
    assert info.video.variable_frame_rate is vfr


def test_hdr_interlace_and_anamorphic_are_detected():
    info = info_of(
        video_stream(color_transfer="smpte2084", field_order="tt", sample_aspect_ratio="16:15", width=720, height=576)
    )
    assert info.video is not None
    assert info.video.hdr == "pq"
    assert info.video.interlaced
    assert info.video.sample_aspect == Fraction(16, 15)
    assert (info.video.display_width, info.video.display_height) == (768, 576)


def test_cover_art_is_not_a_video_stream():
    cover = video_stream(index=1, codec_name="png", disposition={"default": 0, "attached_pic": 1})
    info = info_of(audio_stream(index=0, codec_name="mp3"), cover, container="mp3")
    assert info.video is None
    assert info.audio_only


@pytest.mark.parametrize(
    ("defaults", "expected_index"),
    [((0, 1), 2), ((1, 1), 1), ((0, 0), 1)],
)
def test_default_audio_track(defaults: tuple[int, int], expected_index: int):
    tracks = [
        audio_stream(index=i + 1, disposition={"default": d, "attached_pic": 0}, tags={"language": lang})
        for i, (d, lang) in enumerate(zip(defaults, ("eng", "rus"), strict=True))
    ]
    info = info_of(video_stream(), *tracks)
    assert info.default_audio is not None and info.default_audio.index == expected_index


def test_duration_falls_back_to_streams_and_size_to_disk():
    info = parse_probe(probe(video_stream(duration="7.5"), audio_stream(duration="8.25"), duration=None), size_bytes=42)
    assert info.duration == 8.25
    assert info.size_bytes == 42


def test_undetermined_language_is_none():
    info = info_of(video_stream(), audio_stream(tags={"language": "und"}))
    assert info.audio[0].language is None


# ------------------------------------------------------------------------ refusals


LIMITS = {"max_bytes": 10 * GiB, "max_duration_seconds": 4 * 3600}


@pytest.mark.parametrize(
    ("data", "size", "reason"),
    [
        (probe(video_stream()), 0, RejectReason.EMPTY_FILE),
        (probe(video_stream()), 11 * GiB, RejectReason.TOO_LARGE),
        (probe(video_stream(codec_name="mjpeg"), container="jpeg_pipe", duration=None), 9000, RejectReason.NOT_MEDIA),
        (probe(video_stream(codec_name="png"), container="png_pipe", duration=None), 9000, RejectReason.NOT_MEDIA),
        (probe({"index": 0, "codec_type": "subtitle", "codec_name": "subrip"}), 500, RejectReason.NO_STREAMS),
        (probe(container="matroska,webm"), 500, RejectReason.NO_STREAMS),
        (probe(video_stream(codec_name=None), audio_stream()), 500, RejectReason.UNSUPPORTED_CODEC),
        (probe(audio_stream(codec_name="none"), container="wav"), 500, RejectReason.UNSUPPORTED_CODEC),
        (probe(video_stream(width=0, height=0)), 500, RejectReason.CORRUPT),
        (probe(video_stream(duration=None), duration=None), 500, RejectReason.CORRUPT),
        (probe(video_stream(), duration=str(4 * 3600 + 1)), 500, RejectReason.TOO_LONG),
    ],
)
def test_validate_refuses(data: dict[str, Any], size: int, reason: RejectReason):
    info = parse_probe(data, size_bytes=size)
    with pytest.raises(InputRejected) as caught:
        validate_media(info, **LIMITS)
    assert caught.value.reason is reason
    assert str(caught.value)  # a message a person can read


@pytest.mark.parametrize(
    "data",
    [
        probe(video_stream(), audio_stream()),
        probe(video_stream()),  # silent screen recording
        probe(audio_stream(index=0), container=MP4),  # m4a voice memo
        probe(audio_stream(index=0, codec_name="pcm_s16le"), container="wav"),
    ],
)
def test_validate_accepts(data: dict[str, Any]):
    validate_media(parse_probe(data, size_bytes=1000), **LIMITS)


def test_too_long_message_names_the_limit():
    info = parse_probe(probe(video_stream(), duration="18000"), size_bytes=10)
    with pytest.raises(InputRejected, match=r"5:00:00.*4:00:00"):
        validate_media(info, **LIMITS)


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00", "mp4"),
        (b"\x00\x00\x00\x08wide\x00\x00", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "matroska"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"OggS\x00\x02", "ogg"),
        (b"ID3\x04\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mpeg-audio"),
        (b"<!DOCTYPE html><html>", None),
        (b"%PDF-1.7\n", None),
        (b"PK\x03\x04", None),
        (b"", None),
    ],
)
def test_sniff_container(head: bytes, container: str | None):
    assert sniff_container(head) == container


@pytest.mark.parametrize(
    ("stderr", "head", "reason"),
    [
        # The same ffprobe message, told apart by the file's first bytes.
        ("moov atom not found\nInvalid data found when processing input", b"<html>", RejectReason.NOT_MEDIA),
        ("moov atom not found\nInvalid data found when processing input", b"\0\0\0\x20ftypisom", RejectReason.CORRUPT),
        ("EBML header parsing failed", b"\x1a\x45\xdf\xa3", RejectReason.CORRUPT),
        ("something unexpected", b"\0\0\0\x20ftypisom", RejectReason.CORRUPT),
        ("x.mp4: Permission denied", b"\0\0\0\x20ftypisom", None),
        ("x.mp4: No such file or directory", b"", None),
    ],
)
def test_classify_probe_failure(stderr: str, head: bytes, reason: RejectReason | None):
    assert classify_probe_failure(stderr, head) is reason


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("[h264 @ 0x1] Invalid NAL unit size\nError while decoding stream #0:0", RejectReason.CORRUPT),
        ("stream 1, offset 0x880c: partial file", RejectReason.CORRUPT),
        ("Decoder (codec none) not found for input stream #0:0", RejectReason.UNSUPPORTED_CODEC),
        # The machine's fault wins even when decode errors were printed too.
        ("Error while decoding stream\nav_interleaved_write_frame(): No space left on device", None),
        ("Conversion failed!", None),
    ],
)
def test_classify_ffmpeg_failure(stderr: str, reason: RejectReason | None):
    assert classify_ffmpeg_failure(stderr) is reason


@pytest.mark.parametrize(
    ("expected", "actual", "ok"), [(3.0, 1.5, False), (3.0, 2.6, True), (600, 590, True), (600, 580, False)]
)
def test_check_complete_output(expected: float, actual: float, ok: bool):
    if ok:
        check_complete_output(expected, actual)
    else:
        with pytest.raises(InputRejected) as caught:
            check_complete_output(expected, actual)
        assert caught.value.reason is RejectReason.CORRUPT


# ------------------------------------------------------------------------ planning


@pytest.mark.parametrize(
    ("size", "max_height", "expected"),
    [
        ((1920, 1080), 720, (1280, 720)),
        ((1080, 1920), 720, (720, 1280)),  # portrait: the short side is bounded
        ((1440, 1080), 720, (960, 720)),
        ((640, 480), 720, (640, 480)),  # never scaled up
        ((319, 239), 720, (318, 238)),  # evened down, never up
        ((1280, 720), 240, (426, 240)),
        ((3840, 2160), 144, (256, 144)),
    ],
)
def test_output_size(size: tuple[int, int], max_height: int, expected: tuple[int, int]):
    assert output_size(*size, max_height) == expected


def test_web_ready_mp4_is_remuxed():
    plan = plan_transcode(info_of(video_stream(), audio_stream()))
    assert plan.remux
    assert plan.video is not None and plan.video.copy
    assert plan.audio is not None and plan.audio.copy
    assert plan.reasons == ()
    assert (plan.video.width, plan.video.height) == (1280, 720)


def test_video_without_audio_is_remuxed_with_no_audio_plan():
    plan = plan_transcode(info_of(video_stream()))
    assert plan.remux and plan.audio is None


def test_audio_only_plan_has_no_video_outputs():
    plan = plan_transcode(info_of(audio_stream(index=0), container=MP4))
    assert not plan.has_video_outputs
    assert not plan.remux
    with pytest.raises(ValueError, match="audio-only"):
        transcode_args("in.m4a", "out.mp4", plan)


@pytest.mark.parametrize(
    ("video_extra", "container", "reason_fragment"),
    [
        ({"codec_name": "hevc", "profile": "Main"}, MP4, "hevc"),
        ({"codec_name": "vp9", "profile": "Profile 0"}, "matroska,webm", "vp9"),
        ({"pix_fmt": "yuv420p10le", "profile": "High 10"}, MP4, "yuv420p10le"),
        ({"pix_fmt": "yuv444p", "profile": "High 4:4:4 Predictive"}, MP4, "profile"),
        ({"side_data_list": [{"rotation": -90}]}, MP4, "rotated 90"),
        ({"width": 1920, "height": 1080}, MP4, "larger than 720p"),
        ({"sample_aspect_ratio": "4:3"}, MP4, "non-square"),
        ({"field_order": "tt"}, MP4, "interlaced"),
        ({"bit_rate": "40000000"}, MP4, "bit rate"),
        ({"r_frame_rate": "120/1", "avg_frame_rate": "120/1"}, MP4, "fps"),
        ({}, "avi", "container avi"),
    ],
)
def test_reencode_reasons(video_extra: dict[str, Any], container: str, reason_fragment: str):
    plan = plan_transcode(info_of(video_stream(**video_extra), audio_stream(), container=container))
    assert not plan.remux
    assert plan.video is not None and not plan.video.copy
    assert any(reason_fragment in r for r in plan.reasons), plan.reasons
    assert plan.video.filters[-1] == "format=yuv420p"
    assert plan.video.width % 2 == 0 and plan.video.height % 2 == 0


def test_rotated_phone_video_plans_portrait_output():
    plan = plan_transcode(info_of(video_stream(width=1920, height=1080, side_data_list=[{"rotation": -90}])))
    assert plan.video is not None
    assert (plan.video.width, plan.video.height) == (720, 1280)


def test_hdr_is_tonemapped_only_when_possible():
    info = info_of(
        video_stream(pix_fmt="yuv420p10le", profile="Main 10", codec_name="hevc", color_transfer="arib-std-b67")
    )
    with_tonemap = plan_transcode(info, can_tonemap=True)
    without = plan_transcode(info, can_tonemap=False)
    assert with_tonemap.video is not None and without.video is not None
    assert any("tonemap" in f for f in with_tonemap.video.filters)
    assert any("arib-std-b67" in f for f in with_tonemap.video.filters)
    assert not any("tonemap" in f for f in without.video.filters)


def test_high_frame_rate_is_halved_not_capped():
    plan = plan_transcode(info_of(video_stream(r_frame_rate="240/1", avg_frame_rate="240/1")))
    assert plan.video is not None and "fps=60" in plan.video.filters


def test_audio_decided_separately_from_video():
    # H.264 screen recording with Opus sound: keep the picture, re-encode the sound.
    plan = plan_transcode(
        info_of(video_stream(), audio_stream(codec_name="opus", profile=None), container="matroska,webm")
    )
    assert plan.video is not None and plan.video.copy
    assert plan.audio is not None and not plan.audio.copy
    assert not plan.remux


def test_surround_is_downmixed_and_high_rates_resampled():
    plan = plan_transcode(info_of(video_stream(), audio_stream(channels=6, sample_rate="96000")))
    assert plan.audio is not None
    assert (plan.audio.copy, plan.audio.channels, plan.audio.sample_rate) == (False, 2, 48000)
    args = transcode_args("in.mov", "out.part", plan)
    assert args[args.index("-ac:a:0") + 1] == "2" and args[args.index("-ar:a:0") + 1] == "48000"


def test_default_audio_track_is_mapped():
    eng = audio_stream(index=1, disposition={"default": 0}, tags={"language": "eng"})
    rus = audio_stream(index=2, disposition={"default": 1}, tags={"language": "rus"})
    plan = plan_transcode(info_of(video_stream(), eng, rus, container="matroska,webm"))
    args = transcode_args("in.mkv", "out.part", plan)
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["0:0", "0:2"]
    assert "language=rus" in args


# ----------------------------------------------------------------- argument lists


def test_remux_args_copy_and_faststart():
    args = transcode_args("in.mp4", "out.part", plan_transcode(info_of(video_stream(), audio_stream())))
    assert args[args.index("-c:v") + 1] == "copy"
    assert args[args.index("-c:a:0") + 1] == "copy"
    assert "-vf" not in args
    assert args[args.index("-movflags") + 1] == "+faststart"
    assert args[-3:] == ["-f", "mp4", "out.part"]
    # Phone metadata (GPS, device) must not be published.
    assert args[args.index("-map_metadata") + 1] == "-1"


def test_reencode_args():
    plan = plan_transcode(info_of(video_stream(codec_name="hevc")), crf=26, preset="faster")
    args = transcode_args("in.mp4", "out.part", plan, threads=2)
    assert args[args.index("-c:v") + 1] == "libx264"
    assert args[args.index("-crf") + 1] == "26"
    assert args[args.index("-preset") + 1] == "faster"
    assert args[args.index("-threads") + 1] == "2"
    assert args[args.index("-fps_mode") + 1] == "vfr"
    assert "scale=1280:720" in args[args.index("-vf") + 1]


@pytest.mark.parametrize(
    ("duration", "fps", "start", "frames"),
    [(100.0, 30.0, 10.0, 60), (2.0, 15.0, 0.2, 3), (0.2, 15.0, 0.02, 2), (60.0, None, 6.0, 60)],
)
def test_poster_window_skips_the_opening(duration: float, fps: float | None, start: float, frames: int):
    plan = plan_poster(duration, fps)
    assert plan.start == pytest.approx(start)
    assert plan.frames == frames
    args = media.poster_args("v.mp4", "p.part", plan)
    assert args[args.index("-ss") + 1] == f"{start:.3f}"
    assert f"thumbnail=n={frames}" in args


@pytest.mark.parametrize(
    ("duration", "count", "columns", "rows"),
    [(0.4, 1, 1, 1), (2.0, 2, 2, 1), (7.9, 7, 5, 2), (3600.0, 25, 5, 5)],
)
def test_thumbnail_sheet_layout(duration: float, count: int, columns: int, rows: int):
    sheet = plan_thumbnails(duration, 1280, 720)
    assert len(sheet.tiles) == count
    assert (sheet.columns, sheet.rows) == (columns, rows)
    assert (sheet.tile_width, sheet.tile_height) == (160, 90)
    assert sheet.tiles[0].start == 0 and sheet.tiles[-1].end == pytest.approx(duration)
    # Cues are contiguous, and every tile lies inside the sprite.
    for before, after in zip(sheet.tiles, sheet.tiles[1:], strict=False):
        assert before.end == after.start
    assert all(t.x + t.width <= sheet.width and t.y + t.height <= sheet.height for t in sheet.tiles)
    args = media.thumbnail_sheet_args("v.mp4", "s.part", sheet)
    assert args.count("-i") == count
    assert f"tile={columns}x{rows}" in args[args.index("-filter_complex") + 1]


def test_thumbnails_vtt():
    vtt = render_thumbnails_vtt(plan_thumbnails(3725.0, 720, 1280), "thumbnails.jpg")
    lines = vtt.splitlines()
    assert lines[0] == "WEBVTT"
    assert lines[2] == "00:00:00.000 --> 00:02:29.000"
    assert lines[3] == "thumbnails.jpg#xywh=0,0,160,284"
    assert lines[-2].endswith("--> 01:02:05.000")  # the last cue ends at the duration
    assert lines[-1] == "thumbnails.jpg#xywh=640,1136,160,284"
    assert vtt.endswith("\n")


# ------------------------------------------------------------ time budget, progress


@pytest.mark.parametrize(("duration", "expected"), [(10.0, 120.0), (3600.0, 14400.0), (0.0, 120.0)])
def test_stage_timeout(duration: float, expected: float):
    assert stage_timeout(duration, factor=4.0, floor_seconds=120) == expected


@pytest.mark.parametrize(
    ("line", "seconds"),
    [
        ("out_time_us=1500000\n", 1.5),
        ("out_time_ms=2000000", 2.0),
        ("out_time_us=N/A", None),
        ("frame=12", None),
        ("progress=end", None),
    ],
)
def test_progress_seconds(line: str, seconds: float | None):
    assert progress_seconds(line) == seconds


# --------------------------------------------------------------- ffprobe fallback

BANNER_FFMPEG5 = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from '/tmp/rot.mp4':
  Metadata:
    major_brand     : isom
  Duration: 00:00:02.00, start: 0.000000, bitrate: 553 kb/s
  Stream #0:0[0x1](und): Video: h264 (Constrained Baseline) (avc1 / 0x31637661), yuv420p(progressive), 320x180 [SAR 1:1 DAR 16:9], 415 kb/s, 15 fps, 15 tbr, 15360 tbn (default)
    Metadata:
      handler_name    : VideoHandler
    Side data:
      displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](eng): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, 127 kb/s
  Stream #0:2[0x3](rus): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, 5.1, fltp, 320 kb/s (default)
At least one output file must be specified
"""  # noqa: E501 - verbatim ffmpeg output

BANNER_FFMPEG7_AUDIO = """\
Input #0, mp3, from 'cover.mp3':
  Duration: 00:01:02.04, start: 0.025057, bitrate: 104 kb/s
  Stream #0:0: Audio: mp3 (mp3float), 44100 Hz, mono, fltp, 96 kb/s
  Stream #0:1: Video: png, rgb24(pc, gbr/unknown/unknown), 64x64, 90k tbr, 90k tbn (attached pic)
      Display Matrix: rotation of 90.00 degrees
"""


def test_parse_ffmpeg_banner_video():
    info = parse_probe(parse_ffmpeg_banner(BANNER_FFMPEG5), size_bytes=1000)
    assert info.container == MP4 and info.duration == 2.0
    assert info.video is not None
    assert (info.video.codec, info.video.width, info.video.height, info.video.pix_fmt) == ("h264", 320, 180, "yuv420p")
    assert info.video.rotation == 90 and info.video.portrait
    assert info.video.frame_rate == 15.0
    assert [(a.language, a.channels, a.sample_rate, a.default) for a in info.audio] == [
        ("eng", 2, 48000, False),
        ("rus", 6, 44100, True),
    ]
    assert info.default_audio is not None and info.default_audio.index == 2


def test_parse_ffmpeg_banner_audio_with_cover_art():
    info = parse_probe(parse_ffmpeg_banner(BANNER_FFMPEG7_AUDIO), size_bytes=1000)
    assert info.audio_only
    assert info.duration == pytest.approx(62.04)
    assert info.audio[0].codec == "mp3" and info.audio[0].channels == 1


def test_parse_ffmpeg_banner_rejects_unreadable_input():
    with pytest.raises(ValueError, match="no input"):
        parse_ffmpeg_banner("x.mp4: Invalid data found when processing input\n")


# ------------------------------------------------------------------------- purity


def test_core_media_imports_nothing_heavy():
    # core.media is a package: read every module of it, not just its __init__.
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for path in sorted(Path(media.__file__).parent.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    forbidden = {"airflow", "boto3", "torch", "faster_whisper", "av", "ffmpeg", "subprocess"}
    assert not {name.split(".")[0] for name in imported} & forbidden


def test_a_decompression_bomb_is_refused_before_any_decoding():
    """A tiny file that declares a 16000x16000 picture would need ~380 MB per decoded frame."""
    from include.video_pipeline.core.errors import InputRejected, RejectReason
    from include.video_pipeline.core.media import parse_probe, validate_media

    info = parse_probe(
        {
            "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "2.0", "size": "4096"},
            "streams": [{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 16000, "height": 16000}],
        },
        size_bytes=4096,
    )
    with pytest.raises(InputRejected) as rejected:
        validate_media(info, max_bytes=10**9, max_duration_seconds=3600)
    assert rejected.value.reason is RejectReason.TOO_LARGE
    assert "16000x16000" in rejected.value.message
    validate_media(info, max_bytes=10**9, max_duration_seconds=3600, max_video_pixels=16000 * 16000)


# ----------------------------------------------------------------- HLS ladder


@pytest.mark.parametrize(
    ("short_side", "heights", "expected"),
    [
        (1080, (360, 720, 1080), (360, 720, 1080)),
        (2160, (1080, 360, 720), (360, 720, 1080)),
        (720, (360, 720, 1080), (360, 720)),
        (480, (360, 720, 1080), (360,)),
        (719, (360, 720, 1080), (360,)),
        # Smaller than every rung: still one rung, the smallest (kept at the source's size).
        (240, (360, 720, 1080), (360,)),
        (1080, (720, 720, 480), (480, 720)),
    ],
)
def test_hls_heights_never_upscale(short_side: int, heights: tuple[int, ...], expected: tuple[int, ...]):
    assert media.hls_heights(short_side, heights) == expected


def test_hls_heights_needs_a_rung():
    with pytest.raises(ValueError, match="at least one"):
        media.hls_heights(720, ())


_ROTATED = {"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (video_stream(width=854, height=480), [("360p", 640, 360)]),
        (video_stream(), [("360p", 640, 360), ("720p", 1280, 720)]),
        (
            video_stream(width=1920, height=1080),
            [("360p", 640, 360), ("720p", 1280, 720), ("1080p", 1920, 1080)],
        ),
        # A portrait phone clip (landscape-coded, rotated): every rung is portrait,
        # and "720p" bounds the short side, as max_height does for the mp4.
        (
            video_stream(width=1920, height=1080, **_ROTATED),
            [("360p", 360, 640), ("720p", 720, 1280), ("1080p", 1080, 1920)],
        ),
        (video_stream(width=1080, height=1920), [("360p", 360, 640), ("720p", 720, 1280), ("1080p", 1080, 1920)]),
        # Too small for the smallest rung: one rung at the source's own size, named for it.
        (video_stream(width=320, height=240), [("240p", 320, 240)]),
        (video_stream(width=319, height=239), [("238p", 318, 238)]),
        # Anamorphic DV (720x480, SAR 8:9) is 640x480 on screen.
        (video_stream(width=720, height=480, sample_aspect_ratio="8:9"), [("360p", 480, 360)]),
    ],
)
def test_plan_hls_renditions(stream: dict[str, Any], expected: list[tuple[str, int, int]]):
    plan = media.plan_hls(info_of(stream, audio_stream()))
    assert plan is not None
    assert [(r.name, r.width, r.height) for r in plan.renditions] == expected
    # Bigger rungs get bigger bit-rate caps; the buffer holds two seconds at the cap.
    caps = [r.maxrate for r in plan.renditions]
    assert caps == sorted(caps) and len(set(caps)) == len(caps)
    assert all(r.bufsize == 2 * r.maxrate for r in plan.renditions)


def test_plan_hls_none_for_audio_only():
    assert media.plan_hls(info_of(audio_stream(index=0), container="mp3")) is None


def test_plan_hls_audio_is_encoded_once_as_stereo_aac():
    eng = audio_stream(index=1, disposition={"default": 0}, tags={"language": "eng"})
    surround = audio_stream(index=2, channels=6, sample_rate="96000")
    plan = media.plan_hls(info_of(video_stream(), eng, surround, container="matroska,webm"))
    assert plan is not None and plan.audio is not None
    assert (plan.audio.stream_index, plan.audio.copy, plan.audio.channels, plan.audio.sample_rate) == (
        2,
        False,
        2,
        48000,
    )
    assert plan.audio_channels == 2 and plan.audio_playlist == "audio/index.m3u8"
    mono = media.plan_hls(info_of(video_stream(), audio_stream(channels=1)))
    assert mono is not None and mono.audio_channels == 1


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_hls_args_one_process_for_the_whole_ladder():
    info = info_of(video_stream(width=1920, height=1080), audio_stream())
    plan = media.plan_hls(info, crf=26, preset="faster", segment_seconds=4)
    assert plan is not None
    args = media.hls_args("/in/source.mp4", plan, threads=3)
    assert args.count("-i") == 1 and _arg(args, "-i") == "/in/source.mp4"
    graph = _arg(args, "-filter_complex")
    # One decode, split three ways, each scaled to its rung.
    assert graph.startswith("[0:0]split=3[s0][s1][s2];")
    for i, size in enumerate(("640:360", "1280:720", "1920:1080")):
        assert f"[s{i}]scale={size}:flags=bicubic,setsar=1,format=yuv420p[v{i}]" in graph
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["[v0]", "[v1]", "[v2]", "0:1"]  # the audio once, shared by every rung
    assert args.count("-c:v") == 1 and _arg(args, "-c:v") == "libx264"
    assert (_arg(args, "-crf"), _arg(args, "-preset"), _arg(args, "-threads")) == ("26", "faster", "3")
    assert _arg(args, "-force_key_frames") == "expr:gte(t,n_forced*4)"
    assert _arg(args, "-hls_time") == "4"
    assert [_arg(args, f"-maxrate:v:{i}") for i in range(3)] == [str(r.maxrate) for r in plan.renditions]
    assert _arg(args, "-c:a") == "aac" and _arg(args, "-b:a") == "128k"
    assert _arg(args, "-hls_segment_type") == "fmp4"
    assert _arg(args, "-hls_playlist_type") == "vod"
    assert _arg(args, "-var_stream_map") == (
        "v:0,agroup:audio,name:360p v:1,agroup:audio,name:720p v:2,agroup:audio,name:1080p a:0,agroup:audio,name:audio"
    )
    assert _arg(args, "-hls_fmp4_init_filename") == "init_%v.mp4"
    assert _arg(args, "-hls_segment_filename") == "%v/seg_%05d.m4s"
    assert args[-1] == "%v/index.m3u8"
    assert _arg(args, "-map_metadata") == "-1"
    assert "copy" not in args


def test_hls_args_silent_single_rung():
    plan = media.plan_hls(info_of(video_stream(width=640, height=360)))
    assert plan is not None and plan.audio is None and plan.audio_playlist is None
    args = media.hls_args("in.mp4", plan)
    assert _arg(args, "-var_stream_map") == "v:0,name:360p"
    # With one variant stream ffmpeg does not expand %v in the init name.
    assert _arg(args, "-hls_fmp4_init_filename") == "init_360p.mp4"
    assert "-c:a" not in args and "-threads" not in args


def test_hls_reuses_the_mp4_filters_before_the_split():
    hdr = video_stream(
        codec_name="hevc",
        pix_fmt="yuv420p10le",
        color_transfer="smpte2084",
        field_order="tt",
        r_frame_rate="120/1",
        avg_frame_rate="120/1",
    )
    info = info_of(hdr)
    mp4 = plan_transcode(info, max_height=720)
    plan = media.plan_hls(info, heights=(360, 720))
    assert mp4.video is not None and plan is not None
    shared = [f for f in mp4.video.filters if not f.startswith(("scale=", "setsar", "format=yuv420p"))]
    assert plan.source_filters == tuple(shared)
    assert any(f.startswith("zscale") for f in shared) and "fps=60" in shared and shared[0].startswith("yadif")
    graph = media.hls_filter_graph(plan)
    head, _, tail = graph.partition("split=2")
    assert head == "[0:0]" + ",".join(shared) + ","
    assert "zscale" not in tail and "yadif" not in tail  # done once, not once per rung
    assert plan.frame_rate == 60.0
    no_tonemap = media.plan_hls(info, can_tonemap=False)
    assert no_tonemap is not None and not any("zscale" in f for f in no_tonemap.source_filters)


_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init_720p.mp4"
#EXTINF:4.000000,
seg_00001.m4s
#EXTINF:4.000000,
seg_00002.m4s
#EXTINF:1.500000,
seg_00003.m4s
#EXT-X-ENDLIST
"""


def test_parse_media_playlist():
    playlist = media.parse_media_playlist(_PLAYLIST)
    assert playlist.target_duration == 4.0 and playlist.init == "init_720p.mp4" and playlist.ended
    assert playlist.segments == (("seg_00001.m4s", 4.0), ("seg_00002.m4s", 4.0), ("seg_00003.m4s", 1.5))
    assert playlist.duration == pytest.approx(9.5)
    unfinished = media.parse_media_playlist(_PLAYLIST.replace("#EXT-X-ENDLIST\n", ""))
    assert not unfinished.ended


@pytest.mark.parametrize("text", ["", "<html>", "#EXTM3U\nseg_00001.m4s\n"])
def test_parse_media_playlist_refuses(text: str):
    with pytest.raises(ValueError):
        media.parse_media_playlist(text)


@pytest.mark.parametrize(
    ("segments", "target", "expected"),
    [
        # Steady: 1 Mbit/s everywhere.
        ([(4.0, 500_000)] * 3, 4.0, 1_000_000),
        # A busy segment in the middle is the peak, not the average.
        ([(4.0, 500_000), (4.0, 1_500_000), (4.0, 500_000)], 4.0, 3_000_000),
        # A tiny last segment (0.1 s, one keyframe) is not a run of its own: it only
        # counts together with its neighbour (4.1 s <= 1.5 x 4 s).
        ([(4.0, 500_000), (0.1, 100_000)], 4.0, 1_170_732),
        # Shorter than half a target duration altogether: the average.
        ([(1.5, 150_000)], 4.0, 800_000),
    ],
)
def test_peak_segment_bitrate(segments: list[tuple[float, int]], target: float, expected: int):
    assert media.peak_segment_bitrate(segments, target) == expected


def test_average_bitrate():
    assert media.average_bitrate([(4.0, 500_000), (4.0, 1_500_000)]) == 2_000_000
    assert media.average_bitrate([]) == 0


def test_avc_codecs_attribute_reads_the_avcc_box():
    # ... size, "avcC", version 1, profile High (0x64), constraints 0, level 3.1 (0x1f) ...
    init = b"\x00\x00\x00\x20ftypisom" + b"\x00\x00\x00\x2aavcC\x01\x64\x00\x1f\xff\xe1" + b"\x00" * 8
    assert media.avc_codecs_attribute(init) == "avc1.64001f"
    baseline = init.replace(b"\x01\x64\x00\x1f", b"\x01\x42\xc0\x1e")
    assert media.avc_codecs_attribute(baseline) == "avc1.42c01e"
    assert media.avc_codecs_attribute(b"\x00\x00\x00\x20ftypisom hvcC...") is None


def test_render_master_playlist():
    variants = [
        media.HlsVariant("720p/index.m3u8", 1280, 720, 3_000_000, 2_500_000, "avc1.64001f,mp4a.40.2", 30.0),
        media.HlsVariant("360p/index.m3u8", 640, 360, 900_000, 700_000, "avc1.64001e,mp4a.40.2", 30.0),
    ]
    text = media.render_master_playlist(variants, audio_uri="audio/index.m3u8", audio_channels=2)
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert lines[3] == (
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,'
        'CHANNELS="2",URI="audio/index.m3u8"'
    )
    # Lowest rung first.
    assert lines[4] == (
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,RESOLUTION=640x360,"
        'CODECS="avc1.64001e,mp4a.40.2",FRAME-RATE=30.000,AUDIO="audio"'
    )
    assert lines[5] == "360p/index.m3u8" and lines[7] == "720p/index.m3u8"
    assert text.endswith("\n")
    silent = media.render_master_playlist(variants[:1])
    assert "EXT-X-MEDIA" not in silent and "AUDIO=" not in silent


def test_transcode_args_are_untouched_by_the_hls_refactor():
    # The mp4's filters are built from the same helpers as the ladder's; the mp4 must not change.
    plan = plan_transcode(info_of(video_stream(width=1920, height=1080, field_order="tt")))
    assert plan.video is not None
    assert plan.video.filters == (
        "yadif=mode=send_frame:deint=interlaced",
        "scale=1280:720:flags=bicubic",
        "setsar=1",
        "format=yuv420p",
    )


# ----------------------------------------------------------------- per-stream timing


def test_matroska_duration_tags_and_start_times_are_read():
    # What ffmpeg's Matroska muxer writes: no stream duration, a DURATION tag that is the stream's end.
    data = probe(
        video_stream(0, duration=None, start_time="0.007000", tags={"DURATION": "00:00:14.407000000"}),
        audio_stream(1, duration=None, start_time="2.000000", tags={"language": "eng", "DURATION": "00:00:13.600"}),
        container="matroska,webm",
        duration="14.407",
    )
    data["format"]["start_time"] = "0.007000"
    info = parse_probe(data)
    assert info.video is not None and info.video.duration == pytest.approx(14.4)
    assert info.video.start == 0.0
    (audio,) = info.audio
    assert audio.start == pytest.approx(1.993) and audio.duration == pytest.approx(11.6)
    # mkvmerge, OBS and browsers write no such tag: the track's length is unknown, not the container's.
    bare = parse_probe(probe(audio_stream(1, duration=None, tags={}), container="matroska,webm"))
    assert bare.audio[0].duration is None and bare.duration == 10.0


def test_every_kept_audio_track_is_mapped_default_first():
    eng = audio_stream(index=1, disposition={"default": 0}, tags={"language": "eng"})
    rus = audio_stream(index=2, disposition={"default": 1}, tags={"language": "rus"}, codec_name="opus")
    info = info_of(video_stream(), eng, rus, container="matroska,webm")
    plan = plan_transcode(info, audio_tracks=[info.audio[1], info.audio[0]])
    assert [a.stream_index for a in plan.audio_tracks] == [2, 1] and plan.audio == plan.audio_tracks[0]
    assert not plan.remux  # the Opus track is re-encoded; the AAC one is copied
    args = transcode_args("in.mkv", "out.part", plan)
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["0:0", "0:2", "0:1"]
    assert args[args.index("-c:a:0") + 1] == "aac" and args[args.index("-c:a:1") + 1] == "copy"
    # Gaps are filled with silence only where the track is re-encoded (a copy cannot be filtered).
    assert args[args.index("-filter:a:0") + 1] == "aresample=async=1" and "-filter:a:1" not in args
    assert args[args.index("-disposition:a:0") + 1] == "default" and args[args.index("-disposition:a:1") + 1] == "0"
    assert ["-metadata:s:a:0", "language=rus", "-metadata:s:a:1", "language=eng"] == [
        a for a in args if a.startswith(("-metadata:s:a", "language="))
    ]


def test_hls_carries_the_track_video_mp4_starts_with():
    silent = audio_stream(index=1, disposition={"default": 1})
    speech = audio_stream(index=2, disposition={"default": 0})
    info = info_of(video_stream(), silent, speech)
    default = media.plan_hls(info)
    assert default is not None and default.audio is not None and default.audio.stream_index == 1
    plan = media.plan_hls(info, audio_track=info.audio[1])
    assert plan is not None and plan.audio is not None and plan.audio.stream_index == 2
