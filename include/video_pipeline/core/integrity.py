"""Is an upload damaged, or only unusual? The ``corrupt`` rule, and the flags a playable file gets instead.

A file is ``corrupt`` only when decoding shows damage:

* it cannot be opened although it starts like media (no index, a cut header:
  see :func:`~include.video_pipeline.core.media.classify_probe_failure`);
* nothing in it decodes;
* more than :data:`DAMAGED_SHARE` of a decoded stream's packets fail to decode or
  decode into frames the decoder marks corrupt;
* far less media decodes than its index promises: a stream stops more than
  :func:`length_tolerance` before the end its own index gives (mp4/mov track
  durations, Matroska ``DURATION`` tags), or, for streams whose container gives
  none, the longest stream stops that far before the container's duration.

Everything else a real recording does is processed and recorded as a flag
(:data:`FLAG_TEXT`): audio that starts late, ends early or has gaps, a picture
that stops before the sound, a container that does not say how long it is, a
few damaged frames, a tail of a few frames missing. The thresholds come from
``bench/bench_media_damage.py`` (its table is in the README): a real truncation
or heavy bit damage loses at least 10 % of a stream (25-90 % cuts, 100+ flips in
a few seconds), while undamaged files with odd timing lose nothing a decoder
cannot account for, and light damage (10 flips) hits under 5 % of the frames.

Pure: parses ffmpeg's verbose end-of-run statistics, compares numbers, decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from include.video_pipeline.core.errors import InputRejected, RejectReason

# More than this share of a stream's packets undecodable or decoded corrupt is
# damage throughout, not a glitch. Measured: 10 bit flips in 6 s of H.264 hit
# 4.4 % of the frames (plays with a few blocky frames); 100 flips hit 34 %.
DAMAGED_SHARE = 0.10
# Packets a decoder may swallow without returning a frame (priming, flush).
DECODER_DELAY_PACKETS = 2
# Timing differences under this many seconds are encoder priming and rounding.
TIMING_SLACK_SECONDS = 0.5

# Flag codes and what they mean to a person; the codes are a stable contract
# (ledger ``videos.media_flags``, manifest ``media_flags``, report).
FLAG_TEXT: dict[str, str] = {
    "audio_starts_late": "The sound starts after the picture.",
    "audio_ends_early": "The sound ends before the picture.",
    "video_ends_early": "The picture ends before the sound.",
    "audio_gaps": "The sound has gaps; they were filled with silence so the subtitles stay in sync.",
    "duration_unknown": "The file does not say how long it is (a live or browser recording); it was measured.",
    "decode_errors": "A few frames are damaged; the rest of the recording was processed.",
    "truncated_tail": "The file ends abruptly; only its last moments are missing.",
    "silent_audio_tracks": "Some audio tracks are silent; they were left out of the web video.",
    "several_audio_tracks": "The upload has several audio tracks; the transcript is made from one of them.",
}


def flag(code: str, detail: str) -> dict[str, str]:
    """One flag: ``{code: detail}``; ``detail`` says what was measured."""
    if code not in FLAG_TEXT:
        raise ValueError(f"unknown media flag {code!r}")
    return {code: detail}


# --------------------------------------------------------------------------- #
# What one ffmpeg run decoded
# --------------------------------------------------------------------------- #


@dataclass
class StreamDecode:
    """ffmpeg's end-of-run statistics for one input stream.

    ``frames`` is ``None`` for a stream that was only copied (never decoded).
    """

    index: int
    kind: str
    packets: int = 0
    frames: int | None = None
    samples: int | None = None
    corrupt_frames: int = 0

    @property
    def damaged(self) -> int:
        """Packets that gave no frame, plus frames the decoder flagged corrupt.

        An intact AAC track decodes one frame fewer than it has packets (the
        encoder's priming packet), so a decoder's own delay is not damage.
        """
        if self.frames is None:
            return 0
        return max(0, self.packets - self.frames - DECODER_DELAY_PACKETS) + self.corrupt_frames


_STREAM_STATS = re.compile(
    r"Input stream #\d+:(?P<index>\d+) \((?P<kind>\w+)\): (?P<packets>\d+) packets read"
    r"(?: \(\d+ bytes\))?;(?: (?P<frames>\d+) frames decoded(?: \((?P<samples>\d+) samples\))?;)?"
)
_CORRUPT_FRAME = re.compile(r"corrupt decoded frame in stream (?P<index>\d+)")
_SILENCE = re.compile(r"adding (?P<samples>\d+) audio samples of silence")
_LEVEL = re.compile(r"\[(?P<level>panic|fatal|error|warning|info|verbose|debug|trace)\] ")
# What a demuxer says when the file stops before its own structure does.
_ENDED_EARLY = ("partial file", "file ended prematurely", "truncat")


@dataclass
class DecodeLog:
    """Reads ffmpeg's ``-loglevel level+verbose`` stderr, line by line, into counters.

    Only warnings and errors are kept as text (for error messages); the verbose
    lines are counted and dropped, so a long run cannot crowd the cause out.
    """

    streams: dict[int, StreamDecode] = field(default_factory=dict)
    errors: int = 0
    silence_samples: int = 0
    ended_early: bool = False
    kept: list[str] = field(default_factory=list)
    keep_lines: int = 400

    def feed(self, line: str) -> None:
        match = _LEVEL.search(line)
        level = match.group("level") if match else "warning"  # an untagged line: an ffmpeg without level+
        text = line[: match.start()] + line[match.end() :] if match else line
        if stats := _STREAM_STATS.search(text):
            index = int(stats.group("index"))
            self.streams[index] = StreamDecode(
                index=index,
                kind=stats.group("kind"),
                packets=int(stats.group("packets")),
                frames=int(stats.group("frames")) if stats.group("frames") is not None else None,
                samples=int(stats.group("samples")) if stats.group("samples") is not None else None,
                corrupt_frames=self.streams[index].corrupt_frames if index in self.streams else 0,
            )
            return
        if corrupt := _CORRUPT_FRAME.search(text):
            index = int(corrupt.group("index"))
            self.streams.setdefault(index, StreamDecode(index=index, kind="?")).corrupt_frames += 1
        if silence := _SILENCE.search(text):
            self.silence_samples += int(silence.group("samples"))
            return
        if any(p in text.lower() for p in _ENDED_EARLY):
            self.ended_early = True
        if level in ("panic", "fatal", "error"):
            self.errors += 1
        if level in ("panic", "fatal", "error", "warning"):
            self.kept.append(text.rstrip())
            if len(self.kept) > self.keep_lines:
                del self.kept[0]

    def feed_all(self, lines: Iterable[str]) -> DecodeLog:
        for line in lines:
            self.feed(line)
        return self


def assess_decode(log: DecodeLog, *, what: str = "the file") -> dict[str, str]:
    """Flags for a decode that shows no more than light damage; raises ``corrupt`` for heavy damage.

    Streams that were copied rather than decoded say nothing about damage (a
    remux decodes nothing), so they are left out.
    """
    decoded = [s for s in log.streams.values() if s.frames is not None and s.packets > 0]
    if not decoded:
        return _tail_flag(log)
    if all(s.frames == 0 for s in decoded):
        raise InputRejected(
            RejectReason.CORRUPT,
            f"{what} is damaged: none of its {sum(s.packets for s in decoded)} packets could be decoded",
            {"streams": {s.index: s.packets for s in decoded}},
        )
    flags = _tail_flag(log)
    for stream in decoded:
        share = stream.damaged / stream.packets
        if share > DAMAGED_SHARE:
            raise InputRejected(
                RejectReason.CORRUPT,
                f"{what} is damaged: {stream.damaged} of {stream.packets} {stream.kind} packets "
                f"(stream {stream.index}) could not be decoded cleanly",
                {"stream": stream.index, "damaged": stream.damaged, "packets": stream.packets},
            )
    damaged = [s for s in decoded if s.damaged]
    if damaged or log.errors:
        detail = ", ".join(f"{s.damaged} of {s.packets} {s.kind} frames" for s in damaged) or "decoder warnings"
        flags.update(flag("decode_errors", f"{detail} damaged ({log.errors} decoder errors)"))
    return flags


def _tail_flag(log: DecodeLog) -> dict[str, str]:
    return flag("truncated_tail", "the demuxer reached the end of the file early") if log.ended_early else {}


# --------------------------------------------------------------------------- #
# Did as much decode as the index promised?
# --------------------------------------------------------------------------- #


def length_tolerance(promised_seconds: float) -> float:
    """Seconds a decode may fall short of a promise: a few frames, or 2 % of a long recording."""
    return max(TIMING_SLACK_SECONDS, 0.02 * promised_seconds)


@dataclass(frozen=True)
class Span:
    """Where a stream sits on the file's timeline, in seconds from the file's start."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


def check_decoded_length(
    promised: Mapping[int, float | None],
    decoded: Mapping[int, float],
    *,
    container_seconds: float,
    whole_file: bool,
) -> dict[str, str]:
    """Refuse a decode that stops far before what the file's index promises.

    :param promised: per decoded stream, the end its own index gives, or ``None``
        when the container keeps no per-stream duration (most Matroska files).
    :param decoded: per decoded stream, where its decoded media ends.
    :param container_seconds: the container's duration: the end of its longest stream.
    :param whole_file: the decode covered the file's main streams, so the longest
        of them must reach the container's end. A transcript's single audio track
        in a video file may well end earlier, and is then only checked against
        its own promise.
    :returns: a ``truncated_tail`` flag when a little is missing; else nothing.
    :raises InputRejected: ``corrupt``.
    """
    short: list[tuple[int, float, float]] = []
    for index, end in decoded.items():
        promise = promised.get(index)
        if promise and end < promise - length_tolerance(promise):
            short.append((index, end, promise))
    longest = max(decoded.values(), default=0.0)
    if whole_file and container_seconds > 0 and longest < container_seconds - length_tolerance(container_seconds):
        short.append((-1, longest, container_seconds))
    if short:
        index, end, promise = min(short, key=lambda s: s[1] / s[2] if s[2] else 1.0)
        where = f"stream {index}" if index >= 0 else "the file"
        raise InputRejected(
            RejectReason.CORRUPT,
            f"the file is damaged or truncated: only {end:.1f} s of {promise:.1f} s ({where}) could be decoded",
            {"stream": index, "expected_seconds": round(promise, 3), "decoded_seconds": round(end, 3)},
        )
    missing = [promise - decoded[i] for i, promise in promised.items() if promise and i in decoded]
    if whole_file and container_seconds > 0:
        missing.append(container_seconds - longest)
    worst = max(missing, default=0.0)
    if worst > TIMING_SLACK_SECONDS:
        return flag("truncated_tail", f"the last {worst:.1f} s are missing")
    return {}


def timing_flags(video: Span | None, audio: Sequence[Span], *, gaps_seconds: float = 0.0) -> dict[str, str]:
    """What is odd about the timing of a playable file (never a reason to reject it)."""
    flags: dict[str, str] = {}
    if video is not None and audio:
        first = min(a.start for a in audio)
        last = max(a.end for a in audio)
        if first - video.start > TIMING_SLACK_SECONDS:
            flags.update(flag("audio_starts_late", f"the sound starts {first - video.start:.1f} s after the picture"))
        if video.end - last > TIMING_SLACK_SECONDS:
            flags.update(flag("audio_ends_early", f"the sound ends {video.end - last:.1f} s before the picture"))
        if last - video.end > TIMING_SLACK_SECONDS:
            flags.update(flag("video_ends_early", f"the picture ends {last - video.end:.1f} s before the sound"))
    if gaps_seconds > TIMING_SLACK_SECONDS:
        flags.update(flag("audio_gaps", f"{gaps_seconds:.1f} s of gaps in the sound were filled with silence"))
    return flags
