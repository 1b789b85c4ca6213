"""Picture outputs: the poster frame, the thumbnail contact sheet and its WebVTT track.

Each is planned from the video's duration and size, then made by one ffmpeg
command that reads the already transcoded (upright, 8-bit) web video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from include.video_pipeline.core import outputs
from include.video_pipeline.core.media.commands import _COMMON
from include.video_pipeline.core.media.planning import _even


@dataclass(frozen=True)
class PosterPlan:
    """Where to look for the poster frame: ``window`` seconds from ``start``, best of ``frames``."""

    start: float
    window: float
    frames: int


def plan_poster(duration: float, frame_rate: float | None) -> PosterPlan:
    """Look from 10 % of the video, over up to 10 % of it, for the poster.

    The first frames are often black (fade-in, lens cap, a title card) and the
    last ones are credits; ffmpeg's ``thumbnail`` filter then picks the frame
    closest to the average of the window, which skips flashes and black frames.
    """
    fps = frame_rate or 25.0
    # The filter buffers every frame of the window: 60 frames of 720p is ~80 MB,
    # and 2-4 s of a long video is as representative as more.
    # ffmpeg's thumbnail filter needs at least two frames to compare.
    frames = max(2, min(60, int(0.1 * duration * fps)))
    return PosterPlan(start=round(0.1 * duration, 3), window=round(frames / fps, 3), frames=frames)


def poster_args(video: str, dest: str, plan: PosterPlan) -> list[str]:
    """One JPEG poster from the already transcoded (upright, 8-bit) web video."""
    return [
        *_COMMON,
        "-ss",
        f"{plan.start:.3f}",
        "-t",
        f"{plan.window:.3f}",
        "-i",
        video,
        "-an",
        "-sn",
        "-vf",
        f"thumbnail=n={plan.frames}",
        "-frames:v",
        "1",
        "-q:v",
        "3",
        "-c:v",
        "mjpeg",
        "-f",
        "image2",
        dest,
    ]


@dataclass(frozen=True)
class ThumbnailTile:
    """One cue of the thumbnails track: a time range and its rectangle in the sprite."""

    start: float
    end: float
    x: int
    y: int
    width: int
    height: int

    @property
    def midpoint(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class ThumbnailSheet:
    """A contact sheet: ``columns`` x ``rows`` tiles of ``tile_width`` x ``tile_height``."""

    columns: int
    rows: int
    tile_width: int
    tile_height: int
    tiles: tuple[ThumbnailTile, ...] = field(default_factory=tuple)

    @property
    def width(self) -> int:
        return self.columns * self.tile_width

    @property
    def height(self) -> int:
        return self.rows * self.tile_height


def plan_thumbnails(
    duration: float,
    width: int,
    height: int,
    *,
    max_tiles: int = 25,
    columns: int = 5,
    tile_width: int = 160,
    min_interval: float = 1.0,
) -> ThumbnailSheet:
    """Split the video into equal intervals, one tile each, at most ``max_tiles``.

    Short clips get fewer tiles (one per ``min_interval`` seconds) rather than
    the same frame repeated.
    """
    count = max(1, min(max_tiles, int(duration // min_interval)))
    interval = duration / count
    tile_w = _even(min(tile_width, width))
    tile_h = _even(tile_w * height / width)
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    tiles = tuple(
        ThumbnailTile(
            start=round(i * interval, 3),
            end=round(duration if i == count - 1 else (i + 1) * interval, 3),
            x=(i % cols) * tile_w,
            y=(i // cols) * tile_h,
            width=tile_w,
            height=tile_h,
        )
        for i in range(count)
    )
    return ThumbnailSheet(columns=cols, rows=rows, tile_width=tile_w, tile_height=tile_h, tiles=tiles)


def thumbnail_sheet_args(video: str, dest: str, sheet: ThumbnailSheet) -> list[str]:
    """ffmpeg arguments that tile one frame from the middle of each interval into a JPEG.

    Each tile is its own input with a fast keyframe seek, so an hour-long video
    costs ``len(tiles)`` short decodes instead of decoding the whole file.
    """
    args: list[str] = [*_COMMON]
    for tile in sheet.tiles:
        # -t bounds how far each input is read after the seek point.
        args += ["-ss", f"{tile.midpoint:.3f}", "-t", "1", "-i", video]
    scaled = [
        f"[{i}:v:0]trim=end_frame=1,setpts=PTS-STARTPTS,scale={sheet.tile_width}:{sheet.tile_height},setsar=1[t{i}]"
        for i in range(len(sheet.tiles))
    ]
    inputs = "".join(f"[t{i}]" for i in range(len(sheet.tiles)))
    graph = ";".join([*scaled, f"{inputs}concat=n={len(sheet.tiles)}:v=1:a=0,tile={sheet.columns}x{sheet.rows}[sheet]"])
    return [
        *args,
        "-filter_complex",
        graph,
        "-map",
        "[sheet]",
        "-frames:v",
        "1",
        "-q:v",
        "4",
        "-c:v",
        "mjpeg",
        "-f",
        "image2",
        dest,
    ]


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def render_thumbnails_vtt(sheet: ThumbnailSheet, image_url: str = outputs.THUMBNAILS) -> str:
    """A WebVTT thumbnails track: each cue points into the sprite with a ``#xywh=`` fragment.

    :param image_url: how the player should fetch the sprite, relative to the
        VTT file (the default suits both files published side by side).
    """
    lines = ["WEBVTT", ""]
    for tile in sheet.tiles:
        lines.append(f"{_vtt_time(tile.start)} --> {_vtt_time(tile.end)}")
        lines.append(f"{image_url}#xywh={tile.x},{tile.y},{tile.width},{tile.height}")
        lines.append("")
    return "\n".join(lines)
