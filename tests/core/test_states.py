"""core.states: the one table of legal moves between the bucket's prefixes, enforced where keys are made."""

from __future__ import annotations

import pytest

from include.video_pipeline.core.states import (
    ALLOWED_TRANSITIONS,
    InvalidTransition,
    Prefixes,
    VideoState,
    move_keys,
)

PREFIXES = Prefixes()


@pytest.mark.parametrize(
    ("source", "target"),
    [(source, target) for source, targets in ALLOWED_TRANSITIONS.items() for target in sorted(targets)],
)
def test_a_legal_move_rewrites_only_the_prefix(source: VideoState, target: VideoState) -> None:
    old, new = move_keys("team a/Встреча 1.mp4", source, target, PREFIXES)
    assert old == PREFIXES.for_state(source) + "team a/Встреча 1.mp4"
    assert new == PREFIXES.for_state(target) + "team a/Встреча 1.mp4"


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (VideoState.PENDING, VideoState.COMPLETED),  # a video is never done without being processed
        (VideoState.COMPLETED, VideoState.FAILED),  # a finished video is only reprocessed, never failed
        (VideoState.FAILED, VideoState.COMPLETED),
        (VideoState.PENDING, VideoState.PENDING),
    ],
)
def test_an_illegal_move_is_refused(source: VideoState, target: VideoState) -> None:
    with pytest.raises(InvalidTransition):
        move_keys("a.mp4", source, target, PREFIXES)


def test_the_refusal_names_both_states() -> None:
    with pytest.raises(InvalidTransition, match=r"cannot move a video from completed/ to failed/"):
        move_keys("a.mp4", VideoState.COMPLETED, VideoState.FAILED, PREFIXES)
