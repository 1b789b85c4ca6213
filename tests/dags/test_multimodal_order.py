"""With multimodal analysis on, ``analyze`` waits for ``transcode``: the images are an input, never a race.

Parsed in a child process, because the DAG reads its settings when the file is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags["video_pipeline"]
print(json.dumps({t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}))
"""


def _upstream(tmp_path: Path, multimodal: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "VIDEO_PIPELINE_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / multimodal),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        VIDEO_PIPELINE_ANALYSIS_MULTIMODAL=multimodal,
    )
    out = subprocess.run(
        [sys.executable, "-c", PARSE, str(ROOT / "dags")], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("multimodal", "waits"), [("true", True), ("false", False)])
def test_analyze_waits_for_transcode_only_when_it_sends_images(tmp_path, multimodal, waits):
    upstream = _upstream(tmp_path, multimodal)
    assert "video.transcribe" in upstream["video.analyze"]
    assert ("video.transcode" in upstream["video.analyze"]) is waits
