"""FfmpegHook against the real ffmpeg on tiny generated clips; outputs are checked by probing them."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
from pathlib import Path

import pytest

from include.video_pipeline.config import TranscodeSettings
from include.video_pipeline.core.errors import InputRejected, RejectReason, StageTimeout
from include.video_pipeline.core.media import MediaInfo
from include.video_pipeline.hooks.ffmpeg import FfmpegHook, TranscodeResult
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
    (audio,) = streams(result.video_path, "audio")
    assert audio["tags"]["language"] == "rus"
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
