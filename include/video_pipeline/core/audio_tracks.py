"""Several audio tracks: which ones the web video keeps, and which one the transcript is made from.

Screen recorders write the microphone and the system sound as two tracks,
conference tools one per speaker or a silent placeholder, dubbed videos one per
language. The rules:

* ``video.mp4`` keeps every track that has sound (:func:`has_sound`), the
  default one first (players start with the first); silent tracks are dropped
  and flagged. When every track is silent the default one is kept, so the video
  still has a (silent) sound track.
* The transcript comes from (:func:`choose_transcription_track`): the track
  tagged with the language the run asks for; else the only track with sound;
  else the default track, if it carries speech (at least half as much as the
  most talkative track, so a default music bed does not win over the voice);
  else the track with the most measured speech; ties and speechless files go to
  the default track. The choice and its reason are recorded.

Pure: levels come from ffmpeg's ``volumedetect``, speech seconds from the Silero
VAD in the Whisper hook; this module only decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from include.video_pipeline.core.media import AudioStream, choose_audio_stream

# volumedetect reports -91 dB for digital silence (16-bit floor). A muted
# microphone or a placeholder track peaks below this; a voice, even a quiet one
# far from the microphone, peaks well above (-30 to -3 dBFS).
SILENCE_PEAK_DB = -60.0
# A default track keeps its priority if it has at least this share of the most
# talkative track's speech.
DEFAULT_SPEECH_SHARE = 0.5


@dataclass(frozen=True)
class AudioLevel:
    """How loud one track is: ``volumedetect``'s mean (RMS) and peak, in dBFS."""

    index: int
    mean_db: float
    peak_db: float


def has_sound(level: AudioLevel | None) -> bool:
    """True unless the track was measured and found silent (an unmeasured track counts as sound)."""
    return level is None or level.peak_db > SILENCE_PEAK_DB


_VOLUME = re.compile(
    r"Parsed_volumedetect_(?P<n>\d+) @ [^\]]*\](?: \[\w+\])? (?P<what>mean|max)_volume: (?P<db>-?[\d.]+|-inf) dB"
)


def parse_volumedetect(lines: Iterable[str], indexes: Sequence[int]) -> dict[int, AudioLevel]:
    """Levels per stream from the stderr of one ffmpeg run with a ``volumedetect`` per track.

    ``indexes`` are the stream indexes in the order their filters appear in the
    graph (ffmpeg numbers the filter instances in that order).
    """
    found: dict[int, dict[str, float]] = {}
    for line in lines:
        match = _VOLUME.search(line)
        if match is None:
            continue
        n = int(match.group("n"))
        db = -91.0 if match.group("db") == "-inf" else float(match.group("db"))
        found.setdefault(n, {})[match.group("what")] = db
    levels: dict[int, AudioLevel] = {}
    for n, values in found.items():
        if n < len(indexes) and "max" in values:
            levels[indexes[n]] = AudioLevel(indexes[n], values.get("mean", values["max"]), values["max"])
    return levels


def tracks_for_video(tracks: Sequence[AudioStream], levels: Mapping[int, AudioLevel]) -> tuple[AudioStream, ...]:
    """The tracks ``video.mp4`` keeps: every one with sound, the default first; the default alone if all are silent."""
    default = choose_audio_stream(tracks)
    if default is None:
        return ()
    sounding = [t for t in tracks if has_sound(levels.get(t.index))]
    if not sounding:
        return (default,)
    return tuple(sorted(sounding, key=lambda t: (t.index != default.index, tracks.index(t))))


# ISO 639-2 (what containers tag) to ISO 639-1 (what Whisper and people write),
# for the languages our users record in; both bibliographic and terminology forms.
_ISO639_2 = {
    "eng": "en", "rus": "ru", "ukr": "uk", "bel": "be", "kaz": "kk", "deu": "de", "ger": "de",
    "fra": "fr", "fre": "fr", "spa": "es", "ita": "it", "por": "pt", "pol": "pl", "ces": "cs",
    "cze": "cs", "nld": "nl", "dut": "nl", "swe": "sv", "fin": "fi", "tur": "tr", "ara": "ar",
    "heb": "he", "hin": "hi", "jpn": "ja", "kor": "ko", "zho": "zh", "chi": "zh", "uzb": "uz",
    "kir": "ky", "aze": "az", "arm": "hy", "hye": "hy", "geo": "ka", "kat": "ka", "ron": "ro",
    "rum": "ro", "bul": "bg", "srp": "sr", "hrv": "hr", "ell": "el", "gre": "el", "hun": "hu",
    "lit": "lt", "lav": "lv", "est": "et", "vie": "vi", "tha": "th", "ind": "id", "fas": "fa", "per": "fa",
}  # fmt: skip


def language_code(tag: str | None) -> str | None:
    """``"eng"``, ``"en"``, ``"en-US"`` -> ``"en"``; ``None`` for no tag or ``und``."""
    if not tag:
        return None
    code = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]
    if code in ("", "und", "mul", "zxx"):
        return None
    return _ISO639_2.get(code, code)


@dataclass(frozen=True)
class TrackChoice:
    """Which track the transcript is made from, and why (recorded in ``transcript.json`` and the manifest).

    :param candidates: every track as measured: index, language, default flag,
        levels and speech seconds where measured.
    """

    index: int
    reason: str
    language: str | None
    default: bool
    candidates: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["candidates"] = list(self.candidates)
        return data


def needs_speech_measurement(
    tracks: Sequence[AudioStream], levels: Mapping[int, AudioLevel], language: str | None
) -> list[AudioStream]:
    """The tracks whose speech must be measured before choosing: empty when tags or levels decide alone."""
    sounding = [t for t in tracks if has_sound(levels.get(t.index))]
    if len(sounding) < 2:
        return []
    wanted = language_code(language)
    if wanted and any(language_code(t.language) == wanted for t in sounding):
        return []
    return sounding


def choose_transcription_track(
    tracks: Sequence[AudioStream],
    levels: Mapping[int, AudioLevel],
    speech: Mapping[int, float],
    *,
    language: str | None = None,
) -> TrackChoice | None:
    """The track to transcribe (see the module docstring); ``None`` when there is no audio.

    :param speech: seconds of speech per measured track (only sounding tracks need one).
    :param language: the run's ``language`` (``ru``, ``eng``...); ``None`` or ``auto``: no preference.
    """
    default = choose_audio_stream(tracks)
    if default is None:
        return None
    candidates = tuple(_candidate(t, levels.get(t.index), speech.get(t.index)) for t in tracks)

    def pick(track: AudioStream, reason: str) -> TrackChoice:
        return TrackChoice(track.index, reason, track.language, track.default, candidates)

    if len(tracks) == 1:
        return pick(default, "the only audio track")
    sounding = [t for t in tracks if has_sound(levels.get(t.index))]
    if not sounding:
        return pick(default, "every audio track is silent; the default one is used")
    wanted = language_code(language) if language != "auto" else None
    if wanted:
        for track in sounding:
            if language_code(track.language) == wanted:
                return pick(track, f"tagged with the requested language {language!r}")
    if len(sounding) == 1:
        silent = len(tracks) - 1
        return pick(sounding[0], f"the only track with sound ({silent} silent)")
    best = max(sounding, key=lambda t: (speech.get(t.index, 0.0), t.index == default.index))
    best_speech = speech.get(best.index, 0.0)
    default_speech = speech.get(default.index, 0.0)
    if default in sounding and best_speech <= 0:
        return pick(default, "no track has measurable speech; the default one is used")
    if default in sounding and default_speech >= DEFAULT_SPEECH_SHARE * best_speech:
        return pick(default, f"the default track, with {default_speech:.1f} s of speech")
    runner_up = _runner_up(sounding, best, speech)
    return pick(best, f"the most speech: {best_speech:.1f} s, against at most {runner_up:.1f} s on another track")


def _runner_up(sounding: Sequence[AudioStream], best: AudioStream, speech: Mapping[int, float]) -> float:
    return max((speech.get(t.index, 0.0) for t in sounding if t.index != best.index), default=0.0)


def _candidate(track: AudioStream, level: AudioLevel | None, speech: float | None) -> dict[str, Any]:
    item: dict[str, Any] = {"index": track.index, "language": track.language, "default": track.default}
    if level is not None:
        item["mean_db"], item["peak_db"] = level.mean_db, level.peak_db
        item["sound"] = has_sound(level)
    if speech is not None:
        item["speech_seconds"] = round(speech, 2)
    return item
