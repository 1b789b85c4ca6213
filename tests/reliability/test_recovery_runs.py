"""A chain of whole DAG runs over one bucket and one ledger, each run carrying several scenarios.

1. run K: SIGKILLed while Whisper transcribes ``victim.mp4``;
2. run S (lease 5 s): sweeps the victim back to pending/; ``quota.mp4`` meets an exhausted
   Gemini daily quota and goes back to pending/; ``notes.mp4`` (v1) completes;
3. ``notes.mp4`` is uploaded again with new bytes, plus three bad uploads;
4. runs A and B at once (batch size 3 each, own AIRFLOW_HOME): everything pending ends in one place,
   no upload claimed by both.

Every test reports its own row from the same runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import pytest

from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fixtures import clips
from tests.reliability.conftest import (
    Audit,
    RunResult,
    audit,
    aws_connection,
    clone_metadata_db,
    keys,
    new_bucket,
    s3_client_for,
    wait_for,
)

GEMINI_KEY = "AIzaRECOVERY-chain-key"
EXTRAS = ("extra-empty-1.mp4", "extra-page.mp4", "extra-empty-2.mp4")
NAMES = ("victim.mp4", "quota.mp4", "notes.mp4", *EXTRAS)


@dataclass
class Chain:
    bucket: str
    dsn: str
    killed: RunResult
    after_kill: Audit
    outputs_after_kill: list[str]
    killed_while: str
    sweep: RunResult
    after_sweep: Audit
    gemini_calls_in_sweep: int
    notes_v1: dict[str, Any]
    a: RunResult
    b: RunResult
    final: Audit
    work_left: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)


def _put(s3, bucket: str, key: str, path: Path) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=Path(path).read_bytes())


def _whisper_running(work_dir: Path, dag: psutil.Process) -> bool:
    """The audio is extracted (ffmpeg has exited) and the task is inside WhisperHook.transcribe."""
    if not any(work_dir.glob("*/transcribe-*/audio.wav")):
        return False
    try:
        return not any("ffmpeg" in child.name() for child in dag.children(recursive=True))
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def chain(module_launcher, postgres, s3_endpoint, tmp_path_factory) -> Iterator[Chain]:
    pipeline = module_launcher("chain")
    second_metadata = clone_metadata_db(postgres)
    s3 = s3_client_for(s3_endpoint)
    bucket = new_bucket(s3)
    made = tmp_path_factory.mktemp("chain-clips")
    victim = clips.make_speech_video(
        made / "victim.mp4",
        "The worker died while the model was listening. Nobody noticed until the next run.",
        width=160,
        height=120,
    )
    _put(s3, bucket, "pending/victim.mp4", victim)
    with FakeGeminiServer(api_key=GEMINI_KEY) as gemini:
        env = {
            "VIDEO_PIPELINE_BUCKET": bucket,
            "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(s3_endpoint),
            "VIDEO_PIPELINE_ANALYZER": "gemini",
            "VIDEO_PIPELINE_GEMINI_BASE_URL": gemini.base_url,
            "GEMINI_API_KEY": GEMINI_KEY,
            "VIDEO_PIPELINE_PROCESSING_LEASE_SECONDS": "5",  # the minimum: a dead run's claims expire fast
        }

        # K: killed while Whisper runs.
        process = pipeline.start(env)
        dag = process.dag_process()
        wait_for(lambda: _whisper_running(pipeline.work_dir, dag), 240, "Whisper never started")
        killed_while = ", ".join(sorted({c.name() for c in dag.children(recursive=True)})) or "no child process"
        process.kill_dag_process()
        killed = process.wait(60)
        after_kill = audit(s3, bucket, pipeline.dsn, ["victim.mp4"])
        outputs_after_kill = keys(s3, bucket, "outputs/")

        # S: sweeps the victim; quota.mp4 hits the daily quota; notes.mp4 v1 completes (silent: no model call).
        _put(
            s3,
            bucket,
            "pending/quota.mp4",
            clips.make_speech_video(made / "quota.mp4", "Send the report.", width=160, height=120),
        )
        _put(
            s3,
            bucket,
            "pending/notes.mp4",
            clips.make_silent_video(made / "notes-v1.mp4", duration=1.0, width=160, height=120),
        )
        gemini.enqueue(Reply.quota_exhausted())
        sweep = pipeline.run(env)
        gemini_calls_in_sweep = len(gemini.generate_requests)
        after_sweep = audit(s3, bucket, pipeline.dsn, ["victim.mp4", "quota.mp4", "notes.mp4"])
        with psycopg2.connect(pipeline.dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT video_id, etag, state FROM videos WHERE source_key = 'notes.mp4'")
            notes_v1 = dict(zip(("video_id", "etag", "state"), cur.fetchone(), strict=True))

        # The same key again with new bytes, and three bad uploads to race over.
        _put(
            s3,
            bucket,
            "pending/notes.mp4",
            clips.make_silent_video(made / "notes-v2.mp4", duration=1.5, width=160, height=120),
        )
        _put(s3, bucket, "pending/extra-empty-1.mp4", clips.make_empty_file(made / "e1.mp4"))
        _put(s3, bucket, "pending/extra-page.mp4", clips.make_non_video(made / "page.mp4"))
        _put(s3, bucket, "pending/extra-empty-2.mp4", clips.make_empty_file(made / "e2.mp4"))

        # A and B overlap; a lease longer than any stage, so neither sweeps the other's live claims.
        # Each has its own AIRFLOW_HOME and metadata DB (two deployments, or `make run` beside a
        # scheduler): sharing one breaks dag.test itself (see clone_metadata_db).
        overlap = {**env, "VIDEO_PIPELINE_PROCESSING_LEASE_SECONDS": "600", "VIDEO_PIPELINE_BATCH_SIZE": "3"}
        first = pipeline.start(overlap)
        second = pipeline.start({**overlap, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": second_metadata})
        a, b = first.wait(), second.wait()

    final = audit(s3, bucket, pipeline.dsn, list(NAMES))
    with psycopg2.connect(pipeline.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT video_id, source_key, etag, state, claims, claim_run_id, error FROM videos ORDER BY claimed_at"
        )
        cols = [c[0] for c in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    yield Chain(
        bucket=bucket,
        dsn=pipeline.dsn,
        killed=killed,
        after_kill=after_kill,
        outputs_after_kill=outputs_after_kill,
        killed_while=killed_while,
        sweep=sweep,
        after_sweep=after_sweep,
        gemini_calls_in_sweep=gemini_calls_in_sweep,
        notes_v1=notes_v1,
        a=a,
        b=b,
        final=final,
        work_left=sorted(str(p.relative_to(pipeline.work_dir)) for p in pipeline.work_dir.rglob("*") if p.is_file()),
        rows=rows,
        manifests=[k for k in keys(s3, bucket, "outputs/") if k.endswith("/manifest.json")],
    )


def _row(chain: Chain, key: str) -> list[dict[str, Any]]:
    return [r for r in chain.rows if r["source_key"] == key]


def test_sigkill_while_whisper_runs_is_swept_back_and_completes(chain, record):
    victim = _row(chain, "victim.mp4")
    record(
        area="Worker",
        case=f"DAG-run process SIGKILLed while Whisper transcribes (children at kill: {chain.killed_while})",
        expected="left in processing/ with no outputs; a run with a 5 s lease sweeps it to pending/; "
        "the next completes it",
        observed=f"after kill: {chain.after_kill.where['victim.mp4']}, {len(chain.outputs_after_kill)} outputs; "
        f"after sweep run ({chain.sweep.state}): {chain.after_sweep.where['victim.mp4']}; after next runs: "
        f"{chain.final.where['victim.mp4']}, claims {[r['claims'] for r in victim]}; work dir files left: "
        f"{len(chain.work_left)}",
        videos=1,
        lost=int(not chain.final.where["victim.mp4"]),
        duplicated=int(len(chain.final.where["victim.mp4"]) > 1),
    )
    assert chain.killed.returncode != 0 and chain.after_kill.where["victim.mp4"] == ["processing"]
    assert chain.outputs_after_kill == [] and not chain.after_kill.half_written_outputs
    assert chain.sweep.returncode == 0 and chain.after_sweep.where["victim.mp4"] == ["pending"], chain.sweep.log[-4000:]
    assert chain.final.where["victim.mp4"] == ["completed"]
    assert len(victim) == 1 and victim[0]["state"] == "completed"
    assert not chain.final.half_written_outputs and not chain.final.duplicated
    assert chain.work_left == []


def test_exhausted_gemini_quota_returns_the_video_to_pending(chain, record):
    where_after_sweep = chain.after_sweep.where["quota.mp4"]
    record(
        area="Gemini",
        case="daily quota exhausted (429 GenerateRequestsPerDay) while analysing quota.mp4",
        expected="back to pending/, run stays green; the next run completes it",
        observed=f"run {chain.sweep.state} with {chain.gemini_calls_in_sweep} generateContent call(s); quota.mp4 in "
        f"{where_after_sweep}; after the next run: {chain.final.where['quota.mp4']}",
        videos=1,
        lost=int(not chain.final.where["quota.mp4"]),
        duplicated=int(len(chain.final.where["quota.mp4"]) > 1),
    )
    assert chain.sweep.returncode == 0 and "success" in (chain.sweep.state or "")
    assert where_after_sweep == ["pending"] and chain.gemini_calls_in_sweep == 1
    assert chain.final.where["quota.mp4"] == ["completed"]


def test_a_reupload_with_new_bytes_is_a_new_version(chain, record):
    versions = _row(chain, "notes.mp4")
    ids = [v["video_id"] for v in versions]
    record(
        area="Input",
        kind="input",
        case="notes.mp4 completed, then uploaded again under the same key with new bytes",
        expected="processed again as a new version (new video_id); the first version's row and outputs kept",
        observed=f"versions {[(v['video_id'], v['state']) for v in versions]}; manifests "
        f"{sorted(m.split('/')[1] for m in chain.manifests if m.split('/')[1] in ids)}",
        videos=2,
        lost=sum(1 for v in versions if v["state"] != "completed"),
    )
    assert chain.notes_v1["state"] == "completed"
    assert len(versions) == 2 and ids[0] == chain.notes_v1["video_id"] and ids[0] != ids[1]
    assert {v["state"] for v in versions} == {"completed"} and versions[0]["etag"] != versions[1]["etag"]
    assert {f"outputs/{vid}/manifest.json" for vid in ids} <= set(chain.manifests)
    assert chain.final.where["notes.mp4"] == ["completed"]


def test_two_overlapping_runs_never_claim_an_upload_twice(chain, record):
    runs = {chain.a.run_id, chain.b.run_id}
    with psycopg2.connect(chain.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT video_id, array_agg(DISTINCT run_id) FROM stage_runs WHERE run_id = ANY(%s)"
            " GROUP BY video_id HAVING count(DISTINCT run_id) > 1",
            (list(runs),),
        )
        shared = cur.fetchall()
        cur.execute(
            "SELECT claim_run_id, count(*) FROM videos WHERE claim_run_id = ANY(%s) GROUP BY claim_run_id",
            (list(runs),),
        )
        per_run = dict(cur.fetchall())
    pending_before = ["victim.mp4", "quota.mp4", "notes.mp4", *EXTRAS]
    record(
        area="Concurrency",
        case="two run_pipeline processes at once on one bucket and ledger (batch size 3 each)",
        expected="no upload claimed by both; each ends in exactly one place",
        observed=f"runs {chain.a.state}/{chain.b.state}; claims per run {sorted(per_run.values())}; "
        f"{len(shared)} videos worked on by both; ends {chain.final.where}",
        videos=len(pending_before),
        lost=len(chain.final.lost),
        duplicated=len(chain.final.duplicated) + len(shared),
    )
    assert chain.a.returncode == 0 and chain.b.returncode == 0, chain.a.log[-3000:] + chain.b.log[-3000:]
    assert shared == [] and sum(per_run.values()) == len(pending_before)
    assert all(len(places) == 1 for places in chain.final.where.values()), chain.final.where
    assert {n: chain.final.where[n] for n in EXTRAS} == {n: ["failed"] for n in EXTRAS}
    assert not chain.final.duplicated and not chain.final.lost
