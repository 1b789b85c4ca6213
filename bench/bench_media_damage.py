"""Which uploads are corrupt? The cases behind the ``corrupt`` rule, measured with the real hook.

Generates small real files with ffmpeg (undamaged ones whose tracks start late,
end early or have gaps, and damaged ones: truncated at several points, bit
flips, a missing index), runs each through what the pipeline runs
(:meth:`FfmpegHook.probe`, :meth:`~FfmpegHook.transcode`,
:meth:`~FfmpegHook.extract_audio`) and prints one Markdown row per case: the
outcome (``processed`` with its flags, or ``rejected: <reason>``), the seconds
decoded, and the decoder errors a plain ``ffmpeg -v error`` decode reports. The
README's table is this output. Run from the repository root::

    .venv/bin/python bench/bench_media_damage.py
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.video_pipeline.config import TranscodeSettings
from include.video_pipeline.core.errors import InputRejected
from include.video_pipeline.hooks.ffmpeg import FfmpegHook
from tests.fixtures import clips

VP9 = {"video_codec": "libvpx-vp9", "audio_codec": "libopus"}


def cases(folder: Path) -> list[tuple[str, Callable[[Path], Path], str]]:
    """(case, maker, what a user expects: processed or corrupt)."""
    mp4 = clips.make_timed_clip(folder / "base.mp4", duration=6.0)
    fast = clips.make_timed_clip(folder / "base-fast.mp4", duration=6.0, faststart=True)
    mkv = clips.make_timed_clip(folder / "base.mkv", duration=6.0, **VP9)
    m4a = clips.make_speech_audio(folder / "base.m4a", "Call the client on Friday about the contract.")
    rows: list[tuple[str, Callable[[Path], Path], str]] = [
        ("mp4 H.264/AAC, intact", lambda p: clips.make_timed_clip(p), "processed"),
        (
            "mkv VP9/Opus, audio ends 0.8 s early",
            lambda p: clips.make_timed_clip(p, audio_duration=5.2, **VP9),
            "processed",
        ),
        (
            "mkv VP9/Opus, audio ends 0.8 s early, no per-stream durations (mkvmerge, OBS)",
            lambda p: clips.strip_matroska_stream_durations(
                clips.make_timed_clip(p.with_name("t-" + p.name), audio_duration=5.2, **VP9), p
            ),
            "processed",
        ),
        (
            "webm VP9/Opus from a pipe (MediaRecorder): no duration, no cues",
            lambda p: clips.make_timed_clip(p, audio_duration=5.2, live=True, **VP9),
            "processed",
        ),
        (
            "mkv VP9/Opus, audio starts 2 s late",
            lambda p: clips.make_timed_clip(p, audio_start=2.0, **VP9),
            "processed",
        ),
        (
            "mkv VP9/Opus, 1.5 s gap in the audio",
            lambda p: clips.make_timed_clip(p, audio_duration=4.5, audio_gap=(2.0, 1.5), **VP9),
            "processed",
        ),
        ("mp4, audio ends 2 s early", lambda p: clips.make_timed_clip(p, audio_duration=4.0), "processed"),
        (
            "mp4, `-shortest` (audio shorter)",
            lambda p: clips.make_timed_clip(p, audio_duration=4.0, shortest=True),
            "processed",
        ),
        ("mp4, audio starts 2 s late", lambda p: clips.make_timed_clip(p, audio_start=2.0), "processed"),
        (
            "mp4, 1.5 s gap in the audio",
            lambda p: clips.make_timed_clip(p, audio_duration=4.5, audio_gap=(2.0, 1.5)),
            "processed",
        ),
        (
            "mp4, video ends 2 s before the audio",
            lambda p: clips.make_timed_clip(p, duration=4.0, audio_duration=6.0),
            "processed",
        ),
    ]
    for fraction in (0.25, 0.5, 0.75, 0.9, 0.98):
        rows.append(
            (
                f"mp4 faststart, truncated at {fraction:.0%}",
                lambda p, f=fraction: clips.truncate_copy(fast, p, f),
                _truncation_expected(fraction),
            )
        )
    rows.append(
        ("mp4 (index at the end), truncated at 90%: no index", lambda p: clips.truncate_copy(mp4, p, 0.9), "corrupt")
    )
    rows.append(("mp4, index (moov) missing", lambda p: clips.drop_mp4_index(mp4, p), "corrupt"))
    for fraction in (0.25, 0.5, 0.75, 0.9, 0.98):
        rows.append(
            (
                f"mkv VP9/Opus, truncated at {fraction:.0%}",
                lambda p, f=fraction: clips.truncate_copy(mkv, p, f),
                _truncation_expected(fraction),
            )
        )
    for fraction in (0.5, 0.9):
        rows.append(
            (
                f"m4a AAC (audio only, index first), truncated at {fraction:.0%}",
                lambda p, f=fraction: clips.truncate_copy(m4a, p, f),
                "corrupt",
            )
        )
    for flips in (1, 10, 100, 1000):
        rows.append(
            (
                f"mp4, {flips} bit flips in the media data",
                lambda p, n=flips: clips.flip_bits_copy(fast, p, n),
                _flips(flips),
            )
        )
        rows.append(
            (
                f"mkv VP9/Opus, {flips} bit flips in the media data",
                lambda p, n=flips: clips.flip_bits_copy(mkv, p, n),
                _flips(flips),
            )
        )
    return rows


def _truncation_expected(fraction: float) -> str:
    # The last few frames missing (an upload that stopped at 98 %) still plays: flag it.
    return "processed, flagged" if fraction > 0.95 else "corrupt"


def _flips(count: int) -> str:
    # Damage in a few frames plays with a few blocky frames; damage throughout does not.
    return "corrupt" if count >= 1000 else "processed"


def decode_errors(path: Path) -> int:
    """Error lines a full ``ffmpeg -v error`` decode of every stream prints."""
    proc = subprocess.run(
        [clips.FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return len([line for line in proc.stderr.splitlines() if line.strip()])


def outcome(hook: FfmpegHook, path: Path, work: Path) -> tuple[str, str]:
    try:
        info = hook.probe(path)
        result = hook.transcode(path, work / "out", info)
        audio = hook.extract_audio(path, work / "audio.wav", info)
    except InputRejected as exc:
        return f"rejected: {exc.reason.value}", exc.message.replace("|", "/")[:90]
    flags = {**result.flags, **(audio.flags if audio else {})}
    heard = f"{audio.duration:.1f}" if audio else "-"
    listed = ", ".join(f"`{code}`" for code in sorted(flags)) or "none"
    return "processed", f"video {result.duration:.1f} s, audio {heard} s; flags: {listed}"


def main() -> None:
    logging.disable(logging.WARNING)  # the table is the output; the hook's own log lines would bury it
    hook = FfmpegHook(settings=TranscodeSettings(preset="ultrafast"))
    print("| case | expected | outcome | details | decoder errors |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="damage-") as tmp:
        folder = Path(tmp)
        for i, (name, make, expected) in enumerate(cases(folder / "src")):
            suffix = ".webm" if "webm" in name else ".m4a" if "m4a" in name else ".mkv" if "mkv" in name else ".mp4"
            path = make(folder / f"case{i}{suffix}")
            work = folder / f"work{i}"
            work.mkdir()
            result, details = outcome(hook, path, work)
            print(f"| {name} | {expected} | {result} | {details} | {decode_errors(path)} |", flush=True)


if __name__ == "__main__":
    main()
