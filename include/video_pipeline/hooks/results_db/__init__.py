"""ResultsDbHook: the PostgreSQL ledger of uploads and the results tables.

Every write is an upsert or a guarded UPDATE, so a retried task or a callback
running twice leaves the same rows behind.

Which submodule holds what (:class:`ResultsDbHook` and :func:`settings_hash` are
importable from this package):

* ``hook``: :class:`ResultsDbHook`, put together from the parts below;
* ``connection``: the connection (reconnects after a restart), cursors as
  transactions, and :meth:`~ResultsDbHook.migrate`;
* ``ledger``: claiming, leasing, deciding and finishing uploads (``videos``);
* ``stage_leads``: reusing a duplicate's stage result and one lead per computation;
* ``results``: stage runs, media, transcripts, analyses and the manifest;
* ``gemini_batches``: the Gemini Batch API job each batched analysis waits for;
* ``queries``: the API's read-only SQL (status, lists, the library, search).
* ``pool``: the few connections per api-server process that ``queries`` runs on.

The tables themselves are created by the migrations in ``include/video_pipeline/sql/``.
"""

from __future__ import annotations

from include.video_pipeline.hooks.results_db.hook import ResultsDbHook
from include.video_pipeline.hooks.results_db.results import settings_hash

__all__ = ["ResultsDbHook", "settings_hash"]
