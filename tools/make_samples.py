"""Regenerate the sample clips in samples/ (committed; make run seeds them into pending/).

python tools/make_samples.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.clips import make_non_video, make_speech_audio, make_speech_video  # noqa: E402

SAMPLES = ROOT / "samples"


def main() -> None:
    SAMPLES.mkdir(exist_ok=True)
    make_speech_video(
        SAMPLES / "welcome.mp4",
        "Welcome to the video pipeline. Every upload becomes a web ready video, a transcript and a summary.",
    )
    make_speech_video(
        SAMPLES / "Встреча команды 2026.mp4",
        "Good morning team. Today we review the budget and plan the product launch for next month.",
        width=240,
        height=320,
    )
    make_speech_audio(SAMPLES / "voice memo.m4a", "Remember to send the contract to the client before Friday.")
    make_non_video(SAMPLES / "not-a-video.mp4")
    for path in sorted(SAMPLES.iterdir()):
        print(f"{path.stat().st_size:>9}  {path.name}")


if __name__ == "__main__":
    main()
