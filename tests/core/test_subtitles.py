"""Subtitle and transcript writers, and the SRT/WebVTT parsers that read them back."""

from __future__ import annotations

import itertools
import json

import pytest

from include.video_pipeline.core.subtitles import (
    Cue,
    CueLayout,
    SubtitleParseError,
    TranscriptFormat,
    build_cues,
    cues_to_srt,
    cues_to_vtt,
    parse_srt,
    parse_vtt,
    render,
    srt_timestamp,
    to_json,
    to_srt,
    to_text,
    to_vtt,
    vtt_timestamp,
)
from include.video_pipeline.core.transcript import Segment, Transcript, TranscriptQuality, Word

LAYOUT = CueLayout()

LONG_RU = (
    "Сегодня мы расскажем, как устроен наш монтажный процесс и почему мы перешли на новую камеру. "
    "Во-первых, она легче, во-вторых, батарея держит почти весь съёмочный день, "
    "а это для документальной съёмки важнее всего остального."
)
LONG_EN = (
    "The birch canoe slid on the smooth planks, and glue the sheet to the dark blue background; "
    "it is easy to tell the depth of a well. These days a chicken leg is a rare dish."
)


def transcript(*segments: Segment, duration: float = 60.0) -> Transcript:
    return Transcript(
        language="ru",
        language_probability=0.97,
        duration=duration,
        segments=segments,
        backend="faster-whisper",
        model="small",
        quality=TranscriptQuality.OK,
        quality_notes=(),
        settings={"beam_size": 5, "vad": True},
    )


def words_of(cues: list[Cue]) -> list[str]:
    return " ".join(" ".join(c.lines) for c in cues).split()


def assert_readable(cues: list[Cue], layout: CueLayout = LAYOUT) -> None:
    for cue in cues:
        assert 1 <= len(cue.lines) <= layout.max_lines, cue
        assert all(0 < len(line) <= layout.max_line_chars for line in cue.lines), cue
        assert cue.end >= cue.start
    for before, after in itertools.pairwise(cues):
        assert before.end <= after.start + 1e-9, (before, after)


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (1.5, "00:00:01,500", "00:00:01.500"),
        (3661.001, "01:01:01,001", "01:01:01.001"),
        (59.9996, "00:01:00,000", "00:01:00.000"),  # rounding carries into the minutes
        (36000.0, "10:00:00,000", "10:00:00.000"),
        (-0.01, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_timestamps(seconds, srt, vtt):
    assert srt_timestamp(seconds) == srt
    assert vtt_timestamp(seconds) == vtt


@pytest.mark.parametrize("text", [LONG_RU, LONG_EN])
def test_long_segment_is_split_into_readable_cues(text):
    segment = Segment(10.0, 30.0, text)
    cues = build_cues([segment])
    assert len(cues) > 2
    assert_readable(cues)
    assert words_of(cues) == text.split()  # nothing lost, nothing reordered
    assert cues[0].start == pytest.approx(10.0)
    assert cues[-1].end == pytest.approx(30.0)
    assert all(c.duration >= LAYOUT.min_duration for c in cues)
    # Pieces of one segment follow each other without flicker.
    assert all(b.start == pytest.approx(a.end) for a, b in itertools.pairwise(cues))


def test_short_segment_fits_one_line():
    cues = build_cues([Segment(1.0, 3.0, "  Привет, мир!  ")])
    assert cues == [Cue(1.0, 3.0, ("Привет, мир!",))]


def test_two_lines_are_balanced():
    text = "the birch canoe slid on the smooth planks of the old wooden pier"
    [cue] = build_cues([Segment(0.0, 4.0, text)])
    assert len(cue.lines) == 2
    assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 6


def test_line_breaks_after_a_comma():
    text = "These days a chicken leg is a rare dish, rice is served in bowls."
    [cue] = build_cues([Segment(0.0, 4.0, text)])
    assert cue.lines == ("These days a chicken leg is a rare dish,", "rice is served in bowls.")


def test_cue_breaks_at_punctuation():
    text = (
        "Во-первых, эта камера заметно легче прежней. Во-вторых, батарея держит "
        "почти весь съёмочный день и ещё немного сверху."
    )
    cues = build_cues([Segment(0.0, 10.0, text)])
    # The sentence end wins over the later comma after "Во-вторых".
    assert cues[0].lines[-1].endswith("прежней.")


def test_times_follow_characters_without_word_timestamps():
    # "aa" is said faster than "extraordinarily": split times follow characters, not word counts.
    words = ["aa"] * 40 + ["extraordinarily"] * 8
    cues = build_cues([Segment(0.0, 10.0, " ".join(words))])
    assert len(cues) >= 3
    total = sum(len(w) + 1 for w in words)
    before = 0
    for cue in cues:
        assert cue.start == pytest.approx(10.0 * before / total)
        before += sum(len(w) + 1 for w in " ".join(cue.lines).split())
    assert cues[1].start < 10.0 * 40 / 48 / 2  # an equal share per word would put it far later


def test_times_follow_word_timestamps():
    words = [Word(float(i), float(i) + 0.5, f" слово{i}") for i in range(20)]
    text = "".join(w.text for w in words)
    cues = build_cues([Segment(0.0, 19.5, text, words=tuple(words))])
    assert_readable(cues)
    starts = {w.start for w in words}
    ends = {w.end for w in words}
    for cue in cues:
        assert cue.start in starts
        assert cue.end in ends or cue.end in starts  # stretched only into the pause before the next word


def test_short_piece_is_not_left_flashing():
    # A long sentence whose last word arrives 0.2 s before the segment ends: the greedy split
    # would leave a 0.2 s cue; the fix-up moves the boundary so both cues can be read.
    words = [Word(i * 0.3, i * 0.3 + 0.25, f" word{i:02d}") for i in range(13)]
    segment = Segment(0.0, words[-1].end, "".join(w.text for w in words), words=tuple(words))
    cues = build_cues([segment])
    assert_readable(cues)
    assert len(cues) == 2
    assert min(c.duration for c in cues) >= 1.0


@pytest.mark.parametrize(
    ("next_start", "expected_end"),
    [(5.0, 3.0), (2.5, 2.5), (2.3, 2.3)],
)
def test_short_cue_is_stretched_into_the_pause(next_start, expected_end):
    cues = build_cues([Segment(2.0, 2.3, "Да."), Segment(next_start, next_start + 2, "Конечно, давайте начнём.")])
    assert cues[0].end == pytest.approx(expected_end)
    assert cues[0].end <= cues[1].start


def test_last_cue_is_not_stretched_past_the_media():
    cues = build_cues([Segment(9.7, 9.9, "Всё.")], media_duration=10.0)
    assert cues[0].end == pytest.approx(10.0)


def test_overlapping_backend_times_are_trimmed():
    cues = build_cues([Segment(0.0, 3.2, "First sentence here."), Segment(3.0, 5.0, "Second one.")])
    assert_readable(cues)
    assert cues[0].end == pytest.approx(3.0)


def test_overlong_word_is_cut_to_the_line_width():
    url = "https://example.com/" + "a" * 100
    cues = build_cues([Segment(0.0, 6.0, f"Откройте {url} сейчас")])
    assert_readable(cues)
    assert "".join(words_of(cues)).replace("Откройте", "").replace("сейчас", "") == url


def test_empty_segments_make_no_cues():
    assert build_cues([Segment(0.0, 1.0, "   "), Segment(1.0, 2.0, "")]) == []


@pytest.mark.parametrize(
    "layout", [CueLayout(max_line_chars=32, max_lines=2), CueLayout(max_line_chars=42, max_lines=1)]
)
def test_layout_is_respected(layout):
    cues = build_cues([Segment(0.0, 20.0, LONG_RU)], layout)
    assert_readable(cues, layout)
    assert words_of(cues) == LONG_RU.split()


def sample_transcript() -> Transcript:
    return transcript(
        Segment(0.5, 12.0, LONG_RU, avg_logprob=-0.2, no_speech_prob=0.01, compression_ratio=1.4),
        Segment(12.5, 13.0, "Да."),
        Segment(14.0, 16.0, 'Цена: 5 < 10 & "кавычки" --> стрелка'),
        Segment(17.0, 25.0, LONG_EN),
    )


@pytest.mark.parametrize(
    ("writer", "parser"),
    [(to_srt, parse_srt), (to_vtt, parse_vtt)],
)
def test_subtitles_round_trip_through_utf8_files(tmp_path, writer, parser):
    t = sample_transcript()
    path = tmp_path / "subs"
    path.write_bytes(writer(t).encode("utf-8"))
    parsed = parser(path.read_bytes().decode("utf-8"))
    expected = build_cues(t.segments, media_duration=t.duration)
    assert [c.lines for c in parsed] == [c.lines for c in expected]
    for got, want in zip(parsed, expected, strict=True):
        assert got.start == pytest.approx(want.start, abs=0.0005)
        assert got.end == pytest.approx(want.end, abs=0.0005)
    assert_readable(parsed)
    assert any("съёмочный" in c.text for c in parsed)  # Cyrillic survived, ё included


def test_vtt_escapes_markup():
    vtt = to_vtt(sample_transcript())
    assert vtt.startswith("WEBVTT\n\n")
    assert "5 &lt; 10 &amp;" in vtt
    assert "--&gt; стрелка" in vtt  # a literal "-->" would end the timing line
    assert [c for c in parse_vtt(vtt) if "5 < 10 &" in c.text]


def test_srt_layout():
    srt = cues_to_srt([Cue(0.0, 1.5, ("Привет,", "мир!")), Cue(2.0, 3.0, ("Пока.",))])
    assert srt == "1\n00:00:00,000 --> 00:00:01,500\nПривет,\nмир!\n\n2\n00:00:02,000 --> 00:00:03,000\nПока.\n"
    assert cues_to_vtt([]) == "WEBVTT\n"


def test_vtt_parser_accepts_identifiers_notes_and_settings():
    text = (
        "\ufeffWEBVTT - made by hand\r\n\r\nNOTE a comment\r\nspanning lines\r\n\r\n"
        "intro\r\n00:01.000 --> 00:02.500 align:start\r\nПервая строка\r\n\r\n"
        "01:00:00.000 --> 01:00:01.000\r\nLast\r\n"
    )
    assert parse_vtt(text) == [Cue(1.0, 2.5, ("Первая строка",)), Cue(3600.0, 3601.0, ("Last",))]


@pytest.mark.parametrize(
    "text",
    [
        "1\n00:00:01,000 -> 00:00:02,000\nBad arrow\n",
        "2\n00:00:01,000 --> 00:00:02,000\nStarts at two\n",
        "1\n00:00:01.000 --> 00:00:02.000\nDots are WebVTT\n",
        "1\n00:00:03,000 --> 00:00:02,000\nBackwards\n",
        "1\n00:00:01,000 --> 00:00:02,000\n",
        "1\n00:00:01,000 --> 00:00:02,000\nOk\n\n3\n00:00:03,000 --> 00:00:04,000\nSkipped two\n",
        "1\n00:61:01,000 --> 00:62:02,000\nNo such minute\n",
    ],
)
def test_srt_parser_rejects_malformed(text):
    with pytest.raises(SubtitleParseError):
        parse_srt(text)


@pytest.mark.parametrize(
    "text",
    [
        "00:00:01.000 --> 00:00:02.000\nNo header\n",
        "WEBVTT\n\n00:00:01,000 --> 00:00:02,000\nCommas are SRT\n",
        "WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nBackwards\n",
        "WEBVTTX\n\n00:00:01.000 --> 00:00:02.000\nBad header\n",
        "WEBVTT\n\nidentifier only\n",
    ],
)
def test_vtt_parser_rejects_malformed(text):
    with pytest.raises(SubtitleParseError):
        parse_vtt(text)


def test_json_round_trip_keeps_cyrillic_readable():
    t = sample_transcript()
    text = to_json(t)
    assert "съёмочный" in text  # not \u-escaped
    data = json.loads(text.encode("utf-8"))
    assert data["text"] == t.text
    assert data["schema_version"] == 1
    assert Transcript.from_dict(data) == t


def test_plain_text():
    t = sample_transcript()
    assert to_text(t).splitlines() == [s.text.strip() for s in t.segments]
    assert to_text(transcript()) == ""


@pytest.mark.parametrize(
    ("fmt", "extension", "content_type", "starts"),
    [
        (TranscriptFormat.SRT, ".srt", "application/x-subrip; charset=utf-8", "1\n"),
        (TranscriptFormat.VTT, ".vtt", "text/vtt; charset=utf-8", "WEBVTT"),
        (TranscriptFormat.TXT, ".txt", "text/plain; charset=utf-8", "Сегодня"),
        (TranscriptFormat.JSON, ".json", "application/json", "{"),
    ],
)
def test_render_dispatch(fmt, extension, content_type, starts):
    assert fmt.extension == extension
    assert fmt.content_type == content_type
    assert render(sample_transcript(), fmt).startswith(starts)
