"""Stills of the web rendition: the poster and the thumbnail sheet (with its WebVTT) for the player.

Both are cut from the freshly written ``video.mp4`` rather than the upload: it is
already rotated, scaled and 8-bit, and seeking in it is cheap.
"""

from __future__ import annotations

from pathlib import Path

from include.video_pipeline.core.media import (
    MediaInfo,
    PosterPlan,
    plan_poster,
    plan_thumbnails,
    poster_args,
    render_thumbnails_vtt,
    thumbnail_sheet_args,
)
from include.video_pipeline.hooks.ffmpeg.results import THUMBNAILS_NAME, FfmpegError
from include.video_pipeline.hooks.ffmpeg.runner import FfmpegRunner


class Stills(FfmpegRunner):
    """Make the poster and the thumbnail sheet of a web mp4."""

    def _make_poster(self, video: Path, dest: Path, out: MediaInfo) -> None:
        plan = plan_poster(out.duration, out.video.frame_rate if out.video else None)
        timeout = float(self.settings.timeout_floor_seconds)
        self._run(poster_args(str(video), str(dest), plan), what="making the poster", duration=0.0, timeout=timeout)
        if not dest.exists() or dest.stat().st_size == 0:
            # A seek past the last keyframe of a very short clip yields no
            # frame; the first frame is a poor poster but better than none.
            first = PosterPlan(start=0.0, window=plan.window, frames=plan.frames)
            self._run(
                poster_args(str(video), str(dest), first), what="making the poster", duration=0.0, timeout=timeout
            )
        if not dest.exists() or dest.stat().st_size == 0:
            raise FfmpegError(f"ffmpeg wrote no poster for {video.name}")

    def _make_thumbnails(self, video: Path, sheet_dest: Path, vtt_dest: Path, out: MediaInfo, *, name: str) -> None:
        """The thumbnail sheet of ``video`` at ``sheet_dest`` and the WebVTT that maps its tiles to times."""
        assert out.video is not None
        sheet = plan_thumbnails(out.duration, out.video.display_width, out.video.display_height)
        self._run(
            thumbnail_sheet_args(str(video), str(sheet_dest), sheet),
            what=f"making thumbnails of {name}",
            duration=0.0,
            timeout=float(self.settings.timeout_floor_seconds),
        )
        vtt_dest.write_text(render_thumbnails_vtt(sheet, THUMBNAILS_NAME), encoding="utf-8")
