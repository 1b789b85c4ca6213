"""The prompts: versioned templates in ``prompts/`` filled for a transcript or a chunk.

``PROMPT_VERSION`` names the text-only prompt every analysis records; when
frames of the video come along, the images note is added and the version says
so (``analysis_v1+images_v1``).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

from include.video_pipeline.core.analysis.chunking import Chunk, format_timestamp, render_transcript
from include.video_pipeline.core.analysis.grounding import transcript_duration
from include.video_pipeline.core.analysis.languages import language_name
from include.video_pipeline.core.analysis.schema import LIMITS
from include.video_pipeline.core.transcript import Transcript, TranscriptQuality

PROMPT_VERSION = "analysis_v1"
# Told to the model when frames of the video come with the transcript. Its own
# versioned file, so the text-only prompt (and every analysis made with it)
# keeps its version; a multimodal analysis records "analysis_v1+images_v1".
IMAGES_PROMPT_VERSION = "images_v1"
PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


@dataclass(frozen=True)
class Prompt:
    version: str
    system: str
    user: str


def _read_prompt_file(version: str) -> str:
    path = PROMPTS_DIR / f"{version}.txt"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return "\n".join(lines)


def load_prompt_template(version: str = PROMPT_VERSION) -> tuple[string.Template, string.Template]:
    """The (system, user) templates of a prompt version from ``prompts/<version>.txt``."""
    path = PROMPTS_DIR / f"{version}.txt"
    text = _read_prompt_file(version)
    match = re.fullmatch(r"\s*\[system\]\n(?P<system>.*?)\n\[user\]\n(?P<user>.*)", text, flags=re.DOTALL)
    if not match:
        raise ValueError(f"{path} must have a [system] section followed by a [user] section")
    return string.Template(match["system"].strip()), string.Template(match["user"].strip() + "\n")


def build_prompt(
    transcript: Transcript,
    *,
    title: str,
    language: str,
    chunk: Chunk | None = None,
    version: str = PROMPT_VERSION,
    images: int = 0,
) -> Prompt:
    """Fill the versioned templates for the whole transcript or one chunk of it.

    ``images``: how many frames of the video are sent with the prompt; when
    there are any, the images note is added and the version says so.
    """
    system_template, user_template = load_prompt_template(version)
    segments = chunk.segments if chunk else transcript.segments
    if chunk and chunk.count > 1:
        part_note = (
            f"This is part {chunk.index + 1} of {chunk.count} of the transcript, from "
            f"{format_timestamp(chunk.start)} to {format_timestamp(chunk.end)} seconds. Analyse only this part; "
            "chapters must lie within it. The title should still fit the whole video."
        )
        summary_length = "2-4 sentences about this part."
    else:
        part_note = ""
        summary_length = "3-6 sentences about the whole video."
    quality_note = (
        "Note: the speech recognition flagged this transcript as unreliable (repetitions or low "
        "confidence); be conservative and skip passages that look garbled."
        if transcript.quality == TranscriptQuality.SUSPECT
        else ""
    )
    values = {
        "language": language,
        "language_name": language_name(language),
        "title": title.strip() or "(none)",
        "duration": format_timestamp(transcript_duration(transcript)),
        "part_note": part_note,
        "quality_note": quality_note,
        "summary_length": summary_length,
        "max_key_points": LIMITS["key_points"],
        "max_topics": LIMITS["topics"],
        "max_tags": LIMITS["tags"],
        "max_chapters": LIMITS["chapters"],
        "max_quotes": LIMITS["quotes"],
        "transcript": render_transcript(segments),
    }
    user = re.sub(r"\n{3,}", "\n\n", user_template.substitute(values))
    if images:
        note = string.Template(_read_prompt_file(IMAGES_PROMPT_VERSION).strip())
        user = note.substitute(images=images) + "\n\n" + user
        version = f"{version}+{IMAGES_PROMPT_VERSION}"
    return Prompt(version=version, system=system_template.substitute(values), user=user)
