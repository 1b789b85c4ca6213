"""Several audio tracks: what video.mp4 keeps and which track is transcribed."""

from __future__ import annotations

import pytest

from include.video_pipeline.core.audio_tracks import (
    AudioLevel,
    choose_transcription_track,
    has_sound,
    language_code,
    needs_speech_measurement,
    parse_volumedetect,
    tracks_for_video,
)
from include.video_pipeline.core.media import AudioStream

SILENT = -91.0
LOUD = -12.0


def track(index: int, *, default: bool = False, language: str | None = None) -> AudioStream:
    return AudioStream(index=index, codec="aac", channels=1, default=default, language=language)


def levels(**peaks: float) -> dict[int, AudioLevel]:
    return {int(k[1:]): AudioLevel(int(k[1:]), peak - 6, peak) for k, peak in peaks.items()}


def test_parse_volumedetect_maps_filter_instances_to_streams():
    stderr = [
        "[Parsed_volumedetect_0 @ 0x5581] n_samples: 88200",
        "[Parsed_volumedetect_0 @ 0x5581] mean_volume: -91.0 dB",
        "[Parsed_volumedetect_0 @ 0x5581] max_volume: -91.0 dB",
        "[Parsed_volumedetect_1 @ 0x5582] [info] mean_volume: -24.3 dB",
        "[Parsed_volumedetect_1 @ 0x5582] [info] max_volume: -3.1 dB",
    ]
    parsed = parse_volumedetect(stderr, [1, 2])
    assert parsed == {1: AudioLevel(1, -91.0, -91.0), 2: AudioLevel(2, -24.3, -3.1)}
    assert not has_sound(parsed[1]) and has_sound(parsed[2]) and has_sound(None)


def test_video_keeps_every_track_with_sound_default_first():
    tracks = [track(1), track(2, default=True), track(3)]
    kept = tracks_for_video(tracks, levels(s1=LOUD, s2=LOUD, s3=SILENT))
    assert [t.index for t in kept] == [2, 1]
    # Unmeasured (a single track): kept as is.
    assert [t.index for t in tracks_for_video([track(1)], {})] == [1]
    # All silent: the default alone, so the video still has a sound track.
    assert [t.index for t in tracks_for_video(tracks, levels(s1=SILENT, s2=SILENT, s3=SILENT))] == [2]
    assert tracks_for_video([], {}) == ()


@pytest.mark.parametrize(
    ("tracks", "peaks", "speech", "language", "chosen", "why"),
    [
        # The case: the default first track is silent, the second speaks.
        ([track(1, default=True), track(2)], {"s1": SILENT, "s2": LOUD}, {}, None, 2, "only track with sound"),
        # A language param that names a tagged track selects it, whatever the default.
        (
            [track(1, default=True, language="rus"), track(2, language="eng")],
            {"s1": LOUD, "s2": LOUD},
            {},
            "en",
            2,
            "requested language",
        ),
        # Dubbed video, both speak: the default wins.
        (
            [track(1, language="eng"), track(2, default=True, language="rus")],
            {"s1": LOUD, "s2": LOUD},
            {1: 50.0, 2: 48.0},
            None,
            2,
            "default track",
        ),
        # Screen recording: default = system sound (music, little speech), second = the microphone.
        ([track(1, default=True), track(2)], {"s1": LOUD, "s2": LOUD}, {1: 3.0, 2: 40.0}, None, 2, "most speech"),
        # Nobody speaks: the default.
        ([track(1, default=True), track(2)], {"s1": LOUD, "s2": LOUD}, {1: 0.0, 2: 0.0}, None, 1, "no track"),
        # Everything silent: the default, said so.
        ([track(1), track(2, default=True)], {"s1": SILENT, "s2": SILENT}, {}, None, 2, "silent"),
        ([track(1)], {}, {}, None, 1, "only audio track"),
        # "auto" is no preference.
        (
            [track(1, default=True, language="rus"), track(2, language="eng")],
            {"s1": LOUD, "s2": LOUD},
            {1: 10.0, 2: 10.0},
            "auto",
            1,
            "default track",
        ),
    ],
)
def test_choose_transcription_track(tracks, peaks, speech, language, chosen, why):
    choice = choose_transcription_track(tracks, levels(**peaks), speech, language=language)
    assert choice is not None and choice.index == chosen and why in choice.reason
    recorded = choice.to_dict()
    assert recorded["index"] == chosen and len(recorded["candidates"]) == len(tracks)


def test_no_audio_no_choice():
    assert choose_transcription_track([], {}, {}) is None


def test_speech_is_measured_only_when_tags_and_levels_leave_a_choice():
    two = [track(1, default=True, language="rus"), track(2, language="eng")]
    assert needs_speech_measurement(two, levels(s1=SILENT, s2=LOUD), None) == []
    assert needs_speech_measurement(two, levels(s1=LOUD, s2=LOUD), "eng") == []
    assert [t.index for t in needs_speech_measurement(two, levels(s1=LOUD, s2=LOUD), None)] == [1, 2]


@pytest.mark.parametrize(
    ("tag", "code"), [("eng", "en"), ("rus", "ru"), ("ger", "de"), ("en-US", "en"), ("und", None), (None, None)]
)
def test_language_code(tag, code):
    assert language_code(tag) == code
