"""pipeline.claims: which videos a run takes on, decided from the run type and params."""

from __future__ import annotations

import pytest

from include.video_pipeline.pipeline.claims import BadReprocessRequest, claim_for_run, reprocess_mode


@pytest.mark.parametrize(
    ("run_type", "params", "mode"),
    [
        ("scheduled", {}, "none"),
        ("manual", {"reprocess": None}, "none"),
        ("manual", {"reprocess": "failed"}, "failed"),
        ("manual", {"reprocess": "video", "video_id": "a-1"}, "video"),
        # A backfill reprocesses its interval whatever its params say.
        ("backfill", {"reprocess": "none"}, "backfill"),
        ("DagRunType.BACKFILL_JOB", {}, "backfill"),
    ],
)
def test_reprocess_mode(run_type: str, params: dict, mode: str) -> None:
    assert reprocess_mode(run_type, params) == mode


class _NoVideos:
    """The ledger reads claim_for_run makes, answering that nothing finished matches."""

    def finished_videos(self, **_: object) -> list:
        return []


class _Lifecycle:
    class settings:
        batch_size = 5


def test_a_reprocess_request_for_an_unknown_video_is_a_permanent_error() -> None:
    with pytest.raises(BadReprocessRequest, match="no completed or failed video with id 'missing-1'"):
        claim_for_run(_Lifecycle(), _NoVideos(), "run", mode="video", params={"video_id": " missing-1 "})  # type: ignore[arg-type]


def test_an_unknown_mode_is_a_permanent_error() -> None:
    with pytest.raises(BadReprocessRequest, match="unknown reprocess mode 'everything'"):
        claim_for_run(_Lifecycle(), _NoVideos(), "run", mode="everything", params={})  # type: ignore[arg-type]
