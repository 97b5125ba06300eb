"""The runs of a study: one parent run per launch, one nested child run per trial (written by the trial's rank 0).

The driver calls `start_parent_run` before any trial starts. Rank 0 of each trial calls `start_trial_run` and
then `log_epoch` / `finish` on what it returns. A child run is identified by its `trial_id` tag under the
parent run, so a resumed trial continues its run. Where runs go is a `TrackingSettings` (one launch) or a
`TrialTracking` (one trial).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

from study.tracking.provenance import data_fingerprints
from study.tracking.settings import TrackingSettings, TrialTracking
from study.tracking.store import client
from trainables.config import TrainConfig

STUDY_TAG = "study"
TRIAL_TAG = "trial_id"
LAUNCH_TAG = "launch"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
STATE_TAG = "state"
"""Why an unfinished run stopped: `interrupted` (SIGINT/SIGTERM or a tracking outage; `--resume` continues it)."""
ERROR_TAG = "error"
"""One line: why a run failed."""
STOPPED_EARLY_TAG = "stopped_early"
"""`true` on a finished run that a scheduler (ASHA) stopped before its last epoch."""
ATTEMPT_TAGS = {STATE_TAG, ERROR_TAG}
CONFIG_ARTIFACT = "config.json"
SCORES_ARTIFACT = "scores.npz"
CHECKPOINT_ARTIFACT = "checkpoint.json"
SUMMARY_ARTIFACT = "summary.txt"
"""The parent run's copy of the launch's console summary."""
TRIALS_ARTIFACT = "trials.csv"
"""The parent run's table of the launch's trials (`study.launch.progress.trials_csv`)."""


def start_parent_run(uri: str, experiment_id: str, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """Open the parent run of one launch of a study; return its id."""
    mlflow_client = client(uri)
    run = mlflow_client.create_run(experiment_id, tags={RUN_NAME_TAG: name, **{k: str(v) for k, v in tags.items()}})
    _log_params(mlflow_client, run.info.run_id, params)
    return run.info.run_id


def finish_parent_run(uri: str, run_id: str, metrics: Mapping[str, float], status: str = "FINISHED") -> None:
    """Log the study's summary metrics on the parent run and close it."""
    mlflow_client = client(uri)
    now = int(time.time() * 1000)
    values = [Metric(k, float(v), now, 0) for k, v in metrics.items() if _is_number(v)]
    if values:
        mlflow_client.log_batch(run_id, metrics=values)
    mlflow_client.set_terminated(run_id, status=status)


def log_launch_summary(uri: str, run_id: str, summary: str, trials_csv: str) -> None:
    """The launch's console summary (`summary.txt`) and its trials table (`trials.csv`) on its parent run."""
    mlflow_client = client(uri)
    mlflow_client.log_text(run_id, summary + "\n", SUMMARY_ARTIFACT)
    mlflow_client.log_text(run_id, trials_csv, TRIALS_ARTIFACT)


def find_trial_run(tracking: TrackingSettings, trial_id: str):
    """The child run of `trial_id` under the launch's parent run, or None."""
    runs = client(tracking.tracking_uri).search_runs(
        [tracking.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{tracking.parent_run_id}' and tags.{TRIAL_TAG} = '{trial_id}'",
        max_results=2,
    )
    return runs[0] if runs else None


def finished_trial_metrics(tracking: TrackingSettings | None, trial_id: str) -> dict[str, float] | None:
    """The final metrics of `trial_id` when its child run already finished (a resumed launch skips it), else None."""
    if tracking is None:
        return None
    run = find_trial_run(tracking, trial_id)
    if run is None or run.info.status != "FINISHED":
        return None
    return dict(run.data.metrics)


def log_checkpoint_reference(tracking: TrackingSettings, trial_id: str, reference: Mapping[str, Any]) -> None:
    """Attach where the trial's final checkpoint is (Ray Train storage) to its child run."""
    run = find_trial_run(tracking, trial_id)
    if run is None:
        return
    mlflow_client = client(tracking.tracking_uri)
    mlflow_client.log_dict(run.info.run_id, dict(reference), CHECKPOINT_ARTIFACT)
    if reference.get("checkpoint"):
        mlflow_client.set_tag(run.info.run_id, "checkpoint", str(reference["checkpoint"]))


def close_trial_run(tracking: TrackingSettings, trial_id: str, status: str, tags: Mapping[str, str] = ()) -> None:
    """Set the final status of a child run its worker could not close (stopped early, failed, killed)."""
    run = find_trial_run(tracking, trial_id)
    if run is None:
        return
    mlflow_client = client(tracking.tracking_uri)
    for key, value in dict(tags).items():
        mlflow_client.set_tag(run.info.run_id, key, str(value))
    if run.info.status == "RUNNING":
        mlflow_client.set_terminated(run.info.run_id, status=status)


def mark_stopped_early(tracking: TrackingSettings, trial_id: str) -> None:
    """Close the child run of a trial a scheduler stopped before its last epoch: FINISHED, stopped_early=true."""
    close_trial_run(tracking, trial_id, "FINISHED", {STOPPED_EARLY_TAG: "true"})


INTERRUPTED = "interrupted"


def interrupt_launch(tracking: TrackingSettings) -> dict[str, str]:
    """Mark the launch's parent run and every child run still RUNNING as interrupted (status KILLED, tag
    state=interrupted: neither finished nor failed; `--resume` continues them). {trial_id: status or
    "interrupted"} of every child run."""
    mlflow_client = client(tracking.tracking_uri)
    children = mlflow_client.search_runs(
        [tracking.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{tracking.parent_run_id}'", max_results=10000)
    states = {}
    for run in children:
        trial_id = run.data.tags.get(TRIAL_TAG, run.info.run_id)
        states[trial_id] = run.info.status
        if run.info.status == "RUNNING":
            _mark_interrupted(mlflow_client, run.info.run_id)
            states[trial_id] = INTERRUPTED
    _mark_interrupted(mlflow_client, tracking.parent_run_id)
    return states


LOST = "lost"


def mark_lost_runs(tracking: TrackingSettings, trial_ids: set[str]) -> list[str]:
    """Close, as KILLED with state=lost, the unfinished child runs of trials that are not among `trial_ids` (the
    launch's Tune trials): a trial started just before the launch's driver was killed, before Tune saved its
    experiment state, is unknown to `--resume`, which starts a new trial in its place. Their trial ids."""
    mlflow_client = client(tracking.tracking_uri)
    children = mlflow_client.search_runs(
        [tracking.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{tracking.parent_run_id}'", max_results=10000)
    lost = []
    for run in children:
        trial_id = run.data.tags.get(TRIAL_TAG, run.info.run_id)
        if trial_id in trial_ids or run.info.status == "FINISHED" or run.data.tags.get(STATE_TAG) == LOST:
            continue
        mlflow_client.set_tag(run.info.run_id, STATE_TAG, LOST)
        mlflow_client.set_terminated(run.info.run_id, status="KILLED")
        lost.append(trial_id)
    return lost


def reopen_parent_run(uri: str, run_id: str) -> None:
    """Set a resumed launch's parent run running again."""
    mlflow_client = client(uri)
    mlflow_client.update_run(run_id, status="RUNNING")
    if STATE_TAG in mlflow_client.get_run(run_id).data.tags:
        mlflow_client.delete_tag(run_id, STATE_TAG)


def _mark_interrupted(mlflow_client, run_id: str) -> None:
    mlflow_client.set_tag(run_id, STATE_TAG, INTERRUPTED)
    mlflow_client.set_terminated(run_id, status="KILLED")


class TrialRun:
    """The child run of one trial, written by rank 0: per-epoch metrics, final scores, status."""

    def __init__(self, mlflow_client, run_id: str, last_logged_epoch: int):
        self.client = mlflow_client
        self.run_id = run_id
        self.last_logged_epoch = last_logged_epoch
        self.scores: dict[str, np.ndarray] | None = None

    def log_epoch(self, metrics: Mapping[str, Any], scores: Mapping[str, np.ndarray] | None) -> None:
        """Log one epoch's numeric metrics in one batch call (step = epoch); keep the newest trial scores."""
        epoch = int(metrics["epoch"])
        if scores is not None:
            self.scores = dict(scores)
        if epoch <= self.last_logged_epoch:
            return
        now = int(time.time() * 1000)
        values = [Metric(key, float(value), now, epoch) for key, value in metrics.items() if _is_number(value)]
        self.client.log_batch(self.run_id, metrics=values)
        self.last_logged_epoch = epoch

    def finish(self) -> None:
        """Attach the final trial scores with their labels and close the run."""
        if self.scores is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / SCORES_ARTIFACT
                np.savez_compressed(path, **self.scores)
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status="FINISHED")


def start_trial_run(trial: TrialTracking, cfg: TrainConfig, paths: Mapping[str, Any]) -> TrialRun:
    """Open (or, for a resumed trial, reopen) the trial's child run and log params, tags and the resolved config."""
    launch = trial.launch
    mlflow_client = client(launch.tracking_uri)
    found = find_trial_run(launch, trial.trial_id)
    fingerprint, list_digests = data_fingerprints(paths)
    tags = {
        STUDY_TAG: launch.study,
        TRIAL_TAG: trial.trial_id,
        "git_commit": launch.git_commit,
        "data_fingerprint": fingerprint,
        "world_size": str(trial.world_size),
        "worker_nodes": ",".join(trial.worker_nodes),
        "embedded_data": str(bool(paths.get("embedded"))).lower(),
    }
    if found is None:
        run = mlflow_client.create_run(
            launch.experiment_id,
            tags={PARENT_TAG: launch.parent_run_id, RUN_NAME_TAG: trial.run_name or trial.trial_id, **tags},
        )
        run_id, last_epoch = run.info.run_id, 0
        _log_params(mlflow_client, run_id, cfg.to_dict())
        _log_config(mlflow_client, run_id, cfg, paths)
        mlflow_client.log_inputs(run_id, datasets=dataset_inputs(paths, list_digests))
    else:
        run_id = found.info.run_id
        if not found.data.params:  # an earlier attempt (or a write the background thread retries) was cut off
            _log_params(mlflow_client, run_id, cfg.to_dict())
        if CONFIG_ARTIFACT not in {a.path for a in mlflow_client.list_artifacts(run_id)}:
            _log_config(mlflow_client, run_id, cfg, paths)
        if not found.inputs.dataset_inputs:
            mlflow_client.log_inputs(run_id, datasets=dataset_inputs(paths, list_digests))
        history = mlflow_client.get_metric_history(run_id, "epoch")
        last_epoch = int(max((m.value for m in history), default=0))
        mlflow_client.update_run(run_id, status="RUNNING")
        mlflow_client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        for stale in set(found.data.tags) & ATTEMPT_TAGS:  # what an earlier attempt ended with
            mlflow_client.delete_tag(run_id, stale)
    return TrialRun(mlflow_client, run_id, last_epoch)


def dataset_inputs(paths: Mapping[str, Any], digests: Mapping[str, str]) -> list:
    """The training list and the trial list as MLflow dataset inputs (contexts 'training' and 'evaluation'):
    named after the list's file, digest = that list's fingerprint (`data_fingerprints`), source = its path."""
    inputs = []
    for key, context in (("train_manifest", "training"), ("trials", "evaluation")):
        path = paths.get(key)
        if not path:
            continue
        source = json.dumps({"uri": str(path)})
        dataset = Dataset(name=Path(path).name, digest=digests[key], source_type="local", source=source)
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    return inputs


def _log_config(mlflow_client, run_id: str, cfg: TrainConfig, paths: Mapping[str, Any]) -> None:
    derived = {"crop_samples": cfg.crop_samples, "eval_segment_samples": cfg.eval_segment_samples}
    mlflow_client.log_dict(run_id, {"config": cfg.to_dict(), "derived": derived, "data": dict(paths)}, CONFIG_ARTIFACT)


def _log_params(mlflow_client, run_id: str, params: Mapping[str, Any]) -> None:
    items = [Param(key, str(value)) for key, value in params.items()]
    for first in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        mlflow_client.log_batch(run_id, params=items[first : first + 100])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(float(value))
