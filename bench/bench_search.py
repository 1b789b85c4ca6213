"""Transcript search at library scale: p50/p95 query time over a synthetic library.

Builds a results database with the real migrations (the search index is kept by
their triggers, as in production), fills it with N videos of M minutes each
(one transcript segment every S seconds, half Russian, half English, words drawn
from a Zipf-like vocabulary plus a few real words such as "бюджет"/"budget"),
then times the API's own search call (``queries.search``, on the api-server's
pooled connection: exactly what ``GET /video-pipeline/search`` runs) for a mix
of queries: rare, medium and frequent words, inflected Russian forms, two-word
queries, phrases, with and without a state filter; and, once per query, the same
call on a new connection, as each request made before the pool.

Rows are generated inside PostgreSQL with ``generate_series``, so 10,000 videos
x 30 minutes load in minutes, not hours.

    .venv/bin/python bench/bench_search.py                    # 10,000 videos x 30 min, 10 s segments
    .venv/bin/python bench/bench_search.py --videos 1000      # a quicker look
    .venv/bin/python bench/bench_search.py --json bench/results/search.json

It starts its own PostgreSQL in a temporary folder (the same server binaries as
``make run``) and removes it afterwards; with ``--keep DIR`` the server is stopped
at the end and the data stays in DIR (delete the folder when done).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402

from tools import local_postgres  # noqa: E402

# Real words the queries look for, each with forms that must match by morphology.
RU_WORDS = [
    "бюджет",
    "бюджета",
    "бюджету",
    "договор",
    "договора",
    "клиент",
    "клиентов",
    "отчёт",
    "отчёта",
    "релиз",
    "продажи",
    "продаж",
    "встреча",
    "встречи",
    "команда",
    "команды",
    "зарплата",
    "проект",
    "проекта",
    "сроки",
]
EN_WORDS = [
    "budget",
    "budgets",
    "contract",
    "contracts",
    "client",
    "clients",
    "report",
    "reports",
    "release",
    "releases",
    "sales",
    "meeting",
    "meetings",
    "team",
    "teams",
    "salary",
    "project",
    "projects",
    "deadline",
]
RU_SYLLABLES = ["ба", "ве", "го", "ди", "жу", "за", "ки", "ло", "ми", "но", "пе", "ро", "су", "ти", "фа", "хо", "це"]
RU_ENDINGS = ["", "а", "ы", "ов", "ами", "ой", "ение", "ать", "ует", "ный"]
EN_SYLLABLES = ["ba", "ve", "go", "di", "ju", "za", "ki", "lo", "mi", "no", "pe", "ro", "su", "ti", "fa", "ho", "ce"]
EN_ENDINGS = ["", "s", "ing", "ed", "er", "tion", "ly", "ment", "ness", "al"]

QUERIES = [
    # (query, state filter or None, what it is)
    ("бюджета", None, "ru inflected, medium"),
    ("бюджет", "completed", "ru, state filter"),
    ("договора клиентов", None, "ru two words"),
    ("отчёт", None, "ru, medium"),
    ("зарплата", None, "ru, rare"),
    ('"встреча команды"', None, "ru phrase"),
    ("budget", None, "en, medium"),
    ("budgets approved", None, "en two words"),
    ("contract", "completed", "en, state filter"),
    ("salary", None, "en, rare"),
    ('"team meeting"', None, "en phrase"),
    ("release -sales", None, "en with exclusion"),
]


def vocabulary(syllables: list[str], endings: list[str], size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        stem = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        words.add(stem + rng.choice(endings))
    return sorted(words)


def sentences(words: list[str], count: int, seed: int) -> list[str]:
    """``count`` segment texts of 8-20 words, drawn Zipf-like (word k with weight 1/(k+10))."""
    rng = random.Random(seed)
    weights = [1 / (k + 10) for k in range(len(words))]
    return [" ".join(rng.choices(words, weights, k=rng.randint(8, 20))) for _ in range(count)]


def vocabularies(vocab_size: int) -> tuple[list[str], list[str]]:
    """Both languages' words, most frequent first; the real query words at ranks 100-400."""
    rng = random.Random(3)
    ru = vocabulary(RU_SYLLABLES, RU_ENDINGS, vocab_size, 1)
    en = vocabulary(EN_SYLLABLES, EN_ENDINGS, vocab_size, 2)
    for words, real in ((ru, RU_WORDS), (en, EN_WORDS)):
        for word in real:
            words.insert(rng.randint(100, 400), word)
    return ru, en


def load(cur: Any, *, videos: int, minutes: int, segment_seconds: int, vocab_size: int) -> dict[str, float]:
    """Fill the ledger, transcripts and (through the triggers) the search index; returns timings.

    Segment texts come from a pool of distinct sentences per language (made here,
    with a Zipf-like word distribution), picked per segment by a hash of its
    position: drawing every word inside PostgreSQL would take most of an hour.
    The real query words sit at ranks 100-400, where content words of a meeting
    corpus are ("бюджет" is said often, not in every other sentence).
    """
    ru, en = vocabularies(vocab_size)
    pool = 20_000
    segments = minutes * 60 // segment_seconds
    timings: dict[str, float] = {}
    started = time.perf_counter()
    cur.execute("CREATE TEMP TABLE bench_sentences (lang text, n int, text text, PRIMARY KEY (lang, n))")
    rows = [("ru", n, t) for n, t in enumerate(sentences(ru, pool, 4))]
    rows += [("en", n, t) for n, t in enumerate(sentences(en, pool, 5))]
    from psycopg2.extras import execute_values

    execute_values(cur, "INSERT INTO bench_sentences VALUES %s", rows, page_size=5000)
    cur.execute(
        """
        INSERT INTO videos (video_id, bucket, source_key, etag, size_bytes, state, outcome, claims,
                            uploaded_at, finished_at)
        SELECT 'bench-' || g, 'bench', 'meetings/meeting ' || g || '.mp4', 'e' || g, 100000000,
               CASE WHEN g %% 20 = 0 THEN 'failed' ELSE 'completed' END,
               CASE WHEN g %% 20 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
               now() - make_interval(hours => g), now() - make_interval(hours => g) + interval '20 minutes'
          FROM generate_series(1, %s) g
        """,
        (videos,),
    )
    timings["videos_s"] = time.perf_counter() - started
    started = time.perf_counter()
    cur.execute(
        """
        INSERT INTO transcripts (video_id, backend, model, settings_hash, language, language_probability,
                                 duration_seconds, quality, segment_count, text, segments)
        SELECT 'bench-' || v.g, 'faster-whisper', 'small', 'bench', v.lang, 0.99, %(seconds)s, 'ok',
               %(segments)s, '',
               (SELECT jsonb_agg(jsonb_build_object('start', s * %(step)s, 'end', (s + 1) * %(step)s,
                                                    'text', b.text) ORDER BY s)
                  FROM generate_series(0, %(segments)s - 1) s
                  JOIN bench_sentences b
                    ON b.lang = v.lang AND b.n = abs(hashint4(v.g * 7919 + s)) %% %(pool)s)
          FROM (SELECT g, CASE WHEN g %% 2 = 0 THEN 'ru' ELSE 'en' END AS lang
                  FROM generate_series(1, %(videos)s) g) v
        """,
        {"videos": videos, "segments": segments, "step": segment_seconds, "seconds": minutes * 60, "pool": pool},
    )
    timings["transcripts_and_index_s"] = time.perf_counter() - started
    started = time.perf_counter()
    cur.execute("ANALYZE videos; ANALYZE transcripts; ANALYZE search_documents")
    timings["analyze_s"] = time.perf_counter() - started
    return timings


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def candidate_scan(plan: dict[str, Any]) -> str:
    """How the search read its candidates: the first scan of search_documents that is not by id."""
    if plan.get("Relation Name") == "search_documents" and plan.get("Index Name") != "search_documents_pkey":
        return str(plan["Node Type"])
    for child in plan.get("Plans", []):
        found = candidate_scan(child)
        if found:
            return found
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--segment-seconds", type=int, default=10, help="one segment every S seconds (Whisper: 5-15)")
    parser.add_argument("--vocabulary", type=int, default=20_000, help="synthetic words per language")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each query (after one warm-up)")
    parser.add_argument("--limit", type=int, default=50, help="hits per query, as the API's default")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the PostgreSQL data in this folder (and reuse a library already loaded there)",
    )
    args = parser.parse_args(argv)

    from include.video_pipeline.hooks.results_db import pool, queries

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        data_dir = args.keep.resolve() if args.keep else Path(tmp) / "postgres"
        pg = local_postgres.start(data_dir)
        try:
            conn = psycopg2.connect(pg.dsn("postgres"))
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = 'bench_search'")
                reuse = cur.fetchone() is not None
                if not reuse:
                    cur.execute("CREATE DATABASE bench_search")
            conn.close()
            dsn = pg.dsn("bench_search")
            os.environ["AIRFLOW_CONN_BENCH_SEARCH"] = dsn
            from include.video_pipeline.hooks.results_db import ResultsDbHook

            hook = ResultsDbHook(postgres_conn_id="bench_search")
            hook.migrate()
            hook.close()

            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            print(
                f"• loading {args.videos} videos x {args.minutes} min "
                f"({args.minutes * 60 // args.segment_seconds} segments each) …",
                flush=True,
            )
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM videos")
                if reuse and cur.fetchone()[0] == args.videos:
                    print("  (reusing the library already loaded in --keep's folder)", flush=True)
                    timings = {}
                else:
                    timings = load(
                        cur,
                        videos=args.videos,
                        minutes=args.minutes,
                        segment_seconds=args.segment_seconds,
                        vocab_size=args.vocabulary,
                    )
                cur.execute("SELECT count(*) FROM search_documents")
                rows = cur.fetchone()[0]
                cur.execute(
                    "SELECT pg_total_relation_size('search_documents'), pg_relation_size('search_documents_tsv')"
                )
                table_bytes, gin_bytes = cur.fetchone()
            print(
                f"  {rows:,} indexed rows (loaded in {timings.get('transcripts_and_index_s', 0):.0f} s); "
                f"table + indexes {table_bytes / 2**30:.2f} GiB, GIN index {gin_bytes / 2**20:.0f} MiB",
                flush=True,
            )

            results = []
            all_ms: list[float] = []
            fresh_ms: list[float] = []
            # The tail: the most frequent word of each language (in about one segment in four).
            ru, en = vocabularies(args.vocabulary)
            tail = [(ru[0], None, "ru, most frequent word"), (en[0], None, "en, most frequent word")]
            for q, state, what in QUERIES + tail:

                def api_search(q: str = q, state: str | None = state) -> list[dict[str, Any]]:
                    # The API's own call: the SQL on a connection from the api-server's pool.
                    return queries.search("bench_search", q=q, state=state, since=None, until=None, limit=args.limit)

                found = api_search()  # warm-up
                ranked = int(found[0]["considered"]) if found else 0
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT count(*) FROM search_documents WHERE tsv @@ ("
                        "websearch_to_tsquery('russian', %(q)s) || websearch_to_tsquery('english', %(q)s)"
                        " || websearch_to_tsquery('simple', %(q)s))",
                        {"q": q},
                    )
                    matches = cur.fetchone()[0]
                    sql = queries.search_sql(state=state, since=None, until=None)
                    params = queries.search_params(q=q, state=state, since=None, until=None, limit=args.limit)
                    cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
                    scan = candidate_scan(cur.fetchone()[0][0]["Plan"])
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    api_search()
                    times.append((time.perf_counter() - started) * 1000)
                # What a request paid before the pool: a new connection (and a cold backend) per query.
                pool.close_all()
                started = time.perf_counter()
                api_search()
                fresh_ms.append((time.perf_counter() - started) * 1000)
                all_ms.extend(times)
                results.append(
                    {
                        "query": q,
                        "state": state,
                        "what": what,
                        "matching_rows": matches,
                        "hits_returned": len(found),
                        "ranked": ranked,
                        "candidate_scan": scan,
                        "median_ms": round(statistics.median(times), 1),
                        "max_ms": round(max(times), 1),
                    }
                )
                print(
                    f"  {q!r:28} {what:24} {matches:>9,} matches {ranked:>5} ranked  {scan:16}"
                    f"  median {statistics.median(times):6.1f} ms",
                    flush=True,
                )
            pool.close_all()
            conn.close()
            summary = {
                "videos": args.videos,
                "minutes_per_video": args.minutes,
                "segment_seconds": args.segment_seconds,
                "indexed_rows": rows,
                "table_and_indexes_bytes": table_bytes,
                "gin_index_bytes": gin_bytes,
                "load_seconds": {k: round(v, 1) for k, v in timings.items()},
                "p50_ms": round(percentile(all_ms, 0.5), 1),
                "p95_ms": round(percentile(all_ms, 0.95), 1),
                "max_ms": round(max(all_ms), 1),
                "new_connection_p50_ms": round(percentile(fresh_ms, 0.5), 1),
                "new_connection_p95_ms": round(percentile(fresh_ms, 0.95), 1),
                "cpu_cores": os.cpu_count(),
                "queries": results,
            }
            print(
                f"\nsearch time over {len(all_ms)} runs (the API's call, pooled connection): "
                f"p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, max {summary['max_ms']} ms "
                f"(with a new connection per query: p50 {summary['new_connection_p50_ms']} ms, "
                f"p95 {summary['new_connection_p95_ms']} ms)"
            )
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        finally:
            local_postgres.stop(data_dir)  # --keep: the data stays for the next run
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
