"""MLflow as a browse/search index over finished run directories.

Files under ``results/`` are the canonical record; this package only mirrors
them into MLflow so runs can be browsed and searched. Two entry points:

* :func:`register` (``registration.py``) — the sequential ``register`` step: batch-log finished
  run dirs, idempotently (one MLflow run per run dir, found by the ``rlrepro.run_key`` tag;
  replaced when its files change).
* :class:`LiveLogger` (``live.py``) — optional live curves during training, only when
  ``$MLFLOW_TRACKING_URI`` names an http(s) server (a single server serialises writes; SQLite
  under many jobs does not).

``store.py`` holds what both share: URIs, the client, the one-time store initialisation,
experiments and LogBatch requests within MLflow's limits. ``mlflow`` is imported lazily there.
"""

from pipeline.tracking.live import LiveLogger
from pipeline.tracking.registration import CONTENT_HASH_TAG, RUN_KEY_TAG, content_hash, register
from pipeline.tracking.store import ENV_URI, ensure_store, live_logging_enabled, resolve_uri

__all__ = [
    "CONTENT_HASH_TAG",
    "ENV_URI",
    "RUN_KEY_TAG",
    "LiveLogger",
    "content_hash",
    "ensure_store",
    "live_logging_enabled",
    "register",
    "resolve_uri",
]
