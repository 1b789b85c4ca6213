"""What one analysis costs on each current Gemini model: our real prompt, Russian and English transcripts.

No network: the prompt is built exactly as the pipeline builds it (``build_prompt``), its
tokens are counted with the pipeline's estimator (``estimate_tokens``: ~4 characters a
token for Latin text, ~2.5 for Cyrillic, which is how Gemini's tokenizer splits them),
and priced with the built-in table (``PRICES_PER_MILLION_TOKENS``, dated ``PRICES_AS_OF``).
The answer is assumed to be ``--answer-tokens`` (a full analysis of a 10-minute talk:
summary, 8 key points, tags, ~6 chapters, quotes) plus ``--thinking-tokens``.

    .venv/bin/python bench/bench_analysis_cost.py [--minutes 10] [--answer-tokens 1500] [--thinking-tokens 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.video_pipeline.core.analysis import (
    DEFAULT_GEMINI_MODELS,
    PRICES_AS_OF,
    build_prompt,
    estimate_cost_usd,
    estimate_tokens,
)
from include.video_pipeline.core.transcript import Segment, Transcript

# About 150 spoken words a minute; one segment of ~12 words every ~5 seconds.
EN = "We reviewed the budget for the new site and agreed that the design must be approved by Friday."
RU = "Мы обсудили бюджет на новый сайт и договорились, что дизайн нужно утвердить до пятницы."
MODELS = (*DEFAULT_GEMINI_MODELS, "gemini-3-flash-preview", "gemini-3.1-pro-preview")


def transcript(line: str, language: str, minutes: float) -> Transcript:
    segments = tuple(Segment(i * 5.0, i * 5.0 + 4.8, line) for i in range(int(minutes * 12)))
    return Transcript(
        language=language,
        language_probability=0.99,
        duration=minutes * 60,
        segments=segments,
        backend="faster-whisper",
        model="small",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--answer-tokens", type=int, default=1500)
    parser.add_argument("--thinking-tokens", type=int, default=1000)
    args = parser.parse_args()
    print(f"Prices as of {PRICES_AS_OF}; {args.minutes:g}-minute talk; answer {args.answer_tokens} tokens")
    print(f"{'language':<9} {'prompt tokens':>13}  " + "  ".join(f"{m:>24}" for m in MODELS))
    for code, line in (("en", EN), ("ru", RU)):
        prompt = build_prompt(transcript(line, code, args.minutes), title="meeting.mp4", language=code)
        tokens = estimate_tokens(prompt.system + "\n" + prompt.user)
        costs = []
        for model in MODELS:
            plain = estimate_cost_usd(model, tokens, args.answer_tokens)
            thinking = estimate_cost_usd(model, tokens, args.answer_tokens, thinking_tokens=args.thinking_tokens)
            costs.append(f"${plain:.4f} / ${thinking:.4f}" if plain is not None and thinking is not None else "-")
        print(f"{code:<9} {tokens:>13}  " + "  ".join(f"{c:>24}" for c in costs))
    print("(each cell: without thinking / with --thinking-tokens of thinking)")


if __name__ == "__main__":
    main()
