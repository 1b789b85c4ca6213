"""The corrupt rule: damage rejects, odd timing only flags (numbers from bench/bench_media_damage.py)."""

from __future__ import annotations

import pytest

from include.video_pipeline.core.errors import InputRejected, RejectReason
from include.video_pipeline.core.integrity import (
    FLAG_TEXT,
    DecodeLog,
    Span,
    assess_decode,
    check_decoded_length,
    flag,
    length_tolerance,
    timing_flags,
)

# Real lines of ffmpeg 5.1 at -loglevel level+verbose (bit-flipped H.264/AAC, gappy Opus).
FLIPPED_H264 = """\
[h264 @ 0x55ef01a25f80] [error] negative number of zero coeffs at 13 9
[h264 @ 0x55ef01a25f80] [error] error while decoding MB 13 9
[warning] f100.mp4: corrupt decoded frame in stream 0
[warning] f100.mp4: corrupt decoded frame in stream 0
[aac @ 0x55f6e3da4a00] [error] channel element 3.8 is not allocated
[verbose] Input file #0 (f100.mp4):
[verbose]   Input stream #0:0 (video): 90 packets read (397278 bytes); 89 frames decoded; 
[verbose]   Input stream #0:1 (audio): 283 packets read (52247 bytes); 278 frames decoded (284672 samples); 
"""
GAPPY_OPUS = """\
[Parsed_aresample_0 @ 0x55d5d28e9200] [SWR @ 0x55d5d294b300] [verbose] adding 16384 audio samples of silence
[Parsed_aresample_0 @ 0x55d5d28e9200] [SWR @ 0x55d5d294b300] [verbose] adding 6488 audio samples of silence
[verbose]   Input stream #0:0 (video): 1 packets read (8180 bytes); 
[verbose]   Input stream #0:1 (audio): 301 packets read (59688 bytes); 301 frames decoded (288000 samples); 
"""


def log_of(text: str) -> DecodeLog:
    return DecodeLog().feed_all(text.splitlines())


def test_decode_log_counts_frames_damage_and_padding():
    log = log_of(FLIPPED_H264)
    video, audio = log.streams[0], log.streams[1]
    assert (video.packets, video.frames, video.corrupt_frames) == (90, 89, 2)
    assert (audio.packets, audio.frames, audio.samples) == (283, 278, 284672)
    assert log.errors == 3
    # Warnings and errors are kept as text (for messages), without their level tag; verbose lines are not.
    assert "[h264 @ 0x55ef01a25f80] negative number of zero coeffs at 13 9" in log.kept
    assert not any("packets read" in line for line in log.kept)

    gappy = log_of(GAPPY_OPUS)
    assert gappy.silence_samples == 16384 + 6488
    assert gappy.streams[0].frames is None  # copied, never decoded
    assert gappy.errors == 0 and gappy.kept == []


def test_untagged_lines_of_a_plain_run_are_kept_as_warnings():
    log = log_of("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] stream 1, offset 0x38030: partial file\n")
    assert log.kept and log.ended_early


def test_kept_lines_are_bounded():
    log = DecodeLog(keep_lines=3).feed_all(f"[error] line {i}" for i in range(10))
    assert log.kept == ["line 7", "line 8", "line 9"] and log.errors == 10


@pytest.mark.parametrize(
    ("stats", "outcome"),
    [
        # Intact AAC: the priming packet gives no frame. Not damage.
        ("283 packets read; 282 frames decoded (288768 samples);", {}),
        # 10 bit flips in 6 s of H.264: 4 of 90 frames damaged (4.4 %): processed, flagged.
        ("90 packets read; 90 frames decoded;", "flag"),
        # Heavy damage: more than DAMAGED_SHARE of the packets.
        ("77 packets read; 52 frames decoded;", "corrupt"),
        # Nothing decodes at all.
        ("40 packets read; 0 frames decoded;", "corrupt"),
    ],
)
def test_assess_decode(stats: str, outcome):
    corrupt = "[warning] x: corrupt decoded frame in stream 0\n" * (4 if outcome == "flag" else 0)
    log = log_of(corrupt + f"[verbose]   Input stream #0:0 (video): {stats}\n")
    if outcome == "corrupt":
        with pytest.raises(InputRejected) as err:
            assess_decode(log)
        assert err.value.reason is RejectReason.CORRUPT
    elif outcome == "flag":
        assert set(assess_decode(log)) == {"decode_errors"}
    else:
        assert assess_decode(log) == outcome


def test_a_remux_decodes_nothing_and_says_nothing_about_damage():
    log = log_of("[verbose]   Input stream #0:0 (video): 90 packets read (397278 bytes); \n")
    assert assess_decode(log) == {}


def test_a_demuxer_that_hits_the_end_early_flags_the_tail():
    log = log_of("[matroska,webm @ 0x1] [error] File ended prematurely\n")
    assert set(assess_decode(log)) == {"truncated_tail"}


@pytest.mark.parametrize(
    ("promised", "decoded", "container", "whole_file", "outcome"),
    [
        # The case: MKV, no per-stream durations, sound ends 0.8 s early. The picture reaches the end.
        ({0: None, 1: None}, {0: 14.4, 1: 13.6}, 14.4, True, {}),
        # The same track checked alone (the transcribe stage): nothing promised, nothing refused.
        ({1: None}, {1: 13.6}, 14.4, False, {}),
        # mp4 with -shortest or a short track: its own index says so.
        ({0: 6.0, 1: 4.0}, {0: 6.0, 1: 4.0}, 6.0, True, {}),
        # Truncated faststart mp4: the index promises 6 s, 3 s decode.
        ({0: 6.0, 1: 6.0}, {0: 3.0, 1: 3.0}, 6.0, True, "corrupt"),
        # Truncated MKV: no per-stream promise, but the longest stream falls far short of the container.
        ({0: None, 1: None}, {0: 2.8, 1: 2.8}, 6.0, True, "corrupt"),
        # An audio-only file is its only track.
        ({0: None}, {0: 2.0}, 6.0, True, "corrupt"),
        # A few frames missing at the very end (98 % of an upload arrived): processed.
        ({0: 6.0}, {0: 5.9}, 6.0, True, {}),
        # A long recording missing more than slack but within 2 %: processed and flagged.
        ({0: 3600.0}, {0: 3570.0}, 3600.0, True, "tail"),
    ],
)
def test_check_decoded_length(promised, decoded, container, whole_file, outcome):
    if outcome == "corrupt":
        with pytest.raises(InputRejected) as err:
            check_decoded_length(promised, decoded, container_seconds=container, whole_file=whole_file)
        assert err.value.reason is RejectReason.CORRUPT and "could be decoded" in err.value.message
    elif outcome == "tail":
        flags = check_decoded_length(promised, decoded, container_seconds=container, whole_file=whole_file)
        assert set(flags) == {"truncated_tail"} and "30.0 s" in flags["truncated_tail"]
    else:
        assert check_decoded_length(promised, decoded, container_seconds=container, whole_file=whole_file) == outcome


def test_length_tolerance_is_a_few_frames_or_two_percent():
    assert length_tolerance(6.0) == 0.5 and length_tolerance(3600.0) == 72.0


@pytest.mark.parametrize(
    ("video", "audio", "gaps", "codes"),
    [
        (Span(0, 6), [Span(0, 6)], 0.0, set()),
        (Span(0, 14.4), [Span(0, 13.6)], 0.0, {"audio_ends_early"}),
        (Span(0, 6), [Span(2, 6)], 0.0, {"audio_starts_late"}),
        (Span(0, 4), [Span(0, 6)], 0.0, {"video_ends_early"}),
        (None, [], 1.5, {"audio_gaps"}),
        # Priming and rounding are not oddities.
        (Span(0, 6.0), [Span(0.02, 5.8)], 0.3, set()),
    ],
)
def test_timing_flags(video, audio, gaps, codes):
    assert set(timing_flags(video, audio, gaps_seconds=gaps)) == codes


def test_every_flag_has_a_sentence_and_unknown_codes_are_refused():
    assert all(text.endswith(".") for text in FLAG_TEXT.values())
    with pytest.raises(ValueError):
        flag("made_up", "x")
