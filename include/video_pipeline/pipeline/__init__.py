"""The service layer: what happens to each upload between the DAG's tasks, free of operators.

* ``lifecycle`` claims each upload exactly once in the ledger, moves it between
  ``pending/``, ``processing/``, ``completed/`` and ``failed/``, and settles it
  exactly once (the product's core promise: no video stuck or lost); ``reconcile``
  makes the bucket agree with the ledger.
* ``stage_runner`` runs one stage for one video: checks the run still owns it,
  renews its lease, times the stage, records it in the ledger, reuses a
  duplicate's result, and says how it went (a ``StageOutcome``).
* ``staging`` carries a video's files between its stages (the run's staging area).
* ``publish`` makes a video's staged outputs public, its ``manifest.json`` last.
* ``cache`` lets a duplicate upload (same bytes) reuse the results one copy computes.
* ``run_summary`` counts and times a run and writes its summary beside the outputs.
* ``notifications`` tells people (webhook, Slack, Telegram) when a video or run settles.

Operators call in here and map the outcomes to Airflow states; this layer calls
the hooks and ``core/``, never the other way.
"""
