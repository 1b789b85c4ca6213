"""HLS playlists: reading the media playlists ffmpeg wrote, measuring them, and writing the master playlist.

The master playlist's BANDWIDTH, AVERAGE-BANDWIDTH and CODECS attributes come
from the segments actually written and the H.264 configuration in each rung's
init segment, not from the encoder's targets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from include.video_pipeline.core.media.hls import HLS_AUDIO_GROUP


@dataclass(frozen=True)
class MediaPlaylist:
    """The parts of an HLS media playlist the pipeline checks: the init segment and the segments."""

    target_duration: float
    init: str | None
    segments: tuple[tuple[str, float], ...]  # (uri, seconds)
    ended: bool = False

    @property
    def duration(self) -> float:
        return sum(seconds for _, seconds in self.segments)


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Read an HLS media playlist (the subset ffmpeg writes); raises ``ValueError`` on a non-playlist."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an HLS playlist (no #EXTM3U)")
    target, init, ended = 0.0, None, False
    segments: list[tuple[str, float]] = []
    pending: float | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.partition(":")[2])
        elif line.startswith("#EXT-X-MAP:"):
            match = re.search(r'URI="([^"]+)"', line)
            init = match.group(1) if match else None
        elif line.startswith("#EXTINF:"):
            pending = float(line.partition(":")[2].split(",", 1)[0])
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#"):
            if pending is None:
                raise ValueError(f"segment {line!r} has no #EXTINF duration")
            segments.append((line, pending))
            pending = None
    return MediaPlaylist(target_duration=target, init=init, segments=tuple(segments), ended=ended)


def peak_segment_bitrate(segments: Sequence[tuple[float, int]], target_duration: float) -> int:
    """BANDWIDTH as RFC 8216 defines it: the highest bit rate of any run of contiguous
    segments lasting 0.5 to 1.5 target durations; ``segments`` are (seconds, bytes).

    A clip shorter than half a target duration has no such run: its average is used.
    """
    best = 0.0
    for start in range(len(segments)):
        seconds = size = 0.0
        for duration, nbytes in segments[start:]:
            seconds += duration
            size += nbytes
            if seconds > 1.5 * target_duration:
                break
            if seconds >= 0.5 * target_duration:
                best = max(best, 8 * size / seconds)
    if best == 0.0:
        return average_bitrate(segments)
    return math.ceil(best)


def average_bitrate(segments: Sequence[tuple[float, int]]) -> int:
    """AVERAGE-BANDWIDTH: all the bits over all the seconds."""
    seconds = sum(d for d, _ in segments)
    return math.ceil(8 * sum(n for _, n in segments) / seconds) if seconds > 0 else 0


def avc_codecs_attribute(init_segment: bytes) -> str | None:
    """RFC 6381 codec string (``avc1.64001f``) from the ``avcC`` box of an fMP4 init segment.

    The three bytes after the box's version byte are exactly the profile, the
    constraint flags and the level the attribute spells in hex; ``None`` when
    there is no ``avcC`` (not H.264).
    """
    at = init_segment.find(b"avcC")
    if at < 0 or len(init_segment) < at + 8:
        return None
    profile, constraints, level = init_segment[at + 5 : at + 8]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x}"


@dataclass(frozen=True)
class HlsVariant:
    """One ``#EXT-X-STREAM-INF`` entry of the master playlist.

    :param bandwidth: peak bits/s, audio included (RFC 8216 section 4.3.4.2).
    :param codecs: every codec a player needs for it, audio group included.
    """

    uri: str
    width: int
    height: int
    bandwidth: int
    average_bandwidth: int
    codecs: str
    frame_rate: float | None = None


def render_master_playlist(
    variants: Sequence[HlsVariant], *, audio_uri: str | None = None, audio_channels: int = 2
) -> str:
    """The master playlist: one variant per rung, lowest first, and the shared audio rendition.

    Players start with the first variant (Safari) or their bandwidth estimate
    (hls.js); the lowest first starts fast on any connection and adapts up.
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio_uri is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{HLS_AUDIO_GROUP}",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,'
            f'CHANNELS="{audio_channels}",URI="{audio_uri}"'
        )
    for variant in sorted(variants, key=lambda v: (v.width * v.height, v.bandwidth)):
        attributes = [
            f"BANDWIDTH={variant.bandwidth}",
            f"AVERAGE-BANDWIDTH={variant.average_bandwidth}",
            f"RESOLUTION={variant.width}x{variant.height}",
            f'CODECS="{variant.codecs}"',
        ]
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={variant.frame_rate:.3f}")
        if audio_uri is not None:
            attributes.append(f'AUDIO="{HLS_AUDIO_GROUP}"')
        lines += [f"#EXT-X-STREAM-INF:{','.join(attributes)}", variant.uri]
    return "\n".join(lines) + "\n"
