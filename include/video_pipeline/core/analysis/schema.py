"""What a valid analysis is: the JSON Schema of stored analyses and the model's answer.

``ANALYSIS_SCHEMA`` validates stored analyses; ``MODEL_RESPONSE_SCHEMA`` is the
same minus ``schema_version`` (which we stamp, not the model) and is sent to
Gemini as ``response_json_schema``. ``LIMITS`` caps list lengths (told to the
model, enforced by grounding), and ``empty_analysis`` is the valid analysis that
claims nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import jsonschema

SCHEMA_VERSION = 1

# Caps on list lengths. They are told to the model in the prompt and enforced by
# ground_analysis (truncation + a flag) rather than by the schema, so that one
# item too many costs nothing instead of a failed, paid-for call.
LIMITS: dict[str, int] = {
    "key_points": 8,
    "topics": 8,
    "tags": 12,
    "entities": 20,  # per kind
    "chapters": 20,
    "action_items": 15,
    "quotes": 5,
}
MAX_TITLE_CHARS = 120

_STRING_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string"}}

ANALYSIS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "VideoAnalysis",
    "type": "object",
    "properties": {
        "schema_version": {"type": "integer", "enum": [SCHEMA_VERSION]},
        "title_suggestion": {"type": "string", "description": "Short, specific title for the video."},
        "summary": {"type": "string", "description": "Summary of what is said in the video."},
        "key_points": {**_STRING_LIST, "description": "Main points, one sentence each."},
        "topics": {**_STRING_LIST, "description": "Broad subjects discussed."},
        "tags": {**_STRING_LIST, "description": "Short lowercase search tags."},
        "entities": {
            "type": "object",
            "properties": {
                "people": _STRING_LIST,
                "organizations": _STRING_LIST,
                "places": _STRING_LIST,
            },
            "required": ["people", "organizations", "places"],
            "additionalProperties": False,
        },
        "chapters": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "start": {"type": "number", "description": "Seconds from the start of the video."},
                    "end": {"type": "number", "description": "Seconds from the start of the video."},
                    "title": {"type": "string"},
                    "summary": {"type": "string"},
                },
                "required": ["start", "end", "title", "summary"],
                "additionalProperties": False,
            },
        },
        "action_items": {**_STRING_LIST, "description": "Tasks, decisions and follow-ups; empty if none."},
        "quotes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "Verbatim, in the transcript's language."},
                    "start": {"type": "number", "description": "Start of the quoted line, in seconds."},
                },
                "required": ["text", "start"],
                "additionalProperties": False,
            },
        },
        "language": {"type": "string", "description": "ISO 639-1 code of the analysis text."},
    },
    "required": [
        "schema_version",
        "title_suggestion",
        "summary",
        "key_points",
        "topics",
        "tags",
        "entities",
        "chapters",
        "action_items",
        "quotes",
        "language",
    ],
    "additionalProperties": False,
}


def _model_response_schema() -> dict[str, Any]:
    schema = copy.deepcopy(ANALYSIS_SCHEMA)
    del schema["$schema"]
    del schema["properties"]["schema_version"]
    schema["required"].remove("schema_version")
    # Gemini emits properties in this order; summary before chapters reads better
    # and makes a truncated answer lose the least useful fields.
    schema["propertyOrdering"] = list(schema["required"])
    return schema


MODEL_RESPONSE_SCHEMA: dict[str, Any] = _model_response_schema()

_VALIDATOR = jsonschema.Draft202012Validator(ANALYSIS_SCHEMA)


class AnalysisValidationError(ValueError):
    """An analysis does not match ``ANALYSIS_SCHEMA``; ``errors`` lists where and why."""

    def __init__(self, errors: Sequence[str]):
        super().__init__("analysis does not match the schema: " + "; ".join(errors[:5]))
        self.errors = list(errors)


def schema_errors(data: Any) -> list[str]:
    """Every way ``data`` violates ``ANALYSIS_SCHEMA``, as ``path: message`` strings."""
    found = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def validate_analysis(data: Any) -> dict[str, Any]:
    """Return ``data`` unchanged if it is a valid analysis, else raise AnalysisValidationError."""
    errors = schema_errors(data)
    if errors:
        raise AnalysisValidationError(errors)
    return dict(data)


def empty_analysis(language: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "title_suggestion": "",
        "summary": "",
        "key_points": [],
        "topics": [],
        "tags": [],
        "entities": {"people": [], "organizations": [], "places": []},
        "chapters": [],
        "action_items": [],
        "quotes": [],
        "language": language,
    }
