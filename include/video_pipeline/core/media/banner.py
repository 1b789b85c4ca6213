"""Probing without ffprobe: rebuilding the subset of ffprobe's JSON we use from ``ffmpeg -i``'s banner.

For ffmpeg builds that ship no ffprobe; the result goes through the same
:func:`~include.video_pipeline.core.media.probe.parse_probe` as ffprobe's own JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_BANNER_INPUT = re.compile(r"^Input #0, (?P<format>[^,]+(?:,[^ ,]+)*), from ")
_BANNER_DURATION = re.compile(r"^\s+Duration: (?P<d>[\d:.]+|N/A)(?:, start: [-\d.]+)?(?:, bitrate: (?P<br>\d+) kb/s)?")
_BANNER_STREAM = re.compile(
    r"^\s+Stream #0:(?P<index>\d+)(?:\[[^\]]*\])?(?:\((?P<lang>\w+)\))?: "
    r"(?P<type>Video|Audio|Subtitle|Data|Attachment): (?P<rest>.*)$"
)
_BANNER_ROTATION = re.compile(r"display ?matrix: rotation of (?P<deg>-?[\d.]+) degrees", re.IGNORECASE)
_BANNER_SIZE = re.compile(r"(?<![\w])(?P<w>\d{2,5})x(?P<h>\d{2,5})(?: \[SAR (?P<sar>\d+:\d+))?")
_BANNER_FPS = re.compile(r"(?P<fps>[\d.]+k?) fps")
_BANNER_RATE = re.compile(r"(?P<hz>\d+) Hz")
_CHANNEL_WORDS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def _banner_seconds(text: str) -> float | None:
    if text == "N/A":
        return None
    parts = text.split(":")
    try:
        return float(sum(float(p) * 60**i for i, p in enumerate(reversed(parts))))
    except ValueError:
        return None


def parse_ffmpeg_banner(stderr: str) -> dict[str, Any]:
    """Rebuild the subset of ffprobe's JSON we use from ``ffmpeg -i <file>``'s stderr.

    For ffmpeg builds without ffprobe (the static binary of ``imageio-ffmpeg``).
    The banner is meant for people, so this is a best effort: codec, size,
    pixel format, frame rate, rotation, channels and the default flag are
    recovered; bit rates per stream and the colour transfer are not, so HDR
    sources are handled as plain 10-bit. Raises ``ValueError`` when the banner
    has no input section (the file could not be opened).
    """
    fmt: dict[str, Any] = {}
    streams: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in stderr.splitlines():
        if match := _BANNER_INPUT.match(line):
            fmt["format_name"] = match.group("format")
            continue
        if (match := _BANNER_DURATION.match(line)) and "format_name" in fmt:
            seconds = _banner_seconds(match.group("d"))
            if seconds is not None:
                fmt["duration"] = str(seconds)
            if match.group("br"):
                fmt["bit_rate"] = str(int(match.group("br")) * 1000)
            continue
        if match := _BANNER_STREAM.match(line):
            current = _banner_stream(match)
            streams.append(current)
            continue
        if current is not None and (match := _BANNER_ROTATION.search(line)):
            current.setdefault("side_data_list", []).append({"rotation": float(match.group("deg"))})
    if "format_name" not in fmt:
        raise ValueError("ffmpeg printed no input description")
    return {"format": fmt, "streams": streams}


def _banner_stream(match: re.Match[str]) -> dict[str, Any]:
    rest = match.group("rest")
    codec_part = rest.split(",", 1)[0]
    codec = codec_part.split(" ", 1)[0].strip()
    profile = re.search(r"\(([^)/]+)\)", codec_part)
    stream: dict[str, Any] = {
        "index": int(match.group("index")),
        "codec_type": match.group("type").lower(),
        "codec_name": codec,
        "profile": profile.group(1).strip() if profile else None,
        "disposition": {
            "default": int("(default)" in rest),
            "attached_pic": int("(attached pic)" in rest),
        },
    }
    if match.group("lang"):
        stream["tags"] = {"language": match.group("lang")}
    fields = [f.strip() for f in _split_top_level(rest)]
    if stream["codec_type"] == "video":
        if len(fields) > 1:
            stream["pix_fmt"] = fields[1].split("(", 1)[0].strip()
            if "(" in fields[1] and ("top first" in fields[1] or "bottom first" in fields[1]):
                stream["field_order"] = "tt" if "top first" in fields[1] else "bb"
        if size := _BANNER_SIZE.search(rest):
            stream["width"], stream["height"] = int(size.group("w")), int(size.group("h"))
            if size.group("sar"):
                stream["sample_aspect_ratio"] = size.group("sar")
        if fps := _BANNER_FPS.search(rest):
            value = fps.group("fps")
            rate = float(value[:-1]) * 1000 if value.endswith("k") else float(value)
            stream["avg_frame_rate"] = f"{rate}/1"
    elif stream["codec_type"] == "audio":
        if hz := _BANNER_RATE.search(rest):
            stream["sample_rate"] = hz.group("hz")
        for word in fields:
            channels = _CHANNEL_WORDS.get(word.split("(", 1)[0].strip())
            if channels:
                stream["channels"] = channels
                break
            if m := re.fullmatch(r"(\d+) channels", word):
                stream["channels"] = int(m.group(1))
                break
    return stream


def _split_top_level(text: str) -> Iterable[str]:
    """Split on commas that are not inside parentheses (``yuv420p(tv, bt709)`` stays whole)."""
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            yield text[start:i]
            start = i + 1
    yield text[start:]
