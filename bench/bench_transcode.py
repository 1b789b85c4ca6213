"""How long does a transcode take on this machine? Re-encode per x264 preset vs remux.

Generates a 720p and a 1080p ~10 s H.264/AAC clip (moving test pattern, which
is harder to compress than a talking head, so the numbers are pessimistic),
then times, through :class:`FfmpegHook`'s own argument lists:

* remux (stream copy into faststart mp4), and
* re-encode to 720p with each x264 preset at the default CRF,
* the optional HLS ladder (360p/720p/1080p up to the source's size, 4 s fMP4
  segments, shared AAC) in ONE ffmpeg process at the default preset, next to
  the default MP4-only re-encode it comes on top of,

and prints wall time, the real-time factor (media seconds per wall second) and
the output size. Run from the repository root::

    .venv/bin/python bench/bench_transcode.py [--duration 10] [--threads 0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.video_pipeline.config import TranscodeSettings
from include.video_pipeline.core.media import hls_args, parse_probe, plan_hls, plan_transcode, transcode_args
from tests.fixtures import clips

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "medium")


def make_source(path: Path, width: int, height: int, duration: float) -> Path:
    # Encoded once with a fast preset at a high quality, like a phone recording.
    return clips.make_video(path, width=width, height=height, fps=30, duration=duration, extra_args=["-crf", "18"])


def timed(args: list[str], cwd: Path | None = None) -> float:
    started = time.monotonic()
    subprocess.run([clips.FFMPEG, *args], check=True, capture_output=True, cwd=cwd)
    return time.monotonic() - started


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0)
    options = parser.parse_args()
    defaults = TranscodeSettings()
    rows: list[tuple[str, str, float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for label, (width, height) in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
            source = make_source(Path(tmp) / f"{label}.mp4", width, height, options.duration)
            info = parse_probe(clips.probe_json(source), size_bytes=source.stat().st_size)
            out = Path(tmp) / "out.mp4"
            # The remux path: allowed up to the source's own height.
            remux = plan_transcode(info, max_height=max(height, defaults.max_height), max_remux_bitrate=10**12)
            assert remux.remux, remux.reasons
            seconds = timed(transcode_args(str(source), str(out), remux, threads=options.threads))
            rows.append((label, "remux", seconds, info.duration / seconds, out.stat().st_size))
            for preset in PRESETS:
                # Force a re-encode by planning for a height below the source's for
                # 1080p, and by forbidding the copy for 720p.
                plan = plan_transcode(
                    info, max_height=defaults.max_height, crf=defaults.crf, preset=preset, max_remux_bitrate=1
                )
                assert plan.video is not None and not plan.video.copy
                seconds = timed(transcode_args(str(source), str(out), plan, threads=options.threads))
                rows.append((label, preset, seconds, info.duration / seconds, out.stat().st_size))
                print(f"  {label} {preset}: {seconds:.1f} s", file=sys.stderr, flush=True)
            # The HLS ladder: every rung the source reaches, one decode, one process.
            ladder = plan_hls(info, crf=defaults.crf, preset=defaults.preset)
            assert ladder is not None
            folder = Path(tmp) / f"hls-{label}"
            folder.mkdir()
            for rung in ladder.renditions:
                (folder / rung.name).mkdir()
            (folder / "audio").mkdir()
            seconds = timed(hls_args(str(source), ladder, threads=options.threads), cwd=folder)
            mode = "hls " + "+".join(ladder.names)
            rows.append((label, mode, seconds, info.duration / seconds, folder_size(folder)))
            print(f"  {label} {mode}: {seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"\nSource: {options.duration:g} s at 30 fps; output 720p CRF {defaults.crf}, audio AAC 128k (copied)\n")
    print(f"{'source':<7} {'mode':<22} {'wall s':>7} {'x real time':>12} {'size MiB':>9}")
    for label, mode, seconds, speed, size in rows:
        print(f"{label:<7} {mode:<22} {seconds:7.2f} {speed:12.2f} {size / 2**20:9.2f}")
    for label in ("720p", "1080p"):
        mp4 = next(r for r in rows if r[0] == label and r[1] == defaults.preset)
        hls = next(r for r in rows if r[0] == label and r[1].startswith("hls"))
        print(
            f"HLS ladder on {label}: {hls[2]:.2f} s in one ffmpeg vs {mp4[2]:.2f} s for the MP4-only "
            f"re-encode ({hls[2] / mp4[2]:.1f}x); with HLS on, a video costs both"
        )
    # The default should keep 1080p sources at least at real time on a small worker,
    # and among those be the slowest (best compression per bit).
    fast_enough = [r for r in rows if r[0] == "1080p" and r[1] in PRESETS and r[3] >= 1.0]
    best = fast_enough[-1][1] if fast_enough else "ultrafast"
    print(f"\nRecommended default preset: {best} (slowest preset still >= 1x real time on 1080p here)")
    print(f"Current default: {defaults.preset}")


if __name__ == "__main__":
    main()
