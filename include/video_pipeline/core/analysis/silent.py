"""Videos without speech: nothing for a model to analyse, so the analysis says so.

``needs_model`` tells whether a transcript is worth a model call;
``silent_analysis`` is the honest result when it is not (no audio track, or no
speech in it), in the analysis language where there is a text for it.
"""

from __future__ import annotations

from include.video_pipeline.core.analysis.languages import DEFAULT_LANGUAGE
from include.video_pipeline.core.analysis.results import AnalysisResult, AnalyzerName, Usage
from include.video_pipeline.core.analysis.schema import empty_analysis, validate_analysis
from include.video_pipeline.core.transcript import Transcript, TranscriptQuality

_SILENT_TEXT: dict[str, dict[TranscriptQuality, tuple[str, str]]] = {
    "en": {
        TranscriptQuality.NO_AUDIO: ("No audio", "The video has no audio track, so there is nothing to transcribe."),
        TranscriptQuality.NO_SPEECH: ("No speech", "No speech was detected in the video's audio."),
    },
    "ru": {
        TranscriptQuality.NO_AUDIO: ("Без звука", "В видео нет звуковой дорожки, поэтому расшифровывать нечего."),
        TranscriptQuality.NO_SPEECH: ("Без речи", "В звуке видео не обнаружено речи."),
    },
}


def needs_model(transcript: Transcript) -> bool:
    """False when there is nothing to analyse: a model could only invent a summary."""
    return transcript.quality not in (TranscriptQuality.NO_AUDIO, TranscriptQuality.NO_SPEECH) and (
        not transcript.is_empty
    )


def silent_analysis(
    transcript: Transcript, *, language: str, analyzer: AnalyzerName, model: str, prompt_version: str
) -> AnalysisResult:
    """The honest analysis of a video without speech: it says so and claims nothing else."""
    quality = transcript.quality if transcript.quality == TranscriptQuality.NO_AUDIO else TranscriptQuality.NO_SPEECH
    texts = _SILENT_TEXT.get(language) or _SILENT_TEXT[DEFAULT_LANGUAGE]
    text_language = language if language in _SILENT_TEXT else DEFAULT_LANGUAGE
    title, summary = texts[quality]
    data = empty_analysis(text_language)
    data.update(title_suggestion=title, summary=summary)
    return AnalysisResult(
        analyzer=analyzer,
        model=model,
        prompt_version=prompt_version,
        language=text_language,
        data=validate_analysis(data),
        flags=(quality.value,),
        usage=Usage(),
    )
