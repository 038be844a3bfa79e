"""Live curves during training, to an MLflow *server* only (``$MLFLOW_TRACKING_URI`` = http(s)):
a single server serialises writes, SQLite under many concurrent jobs does not."""

from __future__ import annotations

import os
import time
import warnings

from pipeline.runfiles import as_float
from pipeline.tracking.store import (
    MAX_PARAM_LEN,
    MAX_TAG_LEN,
    open_client,
    experiment_id,
    flatten,
    safe_key,
    log_batched,
)


class LiveLogger:
    """Buffered live logging to an MLflow server during training; never raises into training.

    Rows are flushed every ``flush_rows`` rows or ``flush_seconds`` seconds with LogBatch. On the
    first tracking failure it warns once and goes quiet: the run files stay canonical and
    :func:`register` later logs the complete run (replacing this one if it carries the run key).
    """

    def __init__(
        self,
        uri: str,
        paper: str,
        tags: dict,
        params: dict,
        flush_rows: int = 50,
        flush_seconds: float = 30.0,
    ):
        self.uri = uri
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.run_id: str | None = None
        self._buffer: list = []
        self._rows = 0
        self._last_flush = time.monotonic()
        self._failed = False
        self._closed = False
        # Bound the stall a dead server can cause (MLflow retries 7× with backoff by default).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        try:
            from mlflow.entities import Param

            self._client = open_client(uri)
            exp_id = experiment_id(self._client, paper, uri)
            all_tags = {safe_key(k): str(v)[:MAX_TAG_LEN] for k, v in tags.items() if v is not None}
            all_tags["rlrepro.live"] = "true"
            run = self._client.create_run(exp_id, tags=all_tags)
            self.run_id = run.info.run_id
            flat = flatten(params) if params else {}
            log_batched(
                self._client, self.run_id, params=[Param(safe_key(k), v[:MAX_PARAM_LEN]) for k, v in flat.items() if k]
            )
        except Exception as e:
            self._fail(e)

    def _fail(self, exc: BaseException) -> None:
        if not self._failed:
            warnings.warn(f"MLflow live logging disabled after error: {exc!r}", RuntimeWarning, stacklevel=3)
        self._failed = True
        self._buffer.clear()

    def log_row(self, step: int, metrics: dict) -> None:
        """Buffer one curve row; flush when enough rows or time have accumulated."""
        if self._failed or self._closed:
            return
        try:
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            for k, v in metrics.items():
                f = as_float(v)
                if f is None and hasattr(v, "item"):  # numpy / torch scalars
                    f = as_float(v.item())
                if f is not None:
                    self._buffer.append(Metric(safe_key(k), f, ts, int(step)))
            self._rows += 1
            if self._rows >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds:
                self.flush()
        except Exception as e:
            self._fail(e)

    def flush(self) -> None:
        """Send buffered metrics now."""
        if self._failed or self.run_id is None:
            return
        try:
            if self._buffer:
                log_batched(self._client, self.run_id, metrics=self._buffer)
            self._buffer = []
            self._rows = 0
            self._last_flush = time.monotonic()
        except Exception as e:
            self._fail(e)

    def close(self, status: str = "FINISHED") -> None:
        """Flush and mark the run terminated (``FINISHED`` / ``FAILED`` / ``KILLED``)."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._failed or self.run_id is None:
            return
        try:
            self._client.set_terminated(self.run_id, status)
        except Exception as e:
            self._fail(e)

    def __enter__(self) -> "LiveLogger":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("FAILED" if exc_type is not None else "FINISHED")
