"""Merging the analyses of a long transcript's chunks into one, deterministically.

No extra model call: lists are interleaved or ranked by how many chunks name
an item so the caps keep something from every part, chapters are concatenated
in chunk order, and the merge is grounded again by the caller.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from typing import Any

from include.video_pipeline.core.analysis.grounding import _clean_strings
from include.video_pipeline.core.analysis.schema import LIMITS, empty_analysis


def _round_robin(lists: Sequence[Sequence[str]]) -> list[str]:
    """Interleave so that a cap keeps items from every chunk, not just the first ones."""
    merged: list[str] = []
    for row in range(max((len(items) for items in lists), default=0)):
        merged.extend(items[row] for items in lists if row < len(items))
    return merged


def _ranked(lists: Sequence[Sequence[str]]) -> list[str]:
    """Items named by more chunks first; ties keep first appearance. Deterministic."""
    counts: Counter[str] = Counter()
    first_seen: dict[str, tuple[int, str]] = {}
    for items in lists:
        for item in dict.fromkeys(i.casefold() for i in items):
            counts[item] += 1
        for item in items:
            first_seen.setdefault(item.casefold(), (len(first_seen), item))
    order = sorted(first_seen, key=lambda k: (-counts[k], first_seen[k][0]))
    return [first_seen[k][1] for k in order]


def merge_analyses(parts: Sequence[dict[str, Any]], *, language: str) -> dict[str, Any]:
    """Combine grounded chunk analyses, in chunk order, into one (then ground it again)."""
    if not parts:
        raise ValueError("nothing to merge")
    if len(parts) == 1:
        return copy.deepcopy(dict(parts[0]))
    merged = empty_analysis(language)
    merged["title_suggestion"] = next((p["title_suggestion"] for p in parts if p["title_suggestion"]), "")
    merged["summary"] = " ".join(p["summary"].strip() for p in parts if p["summary"].strip())
    # Caps are applied here, quietly: dropping the excess of a merge is expected,
    # not a repair of what the model said.
    for key in ("key_points", "action_items"):
        merged[key] = _clean_strings(_round_robin([p[key] for p in parts]), limit=LIMITS[key])[0]
    for key in ("topics", "tags"):
        merged[key] = _ranked([p[key] for p in parts])[: LIMITS[key]]
    for kind in ("people", "organizations", "places"):
        merged["entities"][kind] = _ranked([p["entities"][kind] for p in parts])[: LIMITS["entities"]]
    merged["chapters"] = [c for p in parts for c in p["chapters"]]
    merged["quotes"] = _round_robin_dicts([p["quotes"] for p in parts])
    return merged


def _round_robin_dicts(lists: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    picked = [items[row] for row in range(max(map(len, lists), default=0)) for items in lists if row < len(items)]
    return sorted(picked[: LIMITS["quotes"]], key=lambda q: q["start"])
