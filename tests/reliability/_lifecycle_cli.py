"""Run one lifecycle operation in a process of its own, so a test can SIGKILL it mid-move.

python -m tests.reliability._lifecycle_cli settle <video id>
python -m tests.reliability._lifecycle_cli claim <run id> <limit>   # prints the claimed ids as JSON
"""

from __future__ import annotations

import json
import sys

from include.video_pipeline.config import load_settings
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.pipeline.lifecycle import VideoLifecycle


def main(argv: list[str]) -> int:
    settings = load_settings()
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    lifecycle = VideoLifecycle(settings, ObjectStoreHook(settings=settings).get_store(), db)
    if argv[1] == "settle":
        print(lifecycle.settle(argv[2]))
    elif argv[1] == "claim":
        print(json.dumps([v.video_id for v in lifecycle.claim_batch(argv[2], limit=int(argv[3]))]))
    db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
