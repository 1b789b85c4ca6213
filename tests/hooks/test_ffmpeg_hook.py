"""FfmpegHook against the real ffmpeg on tiny generated clips; outputs are checked by probing them."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import subprocess
from pathlib import Path

import pytest

from include.video_pipeline.config import ConfigError, TranscodeSettings, load_settings
from include.video_pipeline.core.errors import InputRejected, RejectReason, StageTimeout
from include.video_pipeline.core.media import MediaInfo
from include.video_pipeline.hooks.ffmpeg import FfmpegHook, TranscodeResult
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.pipeline.staging import output_key, stage_files, staging_key
from tests.fixtures import clips

SETTINGS = TranscodeSettings(preset="ultrafast")


@pytest.fixture(scope="module")
def hook() -> FfmpegHook:
    return FfmpegHook(settings=SETTINGS)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


def top_level_atoms(path: Path) -> list[str]:
    """Names of the top-level MP4 boxes, in file order."""
    names, data, offset = [], path.read_bytes(), 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        names.append(kind.decode("latin-1"))
        offset += size
    return names


def mean_luma(image: Path, *, frame_at: float | None = None) -> float:
    """Average brightness (0-255) of an image, or of the frame of a video at ``frame_at`` seconds."""
    seek = ["-ss", str(frame_at)] if frame_at is not None else []
    raw = subprocess.run(
        [
            clips.FFMPEG,
            "-v",
            "error",
            *seek,
            "-i",
            str(image),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert raw, f"no frame decoded from {image}"
    return sum(raw) / len(raw)


def streams(path: Path, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [s for s in clips.probe_json(path)["streams"] if s["codec_type"] == kind]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith("."))


def assert_web_outputs(result: TranscodeResult, source: MediaInfo) -> dict:  # type: ignore[type-arg]
    """Checks every web rendition must pass; returns the output's video stream."""
    assert result.video_path is not None and result.video_path.name == "video.mp4"
    (video,) = streams(result.video_path, "video")
    assert video["codec_name"] == "h264"
    assert video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (result.width, result.height)
    assert result.width is not None and result.height is not None
    assert result.width % 2 == 0 and result.height % 2 == 0
    assert abs(result.duration - source.duration) <= 0.1
    for audio in streams(result.video_path, "audio"):
        assert audio["codec_name"] == "aac"
    atoms = top_level_atoms(result.video_path)
    assert atoms.index("moov") < atoms.index("mdat"), atoms  # faststart
    assert result.poster_path is not None and mean_luma(result.poster_path) > 30
    assert result.thumbnails_path is not None and result.thumbnails_vtt_path is not None
    vtt = result.thumbnails_vtt_path.read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT\n")
    assert "thumbnails.jpg#xywh=0,0," in vtt
    (sheet,) = streams(result.thumbnails_path, "video")
    cues = vtt.count("#xywh=")
    assert sheet["width"] >= min(cues, 5) * 2 and sheet["height"] >= 2
    assert leftovers(result.video_path.parent) == []
    return video


def run_all(hook: FfmpegHook, source: Path, out: Path) -> tuple[MediaInfo, TranscodeResult]:
    info = hook.probe(source)
    return info, hook.transcode(source, out, info)


# ----------------------------------------------------------------- remux vs encode


def test_web_ready_mp4_is_remuxed(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_video(clip_dir / "ready.mp4", duration=2.0)
    info, result = run_all(hook, source, tmp_path)
    assert result.remuxed
    assert_web_outputs(result, info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poster.jpg", "thumbnails.jpg", "thumbnails.vtt", "video.mp4"]


def test_rotated_phone_video_stays_portrait(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_rotated_video(clip_dir / "phone.mp4", rotation=90, width=320, height=180)
    info, result = run_all(hook, source, tmp_path)
    assert info.video is not None and info.video.rotation in (90, 270)
    assert not result.remuxed
    video = assert_web_outputs(result, info)
    assert (video["width"], video["height"]) == (180, 320)
    # The pixels were turned: no rotation left for players to apply (or to forget).
    assert not any("rotation" in sd for sd in video.get("side_data_list", []))
    (poster,) = streams(result.poster_path, "video")  # type: ignore[arg-type]
    assert poster["height"] > poster["width"]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("hevc.mp4", clips.make_hevc_video),
        ("browser.webm", clips.make_vp9_webm),
        ("tenbit.mp4", clips.make_10bit_video),
        ("hdr.mp4", lambda p: clips.make_10bit_video(p, hdr=True)),
        ("odd.mkv", clips.make_odd_size_video),
        ("old.avi", lambda p: clips.make_video(p, video_codec="mpeg4", audio_codec="libmp3lame")),
        ("camera.mov", lambda p: clips.make_video(p, audio_codec="pcm_s16le")),
    ],
)
def test_non_web_sources_are_reencoded(hook: FfmpegHook, clip_dir: Path, tmp_path: Path, name: str, make):
    info, result = run_all(hook, make(clip_dir / name), tmp_path)
    assert not result.remuxed and result.reasons
    assert_web_outputs(result, info)


def test_large_video_is_scaled_down_keeping_aspect(clip_dir: Path, tmp_path: Path):
    hook = FfmpegHook(settings=dataclasses.replace(SETTINGS, max_height=144))
    source = clips.make_video(clip_dir / "big.mp4", width=640, height=360, duration=1.0)
    info, result = run_all(hook, source, tmp_path)
    assert not result.remuxed
    video = assert_web_outputs(result, info)
    assert (video["width"], video["height"]) == (256, 144)


def test_vfr_is_not_padded_with_duplicate_frames(clip_dir: Path, tmp_path: Path):
    hook = FfmpegHook(settings=dataclasses.replace(SETTINGS, max_height=120))  # force a re-encode
    source = clips.make_vfr_video(clip_dir / "vfr.mp4")
    info, result = run_all(hook, source, tmp_path)
    assert info.video is not None and info.video.variable_frame_rate
    assert result.video_path is not None
    count = lambda p: int(streams(p, "video")[0]["nb_frames"])  # noqa: E731
    assert count(result.video_path) <= count(source)
    assert abs(result.duration - info.duration) <= 0.1


def test_poster_is_not_the_black_first_frame(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_video(clip_dir / "fade.mp4", duration=3.0, black_lead_in=0.25)
    assert mean_luma(source, frame_at=0.0) < 5  # the trap is real
    _, result = run_all(hook, source, tmp_path)
    assert result.poster_path is not None and mean_luma(result.poster_path) > 30


# ----------------------------------------------------------------- audio handling


def test_default_audio_track_is_kept_and_extracted(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_video(clip_dir / "dub.mkv", audio_languages=("eng", "rus"), default_audio=1)
    info, result = run_all(hook, source, tmp_path)
    assert result.remuxed
    assert result.video_path is not None
    # Both tracks have sound, so both are kept; the default one first, and only it default.
    first, second = streams(result.video_path, "audio")
    assert (first["tags"]["language"], first["disposition"]["default"]) == ("rus", 1)
    assert (second["tags"]["language"], second["disposition"]["default"]) == ("eng", 0)
    assert result.audio_tracks == (2, 1)
    extract = hook.extract_audio(source, tmp_path / "audio.wav", info)
    assert extract is not None and extract.stream_index == 2 and extract.language == "rus"


def test_extract_audio_is_16k_mono_wav(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_speech_video(clip_dir / "speech.mp4", "Hello from the pipeline.")
    info = hook.probe(source)
    extract = hook.extract_audio(source, tmp_path / "sub" / "audio.wav", info)
    assert extract is not None
    (wav,) = streams(extract.path, "audio")
    assert (wav["codec_name"], wav["sample_rate"], wav["channels"]) == ("pcm_s16le", "16000", 1)
    assert abs(extract.duration - info.duration) <= 0.1
    assert leftovers(extract.path.parent) == []


def test_video_without_audio(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_silent_video(clip_dir / "silent.mp4")
    info, result = run_all(hook, source, tmp_path)
    assert result.remuxed
    assert_web_outputs(result, info)
    assert result.video_path is not None and streams(result.video_path, "audio") == []
    assert hook.extract_audio(source, tmp_path / "audio.wav", info) is None
    assert not (tmp_path / "audio.wav").exists()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("memo.m4a", lambda p: clips.make_speech_audio(p, "Short memo.")),
        ("call.wav", lambda p: clips.make_speech_audio(p, "Short memo.")),
        ("song.mp3", lambda p: clips.make_tone_audio(p, with_cover_art=True)),
        ("voice.ogg", lambda p: clips.make_tone_audio(p)),
    ],
)
def test_audio_only_upload(hook: FfmpegHook, clip_dir: Path, tmp_path: Path, name: str, make):
    source = make(clip_dir / name)
    info, result = run_all(hook, source, tmp_path / "out")
    assert info.audio_only
    assert not result.has_video and result.paths == () and not result.remuxed
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    extract = hook.extract_audio(source, tmp_path / "audio.wav", info)
    assert extract is not None and abs(extract.duration - info.duration) <= 0.1


# ------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("name", "make", "settings", "reason"),
    [
        ("empty.mp4", clips.make_empty_file, SETTINGS, RejectReason.EMPTY_FILE),
        ("page.mp4", clips.make_non_video, SETTINGS, RejectReason.NOT_MEDIA),
        ("photo.mp4", clips.make_still_image, SETTINGS, RejectReason.NOT_MEDIA),
        ("cut.mp4", clips.make_corrupt_video, SETTINGS, RejectReason.CORRUPT),
        ("subs.mkv", clips.make_subtitles_only, SETTINGS, RejectReason.NO_STREAMS),
        ("weird.avi", clips.make_unknown_codec_video, SETTINGS, RejectReason.UNSUPPORTED_CODEC),
        (
            "big.mp4",
            clips.make_silent_video,
            dataclasses.replace(SETTINGS, max_upload_bytes=1000),
            RejectReason.TOO_LARGE,
        ),
        (
            "long.mp4",
            clips.make_silent_video,
            dataclasses.replace(SETTINGS, max_duration_seconds=1),
            RejectReason.TOO_LONG,
        ),
    ],
)
def test_probe_refuses(clip_dir: Path, name: str, make, settings: TranscodeSettings, reason: RejectReason):
    source = make(clip_dir / f"refuse-{name}")
    with pytest.raises(InputRejected) as caught:
        FfmpegHook(settings=settings).probe(source)
    assert caught.value.reason is reason, caught.value


def test_truncated_media_is_corrupt_and_leaves_nothing(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_truncated_video(clip_dir / "truncated.mp4")
    info = hook.probe(source)  # the index is intact, so probing succeeds...
    with pytest.raises(InputRejected) as caught:
        hook.transcode(source, tmp_path, info)  # ...but half the media is missing
    assert caught.value.reason is RejectReason.CORRUPT
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputRejected) as caught:
        hook.extract_audio(source, tmp_path / "audio.wav", info)
    assert caught.value.reason is RejectReason.CORRUPT
    assert list(tmp_path.iterdir()) == []


def test_timeout_kills_ffmpeg_and_cleans_up(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_hevc_video(clip_dir / "slow.mp4")
    info = hook.probe(source)
    impatient = FfmpegHook(settings=dataclasses.replace(SETTINGS, timeout_factor=0.01, timeout_floor_seconds=0))
    with pytest.raises(StageTimeout, match="longer than"):
        impatient.transcode(source, tmp_path, info)
    assert list(tmp_path.iterdir()) == []


def test_existing_outputs_are_replaced_atomically(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    # A retry after a crash finds the previous attempt's files: they are replaced, not appended to.
    (tmp_path / "video.mp4").write_bytes(b"stale")
    source = clips.make_video(clip_dir / "retry.mp4", duration=1.0)
    info, result = run_all(hook, source, tmp_path)
    assert_web_outputs(result, info)


# ------------------------------------------------------------- ffprobe-less builds


def test_probe_without_ffprobe_matches_ffprobe(hook: FfmpegHook, clip_dir: Path):
    fallback = FfmpegHook(settings=SETTINGS, ffprobe_path="")
    assert fallback.ffprobe is None
    for source in (
        clips.make_rotated_video(clip_dir / "fb-phone.mp4"),
        clips.make_video(clip_dir / "fb-dub.mkv", audio_languages=("eng", "rus"), default_audio=1),
        clips.make_tone_audio(clip_dir / "fb-song.mp3", with_cover_art=True),
    ):
        expected, got = hook.probe(source), fallback.probe(source)
        assert got.duration == pytest.approx(expected.duration, abs=0.01)
        assert (got.video is None) is (expected.video is None)
        if expected.video is not None and got.video is not None:
            for attr in ("codec", "width", "height", "pix_fmt", "display_width", "display_height", "frame_rate"):
                assert getattr(got.video, attr) == getattr(expected.video, attr), attr
        assert [(a.index, a.codec, a.channels, a.default) for a in got.audio] == [
            (a.index, a.codec, a.channels, a.default) for a in expected.audio
        ]
    for make, reason in (
        (clips.make_corrupt_video, RejectReason.CORRUPT),
        (clips.make_non_video, RejectReason.NOT_MEDIA),
    ):
        with pytest.raises(InputRejected) as caught:
            fallback.probe(make(clip_dir / f"fb-{reason.value}.mp4"))
        assert caught.value.reason is reason


def test_imageio_ffmpeg_binary_end_to_end(clip_dir: Path, tmp_path: Path):
    import imageio_ffmpeg  # a pinned runtime requirement

    hook = FfmpegHook(settings=SETTINGS, ffmpeg_path=imageio_ffmpeg.get_ffmpeg_exe())
    assert hook.ffprobe is None  # imageio ships no ffprobe: the banner fallback is in use
    source = clips.make_rotated_video(clip_dir / "io-phone.mp4")
    info, result = run_all(hook, source, tmp_path)
    video = assert_web_outputs(result, info)
    assert (video["width"], video["height"]) == (180, 320)
    assert hook.extract_audio(source, tmp_path / "a.wav", info) is not None


# ------------------------------------------------------------------------ HLS ladder

# One-second segments so a 3 s clip has several: alignment and keyframes are then checkable.
HLS_SETTINGS = dataclasses.replace(SETTINGS, hls=True, hls_segment_seconds=1)
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def hls_attributes(line: str) -> dict[str, str]:
    """``#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="a,b"`` -> {"BANDWIDTH": "1", "CODECS": "a,b"}."""
    return {k: v.strip('"') for k, v in _ATTRIBUTE.findall(line.partition(":")[2])}


def read_master(path: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(variants with their URI under "uri", EXT-X-MEDIA renditions) of a master playlist."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    variants = [
        {**hls_attributes(line), "uri": lines[i + 1]}
        for i, line in enumerate(lines)
        if line.startswith("#EXT-X-STREAM-INF:")
    ]
    renditions = [hls_attributes(line) for line in lines if line.startswith("#EXT-X-MEDIA:")]
    return variants, renditions


def read_segments(playlist: Path) -> tuple[Path, list[tuple[Path, float]]]:
    """The init segment and the (segment, seconds) list of a media playlist, checked to exist."""
    text = playlist.read_text(encoding="utf-8")
    assert text.startswith("#EXTM3U\n") and "#EXT-X-ENDLIST" in text
    init = playlist.parent / re.search(r'#EXT-X-MAP:URI="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)]
    names = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(names) == len(durations) > 0
    segments = [(playlist.parent / n, d) for n, d in zip(names, durations, strict=True)]
    for path in (init, *(p for p, _ in segments)):
        assert path.is_file() and path.stat().st_size > 0, path
    return init, segments


def probe_segment(init: Path, segment: Path, tmp: Path) -> dict:  # type: ignore[type-arg]
    """ffprobe of init + one fMP4 segment (what a player appends): streams and the first video frame."""
    joined = tmp / f"{segment.parent.name}-{segment.name}.mp4"
    joined.write_bytes(init.read_bytes() + segment.read_bytes())
    data = clips.probe_json(joined)
    frames = subprocess.run(
        [
            *(clips.FFPROBE, "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"),
            *("-show_entries", "frame=key_frame,pict_type", "-of", "json", str(joined)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data["frames"] = json.loads(frames).get("frames", [])
    return data


@pytest.fixture(scope="module")
def ladder(clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[MediaInfo, TranscodeResult, Path]:
    """A 3 s 720p clip with sound, transcoded once with HLS on (default rungs 360/720/1080)."""
    source = clips.make_video(clip_dir / "hls-720p.mp4", width=1280, height=720, fps=10, duration=3.0)
    out = tmp_path_factory.mktemp("hls-720p")
    info, result = run_all(FfmpegHook(settings=HLS_SETTINGS), source, out)
    return info, result, out


def test_hls_ladder_of_a_720p_source(ladder, tmp_path: Path):
    info, result, out = ladder
    assert_web_outputs(result, info)  # the mp4, poster and thumbnails are made as before
    assert result.hls is not None and result.hls.renditions == ("360p", "720p")
    hls = out / "hls"
    assert result.hls.master_path == hls / "master.m3u8"
    # No 1080p: never upscale.
    assert sorted(p.name for p in hls.iterdir()) == ["360p", "720p", "audio", "master.m3u8"]
    assert set(result.hls_paths) == {p for p in hls.rglob("*") if p.is_file()}
    assert set(result.paths) == {
        *result.hls_paths,
        *(out / n for n in ("video.mp4", "poster.jpg", "thumbnails.jpg", "thumbnails.vtt")),
    }
    assert sorted(p.name for p in out.iterdir()) == [
        "hls",
        "poster.jpg",
        "thumbnails.jpg",
        "thumbnails.vtt",
        "video.mp4",
    ]

    variants, renditions = read_master(result.hls.master_path)
    assert [(v["uri"], v["RESOLUTION"]) for v in variants] == [
        ("360p/index.m3u8", "640x360"),
        ("720p/index.m3u8", "1280x720"),
    ]
    for variant in variants:
        assert int(variant["BANDWIDTH"]) >= int(variant["AVERAGE-BANDWIDTH"]) > 128_000  # video + 128k audio
        assert re.fullmatch(r"avc1\.[0-9a-f]{6},mp4a\.40\.2", variant["CODECS"]), variant
        assert variant["AUDIO"] == "audio"
    assert int(variants[1]["BANDWIDTH"]) > int(variants[0]["BANDWIDTH"])
    (audio,) = renditions
    assert (audio["TYPE"], audio["GROUP-ID"], audio["URI"], audio["DEFAULT"]) == (
        "AUDIO",
        "audio",
        "audio/index.m3u8",
        "YES",
    )

    grids = []
    for variant in variants:
        init, segments = read_segments(hls / variant["uri"])
        assert abs(sum(d for _, d in segments) - info.duration) <= 0.2
        assert len(segments) >= 3
        grids.append([round(d, 3) for _, d in segments])
        width, height = map(int, variant["RESOLUTION"].split("x"))
        for segment, _ in segments:
            data = probe_segment(init, segment, tmp_path)
            (video,) = [s for s in data["streams"] if s["codec_type"] == "video"]
            assert (video["codec_name"], video["width"], video["height"]) == ("h264", width, height)
            # Every segment opens on a keyframe: a player can start or switch rungs there.
            assert data["frames"][0]["key_frame"] == 1 and data["frames"][0]["pict_type"] == "I", segment
            assert not [s for s in data["streams"] if s["codec_type"] == "audio"]  # audio is its own group
    assert grids[0] == grids[1]  # cut at the same times in every rung

    init, segments = read_segments(hls / "audio" / "index.m3u8")
    assert abs(sum(d for _, d in segments) - info.duration) <= 0.2
    (track,) = probe_segment(init, segments[0][0], tmp_path)["streams"]
    assert (track["codec_type"], track["codec_name"], track["profile"]) == ("audio", "aac", "LC")
    assert leftovers(out) == []


def test_hls_of_a_portrait_phone_clip_stays_portrait(clip_dir: Path, tmp_path: Path):
    source = clips.make_rotated_video(clip_dir / "hls-phone.mp4", rotation=90, width=320, height=180)
    info, result = run_all(FfmpegHook(settings=HLS_SETTINGS), source, tmp_path)
    assert result.hls is not None
    # Smaller than the smallest rung: one rung, at the source's own (portrait) size, never upscaled.
    assert result.hls.renditions == ("180p",)
    variants, _ = read_master(result.hls.master_path)
    assert [v["RESOLUTION"] for v in variants] == ["180x320"]
    init, segments = read_segments(tmp_path / "hls" / "180p" / "index.m3u8")
    assert abs(sum(d for _, d in segments) - info.duration) <= 0.2
    (video,) = [s for s in probe_segment(init, segments[0][0], tmp_path)["streams"] if s["codec_type"] == "video"]
    assert (video["width"], video["height"]) == (180, 320)
    assert not any("rotation" in sd for sd in video.get("side_data_list", []))


def test_hls_of_a_silent_video_has_no_audio_group(clip_dir: Path, tmp_path: Path):
    source = clips.make_silent_video(clip_dir / "hls-silent.mp4", width=320, height=240)
    info, result = run_all(FfmpegHook(settings=HLS_SETTINGS), source, tmp_path)
    assert result.hls is not None and not result.hls.has_audio
    variants, renditions = read_master(result.hls.master_path)
    assert renditions == [] and [v["RESOLUTION"] for v in variants] == ["320x240"]
    assert re.fullmatch(r"avc1\.[0-9a-f]{6}", variants[0]["CODECS"]) and "AUDIO" not in variants[0]
    init, segments = read_segments(tmp_path / "hls" / "240p" / "index.m3u8")
    assert init.name == "init_240p.mp4"
    assert abs(sum(d for _, d in segments) - info.duration) <= 0.2


def test_hls_skips_audio_only_uploads(clip_dir: Path, tmp_path: Path):
    source = clips.make_tone_audio(clip_dir / "hls-tone.m4a")
    info, result = run_all(FfmpegHook(settings=HLS_SETTINGS), source, tmp_path / "out")
    assert info.audio_only and result.hls is None and result.paths == ()
    assert not (tmp_path / "out" / "hls").exists()


def test_hls_off_changes_nothing(clip_dir: Path, tmp_path: Path):
    assert TranscodeSettings().hls is False and load_settings({}).transcode.hls is False
    source = clips.make_video(clip_dir / "hls-off.mp4", width=640, height=360, duration=1.0)
    _, result = run_all(FfmpegHook(settings=SETTINGS), source, tmp_path)
    assert result.hls is None and result.hls_paths == ()
    assert sorted(p.name for p in result.paths) == ["poster.jpg", "thumbnails.jpg", "thumbnails.vtt", "video.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poster.jpg", "thumbnails.jpg", "thumbnails.vtt", "video.mp4"]


def test_hls_settings_from_the_environment():
    settings = load_settings(
        {
            "VIDEO_PIPELINE_HLS": "true",
            "VIDEO_PIPELINE_HLS_RENDITIONS": "720p, 360,720",
            "VIDEO_PIPELINE_HLS_SEGMENT_SECONDS": "6",
        }
    ).transcode
    assert (settings.hls, settings.hls_renditions, settings.hls_segment_seconds) == (True, (360, 720), 6)
    assert load_settings({}).transcode.hls_renditions == (360, 720, 1080)
    for bad in ("abc", "100", "360,,720", "5000"):
        with pytest.raises(ConfigError, match="VIDEO_PIPELINE_HLS_RENDITIONS"):
            load_settings({"VIDEO_PIPELINE_HLS_RENDITIONS": bad})


def test_hls_failure_leaves_nothing_and_a_retry_replaces_the_old_ladder(clip_dir: Path, tmp_path: Path):
    source = clips.make_video(clip_dir / "hls-retry.mp4", width=640, height=360, duration=2.0)
    info = FfmpegHook(settings=SETTINGS).probe(source)
    impatient = FfmpegHook(settings=dataclasses.replace(HLS_SETTINGS, timeout_factor=0.001, timeout_floor_seconds=0))
    with pytest.raises(StageTimeout, match="HLS ladder"):
        impatient.make_hls(source, tmp_path, info)
    assert list(tmp_path.iterdir()) == []
    # A previous attempt's ladder (other rungs, a stray file) is replaced whole, not merged into.
    (tmp_path / "hls" / "1080p").mkdir(parents=True)
    (tmp_path / "hls" / "1080p" / "seg_00009.m4s").write_bytes(b"stale")
    hls = FfmpegHook(settings=HLS_SETTINGS).make_hls(source, tmp_path, info)
    assert hls is not None and hls.renditions == ("360p",)
    assert sorted(p.name for p in (tmp_path / "hls").iterdir()) == ["360p", "audio", "master.m3u8"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hls"]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_hls_files_are_staged_and_published_under_their_relative_names(ladder, request, tmp_path: Path, kind: str):
    _, result, out = ladder
    if kind == "local":
        settings = load_settings({"VIDEO_PIPELINE_LOCAL_ROOT": str(tmp_path / "root")})
    else:
        bucket = request.getfixturevalue("s3_bucket")
        settings = load_settings({"VIDEO_PIPELINE_STORAGE": "s3", "VIDEO_PIPELINE_BUCKET": bucket})
    store = ObjectStoreHook(settings=settings).get_store()
    staged = stage_files(store, settings, "vid1", sorted(result.paths), base=out)
    names = {f.name: f for f in staged}
    expected = {p.relative_to(out).as_posix() for p in result.paths}
    assert set(names) == expected and "hls/720p/seg_00001.m4s" in names and "video.mp4" in names
    assert names["hls/master.m3u8"].content_type == "application/vnd.apple.mpegurl"
    # What publish does with every staged name: copy staging/<id>/<name> to outputs/<id>/<name>.
    for name in names:
        store.copy(staging_key(settings, "vid1", name), output_key(settings, "vid1", name))
    published = {o.key.removeprefix(output_key(settings, "vid1")) for o in store.list(output_key(settings, "vid1"))}
    assert published == expected
    master = store.get_bytes(output_key(settings, "vid1", "hls/master.m3u8"))
    assert master == result.hls.master_path.read_bytes()  # type: ignore[union-attr]
    # Without base, names stay file names, as before.
    (plain,) = stage_files(store, settings, "vid2", [out / "hls" / "720p" / "index.m3u8"])
    assert plain.name == "index.m3u8"


def test_audio_extraction_command_is_built_with_ffmpeg_python():
    from include.video_pipeline.hooks.ffmpeg import audio_extract_args

    args = audio_extract_args("in.mkv", "out.part", 3)
    assert args[args.index("-map") + 1] == "0:3"
    assert args[args.index("-ar") + 1] == "16000"
    assert args[args.index("-ac") + 1] == "1"
    assert args[args.index("-acodec") + 1] == "pcm_s16le"
    assert args[args.index("-f") + 1] == "wav"
    assert args[args.index("-i") + 1] == "in.mkv" and args[-1] == "out.part"
    assert {"-vn", "-sn", "-dn", "-nostdin", "-y"} <= set(args)


# ------------------------------------------------ playable-but-odd vs damaged (the corrupt rule)

VP9 = {"video_codec": "libvpx-vp9", "audio_codec": "libopus"}


@pytest.mark.parametrize(
    ("name", "make", "flags"),
    [
        # The case: Matroska without per-stream durations, sound 0.8 s short of the picture.
        (
            "short-audio.mkv",
            lambda p: clips.strip_matroska_stream_durations(
                clips.make_timed_clip(p.with_name("tagged-" + p.name), audio_duration=5.2, **VP9), p
            ),
            {"audio_ends_early"},
        ),
        # A browser's MediaRecorder: no duration, no index at all.
        (
            "recorder.webm",
            lambda p: clips.make_timed_clip(p, audio_duration=5.2, live=True, **VP9),
            {"audio_ends_early", "duration_unknown"},
        ),
        ("late.mp4", lambda p: clips.make_timed_clip(p, audio_start=2.0), {"audio_starts_late"}),
        (
            "gappy.mkv",
            lambda p: clips.make_timed_clip(p, audio_duration=4.5, audio_gap=(2.0, 1.5), **VP9),
            {"audio_gaps"},
        ),
    ],
)
def test_playable_uploads_with_odd_timing_are_processed_and_flagged(
    hook: FfmpegHook, clip_dir: Path, tmp_path: Path, name: str, make, flags: set[str]
):
    source = make(clip_dir / name)
    info, result = run_all(hook, source, tmp_path / "out")
    extract = hook.extract_audio(source, tmp_path / "audio.wav", info)
    assert extract is not None
    assert set(result.flags) | set(extract.flags) == flags
    assert info.duration == pytest.approx(6.0, abs=0.1)
    # The WAV keeps the file's timeline: a late start and gaps are silence, so subtitle times are true.
    expected_end = 6.0 if "late" in name or "gappy" in name else 5.2
    assert extract.duration == pytest.approx(expected_end, abs=0.1)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("cut-half.mkv", lambda p: clips.truncate_copy(clips.make_timed_clip(p.with_name("w.mkv"), **VP9), p, 0.5)),
        ("no-index.mp4", lambda p: clips.drop_mp4_index(clips.make_timed_clip(p.with_name("w.mp4")), p)),
        ("flipped.mkv", lambda p: clips.flip_bits_copy(clips.make_timed_clip(p.with_name("f.mkv"), **VP9), p, 1000)),
    ],
)
def test_damaged_uploads_are_still_corrupt(hook: FfmpegHook, clip_dir: Path, tmp_path: Path, name: str, make):
    source = make(clip_dir / name)
    with pytest.raises(InputRejected) as err:
        info = hook.probe(source)
        hook.transcode(source, tmp_path / "out", info)
    assert err.value.reason is RejectReason.CORRUPT
    assert leftovers(tmp_path) == []


def test_silent_tracks_are_dropped_and_the_speech_track_is_extracted(hook: FfmpegHook, clip_dir: Path, tmp_path: Path):
    source = clips.make_multitrack_speech_video(
        clip_dir / "two-tracks.mp4", "Hello from the second track.", tracks=3, speech_track=1
    )
    info = hook.probe(source)
    levels = hook.measure_audio(source, info)
    assert [i for i, lv in sorted(levels.items()) if lv.peak_db > -60] == [2]
    result = hook.transcode(source, tmp_path / "out", info)
    assert result.audio_tracks == (2,) and set(result.flags) == {"silent_audio_tracks"}
    assert result.video_path is not None and len(streams(result.video_path, "audio")) == 1
    track = next(t for t in info.audio if t.index == 2)
    extract = hook.extract_audio(source, tmp_path / "speech.wav", info, track)
    assert extract is not None and extract.stream_index == 2
