"""Real uploads' media through one whole DAG run over S3 (moto on loopback): issue 12, items 1 and 2.

* Playable files whose sound starts late, ends early or that do not say how
  long they are are processed, with what was odd recorded as a flag in the
  ledger, the manifest and the report; damaged files still fail as ``corrupt``.
* With several audio tracks the transcript comes from the track that carries
  the speech, ``video.mp4`` keeps every track with sound (default first), and
  the run's ``language`` param selects a tagged track.

Every case here failed before: the Matroska and WebM files were rejected as
``corrupt``, the two-track file was transcribed from its silent track
(``no_speech``), the late-start file's subtitles were 2.5 s early, and the
dubbed file was transcribed from its Russian track although ``language=en``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg2
import pytest

from tests.fixtures import clips

SPEECH = "Welcome to the quarterly review. Revenue grew and the new product launch went well."
LATE_SPEECH = "The meeting starts at nine. Please bring the project plan and the budget."
DUB_RUSSIAN = "Доброе утро, команда. Сегодня мы обсудим бюджет и план проекта."
DUB_ENGLISH = "Good morning team. Today we review the budget and the project plan."
VP9 = {"video_codec": "libvpx-vp9", "audio_codec": "libopus"}
LATE_START = 2.5


def _short_audio_mkv(path: Path) -> Path:
    # The file: VP9/Opus Matroska, sound 0.8 s short, no per-stream durations.
    tagged = clips.make_timed_clip(path.with_name("tagged-" + path.name), duration=6.0, audio_duration=5.2, **VP9)
    return clips.strip_matroska_stream_durations(tagged, path)


UPLOADS = {
    # name in pending/ -> (maker, final prefix, reason when failed)
    "short audio.mkv": (_short_audio_mkv, "completed", None),
    "recorder.webm": (lambda p: clips.make_timed_clip(p, audio_duration=5.2, live=True, **VP9), "completed", None),
    "screen recording.mp4": (lambda p: clips.make_multitrack_speech_video(p, SPEECH, tracks=2), "completed", None),
    "dubbed.mp4": (
        lambda p: clips.make_speech_tracks_video(
            p, [(DUB_RUSSIAN, "ru"), (DUB_ENGLISH, "en-us")], languages=("rus", "eng"), default_track=0
        ),
        "completed",
        None,
    ),
    "late mic.mp4": (
        lambda p: clips.make_speech_tracks_video(p, [(LATE_SPEECH, "en-us")], speech_start=LATE_START),
        "completed",
        None,
    ),
    "cut.mkv": (
        lambda p: clips.truncate_copy(clips.make_timed_clip(p.with_name("w.mkv"), **VP9), p, 0.5),
        "failed",
        "corrupt",
    ),
    "no index.mp4": (
        lambda p: clips.drop_mp4_index(clips.make_timed_clip(p.with_name("w.mp4")), p),
        "failed",
        "corrupt",
    ),
}


def _words(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()}


def _audio_streams(data: bytes, tmp: Path) -> list[dict]:  # type: ignore[type-arg]
    path = tmp / "published.mp4"
    path.write_bytes(data)
    return [s for s in clips.probe_json(path)["streams"] if s["codec_type"] == "audio"]


def _get(s3_client, bucket: str, key: str) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


@pytest.fixture
def uploaded(s3_bucket, s3_client, tmp_path) -> dict[str, bytes]:
    sources = {}
    for name, (make, _, _) in UPLOADS.items():
        path = make(tmp_path / "src" / name)
        sources[name] = Path(path).read_bytes()
        s3_client.put_object(Bucket=s3_bucket, Key=f"pending/{name}", Body=sources[name])
    return sources


def test_real_uploads_media_in_one_run(run_pipeline, s3_bucket, s3_client, results_dsn, uploaded, tmp_path):
    run = run_pipeline(
        {"VIDEO_PIPELINE_STORAGE": "s3", "VIDEO_PIPELINE_BUCKET": s3_bucket, "VIDEO_PIPELINE_ANALYZER": "offline"},
        "--no-samples",
        "--conf",
        json.dumps({"language": "en", "one_shot": True}),
    )
    assert run.returncode == 0, run.output + run.log[-5000:]
    assert run.state == "success"

    # Every upload in its one right place, byte for byte; damage still fails as corrupt.
    for name, (_, prefix, reason) in UPLOADS.items():
        assert _get(s3_client, s3_bucket, f"{prefix}/{name}") == uploaded[name], name
        if reason:
            report = json.loads(_get(s3_client, s3_bucket, f"failed/{name}.error.json"))
            assert (report["reason"], report["retryable"]) == (reason, False), report

    with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_key, state, outputs_prefix, media_flags FROM videos")
        rows = {r[0]: r for r in cur.fetchall()}
        cur.execute(
            "SELECT v.source_key, t.quality, t.text, t.segments FROM transcripts t"
            " JOIN videos v USING (video_id) WHERE t.is_current"
        )
        transcripts = {r[0]: r for r in cur.fetchall()}
    assert {k: v[1] for k, v in rows.items()} == {name: spec[1] for name, spec in UPLOADS.items()}

    def manifest(name: str) -> dict:  # type: ignore[type-arg]
        return json.loads(_get(s3_client, s3_bucket, f"{rows[name][2]}manifest.json"))  # type: ignore[no-any-return]

    def report(name: str) -> str:
        return _get(s3_client, s3_bucket, f"{rows[name][2]}report.html").decode("utf-8")

    # Item 1: odd but playable files are processed; what was odd is a flag in the ledger, manifest and report.
    expected_flags = {
        "short audio.mkv": {"audio_ends_early"},
        "recorder.webm": {"audio_ends_early", "duration_unknown"},
        "late mic.mp4": {"audio_starts_late"},
    }
    for name, codes in expected_flags.items():
        ledger = rows[name][3]
        assert codes <= set(ledger), (name, ledger)
        assert codes <= set(manifest(name)["media_flags"]), name
        page = report(name)
        assert all(f'data-flag="{code}"' in page for code in codes), name
    assert "0.8 s" in rows["short audio.mkv"][3]["audio_ends_early"]
    assert manifest("recorder.webm")["media"]["duration"] == pytest.approx(6.0, abs=0.2)
    # Subtitles keep the file's timeline: the late microphone's words come after its start.
    _, quality, text, segments = transcripts["late mic.mp4"]
    # (tiny.en mishears a few words of espeak: "the meetings are set in"; the timing is what is checked.)
    assert quality == "ok" and len(_words(LATE_SPEECH) & _words(text)) / len(_words(LATE_SPEECH)) > 0.5, text
    assert segments[0]["start"] >= LATE_START - 0.3, segments[0]

    # Item 2: the speech track is transcribed, not the silent default one.
    _, quality, text, _ = transcripts["screen recording.mp4"]
    assert quality == "ok" and len(_words(SPEECH) & _words(text)) / len(_words(SPEECH)) > 0.7, text
    chosen = manifest("screen recording.mp4")["transcript"]["audio_track"]
    assert chosen["index"] == 2 and "only track with sound" in chosen["reason"]
    assert {"silent_audio_tracks", "several_audio_tracks"} <= set(rows["screen recording.mp4"][3])
    video = _get(s3_client, s3_bucket, f"{rows['screen recording.mp4'][2]}video.mp4")
    assert len(_audio_streams(video, tmp_path)) == 1  # the silent track is not published

    # ... a language param that names a tagged track selects it; video.mp4 keeps both, default first.
    _, quality, text, _ = transcripts["dubbed.mp4"]
    assert quality == "ok" and len(_words(DUB_ENGLISH) & _words(text)) / len(_words(DUB_ENGLISH)) > 0.6, text
    chosen = manifest("dubbed.mp4")["transcript"]["audio_track"]
    assert (chosen["index"], chosen["language"]) == (2, "eng") and "requested language" in chosen["reason"]
    dubbed = _audio_streams(_get(s3_client, s3_bucket, f"{rows['dubbed.mp4'][2]}video.mp4"), tmp_path)
    assert [(s["tags"]["language"], s["disposition"]["default"]) for s in dubbed] == [("rus", 1), ("eng", 0)]
    assert manifest("dubbed.mp4")["media"]["audio_tracks"] == [1, 2]
    # The choice is also in transcript.json, with every track as measured.
    published = json.loads(_get(s3_client, s3_bucket, f"{rows['dubbed.mp4'][2]}transcript.json"))
    assert published["settings"]["audio_track"]["index"] == 2
    assert len(published["settings"]["audio_track"]["candidates"]) == 2


def test_the_fixtures_are_what_they_claim(tmp_path):
    # Guards the test above: the Matroska file really has no per-stream durations,
    # the WebM no duration at all, and the late track really starts late.
    mkv = clips.probe_json(_short_audio_mkv(tmp_path / "a.mkv"))
    assert not any("DURATION" in s.get("tags", {}) for s in mkv["streams"])
    webm = clips.probe_json(clips.make_timed_clip(tmp_path / "r.webm", live=True, **VP9))
    assert "duration" not in webm["format"]
    late = clips.make_speech_tracks_video(tmp_path / "l.mp4", [("Hello.", "en-us")], speech_start=LATE_START)
    (audio,) = [s for s in clips.probe_json(late)["streams"] if s["codec_type"] == "audio"]
    assert float(audio["start_time"]) >= LATE_START - 0.1
    assert subprocess.run([clips.FFPROBE, "-v", "error", str(tmp_path / "a.mkv")], check=False).returncode == 0
