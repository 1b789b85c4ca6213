"""What a model call costs: the default Gemini models, their prices and the estimate.

Prices are USD per million tokens keyed by model-name prefix (the longest
matching prefix wins); ``price_table`` lays overrides over the built-ins and
``estimate_cost_usd`` prices one call from its token counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# The models the pipeline asks for when VIDEO_PIPELINE_GEMINI_MODEL is unset, in
# order: the first that exists is used, a retired one is skipped. Chosen for this
# job (summary, chapters, tags of Russian and English transcripts as one JSON
# answer, then grounded against the transcript): 3.1 Flash-Lite scores above
# 2.5 Flash, the model this pipeline was tuned on, at 0.6x its price; 3.5 Flash
# is the fallback (6x Flash-Lite's price) so a Flash-Lite retirement does not stop
# analyses. docs/analysis-providers.md has the numbers behind the choice.
DEFAULT_GEMINI_MODELS: tuple[str, ...] = ("gemini-3.1-flash-lite", "gemini-3.5-flash")

# USD per million tokens: (input, output[, cached input]). Output includes
# thinking tokens; cached input is what the ``cachedContentTokenCount`` part of
# a prompt costs instead of the input rate (an entry without it bills cached
# tokens at CACHED_INPUT_SHARE of its input price, Google's rate for every 2.5
# and 3.x model). Keys are model-name prefixes; the longest matching prefix
# wins, so dated or "-preview" ids get their family's price.
#
# Paid tier, prompts up to 200k tokens, as of PRICES_AS_OF, from
#   https://ai.google.dev/gemini-api/docs/pricing (Gemini Developer API)
#   https://cloud.google.com/vertex-ai/generative-ai/pricing (Vertex AI, global endpoint)
#   https://ai.google.dev/gemini-api/docs/deprecations (the 2.5 family retired 2026-12-01)
# Correct or extend it with VIDEO_PIPELINE_PRICES_JSON without a release.
PRICES_AS_OF = "2026-12-02"
PRICES_PER_MILLION_TOKENS: dict[str, tuple[float, ...]] = {
    "gemini-3.5-flash": (1.50, 9.00, 0.15),
    "gemini-3.1-flash-lite": (0.25, 1.50, 0.025),
    "gemini-3.1-pro": (2.00, 12.00, 0.20),
    "gemini-3-flash": (0.50, 3.00, 0.05),
    # Retired on 2026-12-01; kept so analyses made with them keep their price (a
    # re-routed request is billed by the model that answered: its modelVersion).
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}
CACHED_INPUT_SHARE = 0.10
# What a Gemini Batch API call costs against the same call online: Google bills batch
# jobs at 50% of the standard price, input and output alike (ai.google.dev/gemini-api/docs/
# batch-api; the pricing page's "Batch" rows, e.g. 3.1 Flash-Lite $0.125/$0.75 against
# $0.25/$1.50). Every rate of a table entry is scaled, so a VIDEO_PIPELINE_PRICES_JSON
# override is halved for batch calls too; the page gives most models no separate batch
# cache rate, and the analysis prompts (one transcript each) rarely hit a cache.
BATCH_PRICE_SHARE = 0.5
# What one analysis call is expected to write (answer plus thinking), for the
# budget's estimate before the call: analyses of up to 30k-token chunks come
# back in 1-3k tokens, and thinking models add about as much again.
EXPECTED_OUTPUT_TOKENS_PER_CALL = 4_000

PriceTable = Mapping[str, tuple[float, ...]]
PriceOverride = tuple[str, float, float] | tuple[str, float, float, float]


def price_table(overrides: Iterable[PriceOverride] = ()) -> dict[str, tuple[float, ...]]:
    """The built-in prices with ``(model prefix, input, output[, cached input])`` overrides on top."""
    table = dict(PRICES_PER_MILLION_TOKENS)
    table.update({override[0]: tuple(float(p) for p in override[1:]) for override in overrides})
    return table


def model_price(model: str, prices: PriceTable | None = None) -> tuple[float, float, float] | None:
    """(input, output, cached input) USD per million tokens for ``model``; None when unpriced."""
    table = PRICES_PER_MILLION_TOKENS if prices is None else prices
    # Vertex reports "publishers/google/models/x", the Gemini API "models/x",
    # OpenRouter "vendor/x": the price is keyed by the last part.
    name = model.rsplit("/", 1)[-1]
    matches = [prefix for prefix in table if name.startswith(prefix) or model.startswith(prefix)]
    if not matches:
        return None
    entry = table[max(matches, key=len)]
    cached = entry[2] if len(entry) > 2 else entry[0] * CACHED_INPUT_SHARE
    return entry[0], entry[1], cached


def estimate_cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    prices: PriceTable | None = None,
    thinking_tokens: int = 0,
    cached_tokens: int = 0,
    batch: bool = False,
) -> float | None:
    """Estimated price of a call, or None for a model missing from the price table.

    ``input_tokens`` includes ``cached_tokens``, as ``promptTokenCount`` does;
    thinking tokens are billed as output. ``batch`` prices a Gemini Batch API call
    (``BATCH_PRICE_SHARE`` of the online price).
    """
    price = model_price(model, prices)
    if price is None:
        return None
    price_in, price_out, price_cached = price
    cached = min(max(cached_tokens, 0), input_tokens)
    total = (input_tokens - cached) * price_in + cached * price_cached + (output_tokens + thinking_tokens) * price_out
    if batch:
        total *= BATCH_PRICE_SHARE
    return round(total / 1_000_000, 6)
