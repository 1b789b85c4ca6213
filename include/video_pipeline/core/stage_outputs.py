"""What the transcode, transcribe and analyze stages hand to publish: small typed results.

Each crosses XCom (and is recorded in the ledger, where a duplicate upload finds
it) as the plain dict ``to_dict`` makes; ``from_dict`` reads one back. They carry
ids, counts and file descriptions, never media or text: the files themselves are
in ``staging/<video id>/``.

``from_dict`` accepts what older runs recorded (a key a result did not have yet
takes its default), because a duplicate upload may reuse a result recorded long
ago. ``files`` lists the staged files as the manifest lists them
(``name``, ``size``, ``sha256``, ``content_type``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

FileEntry = dict[str, Any]


@dataclass
class StageOutput:
    """What every stage result has: the files it staged."""

    files: list[FileEntry] = field(default_factory=list)

    def file(self, name: str) -> FileEntry | None:
        """The staged file called ``name``, if the stage made one."""
        return next((f for f in self.files if f.get("name") == name), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self:
        """Read back what ``to_dict`` made (``None``, as for a stage that did not run, is an empty result)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        values["files"] = [dict(f) for f in values.get("files") or []]
        return cls(**values)


@dataclass
class MediaOutput(StageOutput):
    """The transcode stage's result."""

    # The published file's real length; a container header can claim hours it does not hold.
    duration: float | None = None
    has_video: bool = False
    has_audio: bool = False
    remuxed: bool = False
    # Carried in the result so a duplicate that reuses it publishes the same facts.
    audio_tracks: list[int] = field(default_factory=list)
    media_flags: dict[str, str] = field(default_factory=dict)
    # Where a player starts (``hls/master.m3u8``); only with an HLS ladder.
    hls: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if data["hls"] is None:
            del data["hls"]  # results made without HLS never named it
        return data

    def facts(self) -> dict[str, Any]:
        """What the manifest's ``media`` shows: everything but the files and the flags."""
        return {k: v for k, v in self.to_dict().items() if k not in ("files", "media_flags")}


@dataclass
class TranscriptOutput(StageOutput):
    """The transcribe stage's result (the transcript itself is ``transcript.json`` in staging)."""

    language: str | None = None
    language_probability: float | None = None
    quality: str | None = None
    segments: int = 0
    characters: int = 0
    # Which track was transcribed and why; small, and needed by publish even when a
    # duplicate reuses this result.
    audio_track: dict[str, Any] | None = None
    media_flags: dict[str, str] = field(default_factory=dict)


@dataclass
class AnalysisOutput(StageOutput):
    """The analyze stage's result (the analysis itself is ``analysis.json`` in staging)."""

    analyzer: str | None = None
    model: str | None = None
    language: str | None = None
    flags: list[str] = field(default_factory=list)
    cost_usd: float | None = None
    # False for an analysis the provider could not make: no duplicate upload may inherit it.
    cacheable: bool = True
