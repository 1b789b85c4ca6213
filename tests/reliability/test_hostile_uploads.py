"""Hostile keys and hostile files, all in ONE DAG run over S3.

Keys: literal ``..`` segments (S3 keeps them), a leading slash, a name at the
length limit and one over it, control characters, Cyrillic with spaces and
quotes. Files: a zip named .mp4, HTML named .mov, a JPEG+zip polyglot, an mp4
behind a garbage prefix, an mp4 whose duration headers lie, a decompression bomb.
Each test reports its own row from the same run.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from include.video_pipeline.core.states import MAX_RELATIVE_KEY_BYTES
from tests.fixtures import clips
from tests.reliability.conftest import Audit, RunResult, audit, aws_connection, keys, new_bucket, s3_client_for

STATE_PREFIXES = ("pending/", "processing/", "completed/", "failed/", "outputs/", "staging/")


def _name_of_bytes(total: int, stem: str = "long-") -> str:
    """A relative key of exactly ``total`` UTF-8 bytes, Cyrillic inside, ending in .mp4."""
    body = stem + "ж" * ((total - len(stem) - 4) // 2)
    body += "x" * (total - 4 - len(body.encode()))
    return body + ".mp4"


AT_LIMIT = _name_of_bytes(MAX_RELATIVE_KEY_BYTES)
OVER_LIMIT = _name_of_bytes(1024 - len("pending/"))  # the longest key S3 accepts in pending/

# relative key -> where it should end and with which reason: real clips complete (their
# manifest must keep the name), empty files fail (their error report must keep it).
HOSTILE_KEYS = {
    "../escape.mp4": ("completed", None),
    "a/../../escape-2.mp4": ("failed", "empty_file"),
    "/lead-slash.mp4": ("failed", "empty_file"),
    AT_LIMIT: ("completed", None),
    "ctl\x07\x1b[31mred\x1b[0m\t\r\x01\x7f.mp4": ("completed", None),
    "Встреча \"план\" 'Q3' & <b>$(id)</b>.mp4": ("completed", None),
    OVER_LIMIT: ("failed", "invalid_key"),
}


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("movie.mp4", b"\x00" * 4096)
    return buffer.getvalue()


def _lying_duration(clip: Path, seconds: int) -> bytes:
    """The clip with its mvhd, tkhd and mdhd durations rewritten to ``seconds`` (the data stays 1 s)."""
    data = bytearray(clip.read_bytes())
    movie = data.find(b"mvhd")
    movie_scale = struct.unpack(">I", data[movie + 16 : movie + 20])[0]
    for box, scale_at, duration_at in ((b"mvhd", 16, 20), (b"tkhd", None, 24), (b"mdhd", 16, 20)):
        at = 0
        while (at := data.find(box, at)) != -1:
            assert data[at + 4] == 0, "version 0 boxes only"
            scale = struct.unpack(">I", data[at + scale_at : at + scale_at + 4])[0] if scale_at else movie_scale
            struct.pack_into(">I", data, at + duration_at, scale * seconds)
            at += 4
    return bytes(data)


@dataclass
class HostileRun:
    run: RunResult
    result: Audit
    bucket_keys: list[str]
    rows: dict[str, dict[str, Any]]
    manifests: dict[str, dict[str, Any]]
    reports: dict[str, dict[str, Any]]
    refused_at: dict[str, tuple[str, float]]
    stray_files: list[str]
    work_left: list[str]


def _files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.fixture(scope="module")
def hostile(module_launcher, s3_endpoint, tmp_path_factory) -> Iterator[HostileRun]:
    pipeline = module_launcher("hostile")
    s3 = s3_client_for(s3_endpoint)
    bucket = new_bucket(s3)
    made = tmp_path_factory.mktemp("hostile-clips")
    clip = clips.make_silent_video(made / "clip.mp4", duration=0.5, width=96, height=64)
    bomb = made / "bomb.mp4"
    clips.run_ffmpeg(
        "-f", "lavfi", "-i", "color=black:s=10000x10000:r=1:d=1", "-frames:v", "1",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "51", str(bomb),
    )  # fmt: skip
    files = {
        "zip.mp4": _zip_bytes(),
        "page.mov": clips.make_non_video(made / "page.mov").read_bytes(),
        "polyglot.mp4": clips.make_still_image(made / "poly.jpg").read_bytes() + _zip_bytes(),
        "prefixed.mp4": os.urandom(4096) + clip.read_bytes(),
        "lying-duration.mp4": _lying_duration(clip, 7200),
        "bomb.mp4": bomb.read_bytes(),
    }
    for n, rel in enumerate(HOSTILE_KEYS):
        # Distinct bytes per key, so no upload reuses another's cached results.
        state, reason = HOSTILE_KEYS[rel]
        body = clip.read_bytes() + bytes([n]) if state == "completed" else b"" if reason == "empty_file" else b"long"
        s3.put_object(Bucket=bucket, Key=f"pending/{rel}", Body=body)
    for name, body in files.items():
        s3.put_object(Bucket=bucket, Key=f"pending/{name}", Body=body)
    uploads = [*HOSTILE_KEYS, *files]
    assert sorted(keys(s3, bucket, "pending/")) == sorted(f"pending/{u}" for u in uploads)  # S3 kept every name

    run = pipeline.run({"VIDEO_PIPELINE_BUCKET": bucket, "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(s3_endpoint)})
    result = audit(s3, bucket, pipeline.dsn, uploads)
    bucket_keys = keys(s3, bucket)
    with psycopg2.connect(pipeline.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_key, video_id, state, error, media FROM videos")
        rows = {
            key: {"video_id": vid, "state": state, "error": error, "media": media or {}}
            for key, vid, state, error, media in cur.fetchall()
        }
        cur.execute(
            "SELECT v.source_key, s.stage, s.seconds FROM stage_runs s JOIN videos v USING (video_id)"
            " WHERE s.status = 'rejected'"
        )
        refused_at = {key: (stage, seconds) for key, stage, seconds in cur.fetchall()}
    manifests, reports = {}, {}
    for key in bucket_keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read() if key.endswith(".json") else b""
        if key.startswith("outputs/") and key.endswith("/manifest.json"):
            manifest = json.loads(body)
            manifests[manifest["source"]["key"]] = manifest
        elif key.startswith("failed/") and key.endswith(".error.json"):
            report = json.loads(body)
            reports[report["source_key"]] = {**report, "_key": key}
    # Everything the run wrote on disk must be under the work dir or its AIRFLOW_HOME.
    stray = [
        str(p.relative_to(pipeline.base))
        for p in _files(pipeline.base)
        if p.relative_to(pipeline.base).parts[0] not in ("work",)
        and not p.relative_to(pipeline.base).parts[0].startswith("airflow-home-")
    ]
    stray += [str(p) for p in _files(pipeline.base.parent) if "escape" in p.name]
    yield HostileRun(
        run,
        result,
        bucket_keys,
        rows,
        manifests,
        reports,
        refused_at,
        stray,
        [str(p.relative_to(pipeline.work_dir)) for p in _files(pipeline.work_dir)],
    )


def _short(key: str) -> str:
    return repr(key if len(key) < 60 else f"{key[:20]}…({len(key.encode())} bytes)")


@pytest.mark.parametrize("rel", list(HOSTILE_KEYS), ids=lambda k: _short(k)[:40])
def test_hostile_key(hostile, rel, record):
    where = hostile.result.where[rel]
    row = hostile.rows.get(rel)
    expected_state, reason = HOSTILE_KEYS[rel]
    shown = hostile.manifests.get(rel, {}).get("source", {}).get("key") if expected_state == "completed" else None
    report = hostile.reports.get(rel)
    record(
        area="Input",
        kind="input",
        case=f"key pending/{_short(rel)}",
        expected=f"{expected_state}/ under the same name{f' ({reason})' if reason else ''}; "
        "ledger, manifest/error report keep it intact; nothing outside the prefixes or the work dir",
        observed=f"in {where}; ledger {'intact' if row else 'no row'}"
        + (f" ({row['state']}, {(row['error'] or {}).get('reason')})" if row else "")
        + (
            f"; manifest source.key {'intact' if shown == rel else repr(shown)}"
            if expected_state == "completed"
            else ""
        )
        + (f"; error.json {'intact' if report else 'missing'}" if expected_state == "failed" else ""),
        videos=1,
        lost=int(not where),
        duplicated=int(len(where) > 1),
    )
    assert hostile.run.returncode == 0, hostile.run.output[-3000:] + hostile.run.log[-5000:]
    assert where == [expected_state] and row is not None and row["state"] == expected_state
    if expected_state == "completed":
        assert shown == rel
    else:
        assert row["error"]["reason"] == reason and report is not None and report["source_key"] == rel


def test_nothing_escapes_the_prefixes_or_the_work_dir(hostile, record):
    outside = [k for k in hostile.bucket_keys if not k.startswith(STATE_PREFIXES)]
    bad_outputs = [
        k
        for k in hostile.bucket_keys
        if k.startswith("outputs/") and (k.count("/") != 2 or ".." in k.split("/")[1] or not k.split("/")[1])
    ]
    record(
        area="Input",
        kind="input",
        case="traversal in keys (`..`, leading slash) and in names written to disk",
        expected="every object under a state prefix or outputs/<id>/<file>; no file outside the work dir",
        observed=f"{len(hostile.bucket_keys)} objects: {len(outside)} outside the prefixes {outside[:3]}, "
        f"{len(bad_outputs)} odd output keys; {len(hostile.stray_files)} stray files {hostile.stray_files[:3]}; "
        f"work dir left with {len(hostile.work_left)} files",
    )
    assert outside == [] and bad_outputs == [] and hostile.stray_files == [] and hostile.work_left == []


# name -> the reasons accepted, and whether it must be refused before any transcoding
HOSTILE_FILES = {
    "zip.mp4": ("a zip archive named .mp4", {"not_media"}),
    "page.mov": ("an HTML page named .mov", {"not_media"}),
    "polyglot.mp4": ("a JPEG with a zip appended (polyglot), named .mp4", {"not_media"}),
    "prefixed.mp4": ("4 KiB of garbage, then a valid mp4", {"not_media", "corrupt"}),
    "lying-duration.mp4": ("0.5 s mp4 whose mvhd/tkhd/mdhd durations say 2 h", {"corrupt", "too_long"}),
    "bomb.mp4": ("decompression bomb: 1 frame of 10000x10000 H.264 in a tiny file", {"too_large"}),
}


@pytest.mark.parametrize("name", [n for n in HOSTILE_FILES if n != "lying-duration.mp4"])
def test_hostile_file(hostile, name, record):
    what, reasons = HOSTILE_FILES[name]
    where = hostile.result.where[name]
    row = hostile.rows.get(name) or {}
    error = row.get("error") or {}
    stage, seconds = hostile.refused_at.get(name, ("no stage", 0.0))
    record(
        area="Input",
        kind="input",
        case=f"{name}: {what}",
        expected=f"failed/ with reason {' or '.join(sorted(reasons))}, refused before heavy work",
        observed=f"in {where}; {error.get('reason')}: {str(error.get('message'))[:110]}; refused by {stage} "
        f"{seconds:.1f} s after it started (probe only, nothing decoded); error.json "
        f"{'written' if name in hostile.reports else 'missing'}",
        videos=1,
        lost=int(not where),
        duplicated=int(len(where) > 1),
    )
    assert where == ["failed"] and error.get("reason") in reasons
    assert name in hostile.reports and seconds < 10


def test_a_lying_duration_header_is_not_believed_for_the_output(hostile, record):
    """Not refusable by the header alone (2 h is under the 4 h limit): what matters is what gets published."""
    name = "lying-duration.mp4"
    where = hostile.result.where[name]
    media = hostile.rows.get(name, {}).get("media") or {}
    declared = (media.get("probe") or {}).get("duration")
    published = (media.get("transcode") or {}).get("duration")
    error = hostile.rows.get(name, {}).get("error") or {}
    record(
        area="Input",
        kind="input",
        case=f"{name}: {HOSTILE_FILES[name][0]}",
        expected="either refused (corrupt/too_long) or published with its real length, never as a 2 h video",
        observed=f"in {where}; {error.get('reason') or 'no error'}; container says {declared} s, published video "
        f"{published} s (transcode checks the output against the streams' own durations); the ledger's "
        "media.probe.duration keeps the header's claim",
        videos=1,
        lost=int(not where),
        duplicated=int(len(where) > 1),
    )
    if where == ["completed"]:
        assert published is not None and published < 2
    else:
        assert where == ["failed"] and error.get("reason") in HOSTILE_FILES[name][1]
