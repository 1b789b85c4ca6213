"""The results tables: stage runs, media facts, transcript and analysis versions, the manifest.

A transcript or analysis is identified by what produced it (backend, model,
settings; analyzer, model, prompt version): a retry upserts the same row, another
setting adds a version, and exactly one version per video is current.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from include.video_pipeline.hooks.results_db.connection import ResultsDbConnection, _json


def settings_hash(settings: dict[str, Any]) -> str:
    """A short stable hash of a stage's settings, part of a result row's identity."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Results(ResultsDbConnection):
    """Record stage attempts and save what each stage produced; read them back for reports."""

    def record_stage(
        self,
        *,
        video_id: str,
        stage: str,
        run_id: str | None,
        try_number: int,
        status: str,
        started_at: Any,
        seconds: float,
        details: dict[str, Any] | None = None,
        cache_key: str | None = None,
    ) -> None:
        with self.cursor() as cur:
            cur.execute(
                "INSERT INTO stage_runs (video_id, stage, run_id, try_number, status, started_at, seconds, details,"
                " cache_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)",
                (video_id, stage, run_id, try_number, status, started_at, seconds, _json(details or {}), cache_key),
            )

    def save_media(self, video_id: str, media: dict[str, Any]) -> None:
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET media = %s::jsonb, updated_at = now() WHERE video_id = %s",
                (_json(media), video_id),
            )

    def add_media_flags(self, video_id: str, flags: dict[str, str]) -> None:
        """Merge ``{code: detail}`` into the video's ``media_flags`` (one statement: stages may add at once)."""
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET media_flags = media_flags || %s::jsonb, updated_at = now() WHERE video_id = %s",
                (_json(flags), video_id),
            )

    def save_transcript(self, video_id: str, transcript: dict[str, Any]) -> None:
        """Upsert a transcript version and make it the current one."""
        settings = transcript.get("settings") or {}
        with self.cursor() as cur:
            cur.execute("UPDATE transcripts SET is_current = false WHERE video_id = %s", (video_id,))
            cur.execute(
                """
                INSERT INTO transcripts (video_id, backend, model, settings_hash, language, language_probability,
                                         duration_seconds, quality, segment_count, text, segments, is_current)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, true)
                ON CONFLICT (video_id, backend, model, settings_hash) DO UPDATE
                   SET language = EXCLUDED.language, language_probability = EXCLUDED.language_probability,
                       duration_seconds = EXCLUDED.duration_seconds, quality = EXCLUDED.quality,
                       segment_count = EXCLUDED.segment_count, text = EXCLUDED.text,
                       segments = EXCLUDED.segments, is_current = true, updated_at = now()
                """,
                (
                    video_id,
                    transcript["backend"],
                    transcript["model"],
                    settings_hash(settings),
                    transcript.get("language"),
                    transcript.get("language_probability"),
                    transcript.get("duration"),
                    transcript.get("quality", "ok"),
                    len(transcript.get("segments") or ()),
                    transcript.get("text", ""),
                    _json(transcript.get("segments") or []),
                ),
            )

    def save_analysis(self, video_id: str, analysis: dict[str, Any]) -> None:
        """Upsert an analysis version (analyzer, model, prompt) and make it current."""
        usage = analysis.get("usage") or {}
        with self.cursor() as cur:
            cur.execute("UPDATE analyses SET is_current = false WHERE video_id = %s", (video_id,))
            cur.execute(
                """
                INSERT INTO analyses (video_id, analyzer, model, prompt_version, language, data, flags, usage,
                                      cost_usd, is_current)
                VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s, true)
                ON CONFLICT (video_id, analyzer, model, prompt_version) DO UPDATE
                   SET language = EXCLUDED.language, data = EXCLUDED.data, flags = EXCLUDED.flags,
                       usage = EXCLUDED.usage, cost_usd = EXCLUDED.cost_usd, is_current = true,
                       updated_at = now()
                """,
                (
                    video_id,
                    analysis["analyzer"],
                    analysis.get("model") or "",
                    analysis.get("prompt_version") or "",
                    analysis.get("language"),
                    _json(analysis.get("data") or {}),
                    _json(analysis.get("flags") or []),
                    _json(usage),
                    usage.get("cost_usd"),
                ),
            )

    def save_manifest(self, video_id: str, outputs_prefix: str, manifest: dict[str, Any]) -> None:
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET manifest = %s::jsonb, outputs_prefix = %s, updated_at = now() WHERE video_id = %s",
                (_json(manifest), outputs_prefix, video_id),
            )

    # -- reads for reports ----------------------------------------------------

    def stage_runs_for_run(self, run_id: str) -> list[dict[str, Any]]:
        """Every stage attempt recorded under ``run_id``, oldest first (for the run summary)."""
        with self.cursor() as cur:
            cur.execute(
                "SELECT video_id, stage, try_number, status, started_at, seconds,"
                " details->>'reused_from' AS reused_from FROM stage_runs"
                " WHERE run_id = %s ORDER BY started_at, id",
                (run_id,),
            )
            return self._rows(cur)
