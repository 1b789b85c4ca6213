"""Reading a model's answer and keeping secrets out of messages: the JSON object in the text, redaction."""

from __future__ import annotations

import json
import re
from typing import Any


def redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(?P<body>.*?)\n?```\s*$", flags=re.DOTALL)
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", flags=re.DOTALL)


def parse_json_object(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The JSON object in a model's answer, or None and why not.

    Self-hosted models in JSON mode still sometimes wrap the object in a
    Markdown fence or lead with a ``<think>`` block; both are peeled off rather
    than paid for again.
    """
    text = _THINK.sub("", text or "", count=1)
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"not JSON ({exc.msg} at char {exc.pos})"]
    if not isinstance(data, dict):
        return None, [f"JSON {type(data).__name__}, not an object"]
    return data, []
