"""Analyses through the Gemini Batch API: half the online price, answers within hours.

Used for reprocessing runs when ``VIDEO_PIPELINE_GEMINI_BATCH=reprocess`` (or for any
run whose ``gemini_batch`` param says ``batch``); new uploads stay online by default.
One video's analysis is one batch (a request per transcript chunk), kept in the
results database (``gemini_batches``) before it is submitted, so a retried,
restarted or resumed task finds it and never submits (and pays) twice.

* ``jobs``: inline requests, submitting, finding a lost batch by its display name,
  reading an answer at the batch price, and ``BatchPending``;
* ``analyzer``: ``GeminiBatchAnalyzer``, the analysis as a batch from submission to result.

The wait itself happens in the triggerer (``operators/gemini_batch_trigger.py``): the
analyze task defers on ``BatchPending`` and runs again when the batch has ended.
"""

from include.video_pipeline.hooks.gemini_batch.analyzer import BATCH_FLAG, GeminiBatchAnalyzer
from include.video_pipeline.hooks.gemini_batch.jobs import BatchPending, job_state

__all__ = ["BATCH_FLAG", "BatchPending", "GeminiBatchAnalyzer", "job_state"]
