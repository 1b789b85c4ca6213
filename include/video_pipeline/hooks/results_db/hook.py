"""ResultsDbHook: the results database's parts (connection, ledger, stage leads, results) as one Airflow hook.

Each part is a class of its own module, built on
:class:`~include.video_pipeline.hooks.results_db.connection.ResultsDbConnection`;
this module only puts them together, so a task holds one hook and one connection.
"""

from __future__ import annotations

from include.video_pipeline.hooks.results_db.gemini_batches import GeminiBatches
from include.video_pipeline.hooks.results_db.ledger import Ledger
from include.video_pipeline.hooks.results_db.results import Results
from include.video_pipeline.hooks.results_db.stage_leads import StageLeads


class ResultsDbHook(Ledger, StageLeads, Results, GeminiBatches):
    """The results database, reached through an Airflow Postgres connection.

    :param postgres_conn_id: the connection id (default ``postgres_default``).
    """

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    hook_name = "Video pipeline results DB"
