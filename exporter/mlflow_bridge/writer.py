"""The MLflow side of the bridge: client, experiment, runs, idempotent batch writes. Thread-only.

``mlflow`` is imported when the client is first used (on the bridge thread): it takes about a second.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# MLflow's log_batch limits (mlflow.utils.validation); a batch over them is rejected whole.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_VALUE = 6000
RUN_KEY_TAG = "llm_exporter.run_key"
PARAMS_TAG = "llm_exporter.params_logged"
KIND_TAG = "llm_exporter.kind"
# MLflow error codes that will not change on a retry: the batch itself is wrong. Everything else
# (unreachable, timeouts, 5xx, auth that may be fixed) is retried from the spool.
_PERMANENT = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "MALFORMED_REQUEST", "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE"}
# HTTP settings the user exported themselves are left alone (see http_settings).
_USER_HTTP_ENV = {n for n in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES") if n in os.environ}


def http_settings(timeout: int) -> None:
    """Short HTTP timeouts and no retries inside the MLflow client: this thread retries (with the spool).

    MLflow reads these from the environment on every request, so they apply to the whole process;
    values the user exported are kept.
    """
    for name, value in (("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout)), ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")):
        if name not in _USER_HTTP_ENV:
            os.environ[name] = value


def permanent(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) in _PERMANENT


class Writer:
    """Everything that talks to MLflow. Used by the bridge thread only."""

    def __init__(self, uri: str, experiment: str, timeout: int, params: Callable[[], dict[str, str]]) -> None:
        self.uri = uri
        self.experiment = experiment
        self.timeout = timeout
        self._params = params
        self._client: Any = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # run key -> run id (window runs: a handful; request runs: bounded)

    @property
    def client(self) -> Any:
        if self._client is None:
            if self.uri.startswith(("http://", "https://")):
                http_settings(self.timeout)
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            client = self.client
            exp = client.get_experiment_by_name(self.experiment)
            if exp is not None and exp.lifecycle_stage == "deleted":
                self._restore(exp)
            if exp is None:
                try:
                    self._experiment_id = str(client.create_experiment(self.experiment))
                except Exception as exc:  # another process created it in between
                    if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                        raise
                    self._experiment_id = str(client.get_experiment_by_name(self.experiment).experiment_id)
            else:
                self._experiment_id = str(exp.experiment_id)
        return self._experiment_id

    def _restore(self, exp: Any) -> None:
        """Bring back an experiment deleted in the UI (with its runs): MLflow takes nothing into a deleted
        experiment and will not create another of the same name until the deleted one is purged."""
        log.warning(
            "llm-exporter: the MLflow experiment %r (id %s) was deleted; restoring it to keep logging there. "
            "Disable mlflow or set mlflow.experiment to stop logging to it.",
            self.experiment,
            exp.experiment_id,
        )
        try:
            self.client.restore_experiment(exp.experiment_id)
        except Exception:
            again = self.client.get_experiment_by_name(self.experiment)
            if again is None or again.lifecycle_stage == "deleted":
                raise
            # another process restored it first

    def run_id(self, run: dict[str, Any], search: bool) -> str:
        key = run["key"]
        run_id = self._runs.get(key)
        if run_id is not None:
            return run_id
        from mlflow.entities import Param

        client = self.client
        exp = self.experiment_id()
        found = None
        if search:
            hits = client.search_runs([exp], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1)
            found = hits[0] if hits else None
        if found is None:
            tags = {**run["tags"], RUN_KEY_TAG: key}
            found = client.create_run(exp, tags=tags, run_name=run["name"])
        run_id = str(found.info.run_id)
        if PARAMS_TAG not in found.data.tags:
            params = run.get("params") or self._params()
            items = [Param(k, v) for k, v in params.items()]
            for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
                client.log_batch(run_id, params=items[i : i + MAX_PARAMS_PER_BATCH])
            client.set_tag(run_id, PARAMS_TAG, "true")
        if len(self._runs) >= 256:  # request runs come and go; forget the oldest
            self._runs.pop(next(iter(self._runs)))
        self._runs[key] = run_id
        return run_id

    def write(self, record: dict[str, Any], replay: bool) -> bool:
        """Log one batch; False when MLflow already had it (checked only for replays)."""
        try:
            return self._write(record, replay)
        except Exception as exc:
            if not permanent(exc):
                raise
        # The run or the experiment may be gone (deleted in the UI, a fresh store): look both up again,
        # once; a second refusal is about the batch itself.
        self._runs.pop(record["run"]["key"], None)
        self._experiment_id = None
        return self._write(record, replay=True)

    def _write(self, record: dict[str, Any], replay: bool) -> bool:
        from mlflow.entities import Metric

        run_id = self.run_id(record["run"], search=replay or record["kind"] != "request")
        step, ts = record["step"], record["ts"]
        metrics = record["metrics"]
        if replay and metrics:
            key, value = next(iter(metrics.items()))
            history = self.client.get_metric_history(run_id, key)
            if any(m.step == step and m.timestamp == ts and m.value == value for m in history):
                return False
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items()])
        if record["kind"] == "request":
            self.client.set_terminated(run_id, "FINISHED", end_time=ts)
            self._runs.pop(record["run"]["key"], None)
        return True

    def finish(self, run_key: str, end_ms: int | None = None) -> None:
        """End the run of ``run_key`` (at ``end_ms``, else now), looked up when this process never used it."""
        run_id = self._runs.get(run_key)
        if run_id is None:
            hits = self.client.search_runs(
                [self.experiment_id()], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1
            )
            if not hits:
                return
            run_id = str(hits[0].info.run_id)
        self.client.set_terminated(run_id, "FINISHED", end_time=end_ms)
