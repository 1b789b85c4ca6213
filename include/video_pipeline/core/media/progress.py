"""Running ffmpeg: the wall-clock budget for one run, and its progress from ``-progress`` output."""

from __future__ import annotations

from include.video_pipeline.core.media.probe import _float


def stage_timeout(duration: float, *, factor: float, floor_seconds: float) -> float:
    """Wall-clock budget for one ffmpeg run over ``duration`` seconds of media."""
    return max(float(floor_seconds), factor * max(duration, 0.0))


def progress_seconds(line: str) -> float | None:
    """Media seconds done, from one line of ffmpeg's ``-progress`` output; ``None`` for other lines.

    ``out_time_us`` is microseconds; so is ``out_time_ms``, despite its name
    (a long-standing ffmpeg quirk). Both read ``N/A`` before the first frame.
    """
    key, _, value = line.strip().partition("=")
    if key in ("out_time_us", "out_time_ms"):
        micros = _float(value)
        return micros / 1e6 if micros is not None and micros >= 0 else None
    return None


def progress_percent(done_seconds: float, duration: float) -> float:
    if duration <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * done_seconds / duration))
