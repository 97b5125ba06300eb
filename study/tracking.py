"""MLflow wiring: the store, one experiment per study, one parent run per launch, one nested child run per trial.

The driver calls `resolve_uri`, `check_reachable`, `prepare_experiment`, `start_parent_run` before any trial starts.
Rank 0 of each trial calls `start_trial_run(tracking, cfg, paths)` and then `log_epoch` / `finish` on what it
returns. A child run is identified by its `trial_id` tag under the parent run, so a resumed trial continues its run.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import numpy as np

from trainables.config import TrainConfig

STUDY_TAG = "study"
TRIAL_TAG = "trial_id"
LAUNCH_TAG = "launch"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
CONFIG_ARTIFACT = "config.json"
SCORES_ARTIFACT = "scores.npz"
CHECKPOINT_ARTIFACT = "checkpoint.json"


class TrackingError(RuntimeError):
    """The MLflow store cannot be used; the message says which and what to do."""


def resolve_uri(uri: str | None, cwd: str | Path | None = None) -> str:
    """The tracking URI to use: `uri`, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db; file paths absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    base = Path(cwd or os.getcwd())
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        return "sqlite:///" + str((base / path).resolve()) if not path.startswith("/") else uri
    if "://" not in uri:
        return str((base / uri).resolve())
    return uri


def store_path(uri: str) -> Path | None:
    """The local file or folder a file-based store lives in (None for a server)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    if "://" not in uri:
        return Path(uri)
    return None


def check_reachable(uri: str, timeout: float = 3.0) -> None:
    """Raise TrackingError quickly when a tracking server does not accept connections."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as error:
        raise TrackingError(
            f"the MLflow tracking server {uri} cannot be reached ({error.strerror or error}); "
            "start it, or pass another --tracking-uri (default: a SQLite store in the working directory)"
        ) from None


def client(uri: str):
    """An MlflowClient for `uri` (imports MLflow on first use)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def prepare_experiment(uri: str, name: str) -> str:
    """Create the store (once, here) and the study's experiment if needed; return the experiment id.

    File-based stores keep artifacts in `mlruns/` next to the database, by absolute path, so that every worker
    writes to the same place whatever its working directory.
    """
    check_reachable(uri)
    local = store_path(uri)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
    mlflow_client = client(uri)
    try:
        found = mlflow_client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
    except Exception as error:
        raise TrackingError(f"the MLflow store {uri} cannot be used: {error}") from error
    artifacts = (local.parent / "mlruns").as_uri() if local is not None and uri.startswith("sqlite:") else None
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifacts)
    except Exception as error:  # e.g. created meanwhile by a concurrent launch
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise TrackingError(f"the MLflow store {uri} cannot be used: {error}") from error
        return found.experiment_id


def start_parent_run(uri: str, experiment_id: str, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """Open the parent run of one launch of a study; return its id."""
    mlflow_client = client(uri)
    run = mlflow_client.create_run(experiment_id, tags={RUN_NAME_TAG: name, **{k: str(v) for k, v in tags.items()}})
    _log_params(mlflow_client, run.info.run_id, params)
    return run.info.run_id


def finish_parent_run(uri: str, run_id: str, metrics: Mapping[str, float], status: str = "FINISHED") -> None:
    """Log the study's summary metrics on the parent run and close it."""
    from mlflow.entities import Metric

    mlflow_client = client(uri)
    now = int(time.time() * 1000)
    values = [Metric(k, float(v), now, 0) for k, v in metrics.items() if _is_number(v)]
    if values:
        mlflow_client.log_batch(run_id, metrics=values)
    mlflow_client.set_terminated(run_id, status=status)


def trial_runs(uri: str, experiment_id: str, parent_run_id: str):
    """The child runs of a launch as a pandas DataFrame (mlflow.search_runs), one row per trial."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", output_format="pandas"
    )


def find_trial_run(tracking: Mapping[str, Any], trial_id: str):
    """The child run of `trial_id` under the launch's parent run, or None."""
    runs = client(tracking["tracking_uri"]).search_runs(
        [tracking["experiment_id"]],
        filter_string=f"tags.`{PARENT_TAG}` = '{tracking['parent_run_id']}' and tags.{TRIAL_TAG} = '{trial_id}'",
        max_results=2,
    )
    return runs[0] if runs else None


def finished_trial_metrics(tracking: Mapping[str, Any], trial_id: str) -> dict[str, float] | None:
    """The final metrics of `trial_id` when its child run already finished (a resumed launch skips it), else None."""
    if not tracking:
        return None
    run = find_trial_run(tracking, trial_id)
    if run is None or run.info.status != "FINISHED":
        return None
    return dict(run.data.metrics)


def log_checkpoint_reference(tracking: Mapping[str, Any], trial_id: str, reference: Mapping[str, Any]) -> None:
    """Attach where the trial's final checkpoint is (Ray Train storage) to its child run."""
    run = find_trial_run(tracking, trial_id)
    if run is None:
        return
    mlflow_client = client(tracking["tracking_uri"])
    mlflow_client.log_dict(run.info.run_id, dict(reference), CHECKPOINT_ARTIFACT)
    if reference.get("checkpoint"):
        mlflow_client.set_tag(run.info.run_id, "checkpoint", str(reference["checkpoint"]))


def close_trial_run(tracking: Mapping[str, Any], trial_id: str, status: str, tags: Mapping[str, str] = ()) -> None:
    """Set the final status of a child run its worker could not close (stopped early, failed, killed)."""
    run = find_trial_run(tracking, trial_id)
    if run is None:
        return
    mlflow_client = client(tracking["tracking_uri"])
    for key, value in dict(tags).items():
        mlflow_client.set_tag(run.info.run_id, key, str(value))
    if run.info.status == "RUNNING":
        mlflow_client.set_terminated(run.info.run_id, status=status)


def ui_command(uri: str) -> str:
    """The exact command that browses the store."""
    local = store_path(uri)
    if local is None:
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def git_commit(repo: str | Path | None = None) -> str:
    """The project's git commit (with '-dirty' when the tree has changes), or 'unknown' outside a checkout."""
    repo = Path(repo or Path(__file__).resolve().parents[1])
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def data_fingerprint(paths: Mapping[str, Any], train_sample: int = 1000) -> str:
    """A short hash of what a run reads: the training and trial lists, the byte size of every trial file and
    of ~`train_sample` training files spread over the list, and the noise/RIR files' names and sizes. Cheap
    (a few thousand stats), and it changes when audio is regenerated or replaced even under the same names."""
    from trainables.manifest import read_train_manifest, read_trials, resolve, trial_files

    digest = hashlib.sha256()
    root = paths.get("data_root") or ""

    def add_size(path: str) -> None:
        try:
            digest.update(f"{os.path.getsize(path)};".encode())
        except OSError:
            digest.update(b"missing;")

    for key in ("train_manifest", "trials"):
        path = paths.get(key)
        digest.update(key.encode())
        if path and Path(path).is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    try:  # the lists were checked by the worker already; a fingerprint never stops a run
        if paths.get("train_manifest") and Path(paths["train_manifest"]).is_file():
            utterances = read_train_manifest(paths["train_manifest"], root)
            for utterance in utterances[:: max(1, len(utterances) // train_sample)]:
                add_size(utterance.path)
        if paths.get("trials") and Path(paths["trials"]).is_file():
            for name in trial_files(read_trials(paths["trials"])):
                add_size(resolve(root, name))
    except (ValueError, OSError):
        digest.update(b"unreadable lists;")
    for key in ("noise_dir", "rir_dir"):
        folder = paths.get(key)
        digest.update(key.encode())
        if folder and Path(folder).is_dir():
            for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
                digest.update(str(path.relative_to(folder)).encode())
                add_size(str(path))
    return digest.hexdigest()[:16]


class TrialRun:
    """The child run of one trial, written by rank 0: per-epoch metrics, final scores, status."""

    def __init__(self, mlflow_client, run_id: str, last_logged_epoch: int):
        self.client = mlflow_client
        self.run_id = run_id
        self.last_logged_epoch = last_logged_epoch
        self.scores: dict[str, np.ndarray] | None = None

    def log_epoch(self, metrics: Mapping[str, Any], scores: Mapping[str, np.ndarray] | None) -> None:
        """Log one epoch's numeric metrics in one batch call (step = epoch); keep the newest trial scores."""
        from mlflow.entities import Metric

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


def start_trial_run(tracking: Mapping[str, Any], cfg: TrainConfig, paths: Mapping[str, Any]) -> TrialRun:
    """Open (or, for a resumed trial, reopen) the trial's child run and log params, tags and the resolved config."""
    from mlflow.entities import RunTag

    mlflow_client = client(tracking["tracking_uri"])
    trial_id = tracking["trial_id"]
    found = find_trial_run(tracking, trial_id)
    tags = {
        STUDY_TAG: tracking["study"],
        TRIAL_TAG: trial_id,
        "git_commit": tracking.get("git_commit", "unknown"),
        "data_fingerprint": data_fingerprint(paths),
        "world_size": str(tracking.get("world_size", 1)),
        "worker_nodes": ",".join(tracking.get("worker_nodes", [])),
        "embedded_data": str(bool(paths.get("embedded"))).lower(),
    }
    if found is None:
        run = mlflow_client.create_run(
            tracking["experiment_id"],
            tags={PARENT_TAG: tracking["parent_run_id"], RUN_NAME_TAG: tracking.get("run_name", trial_id), **tags},
        )
        run_id, last_epoch = run.info.run_id, 0
        _log_params(mlflow_client, run_id, cfg.to_dict())
        derived = {"crop_samples": cfg.crop_samples, "eval_segment_samples": cfg.eval_segment_samples}
        mlflow_client.log_dict(run_id, {"config": cfg.to_dict(), "derived": derived, "data": dict(paths)}, CONFIG_ARTIFACT)
    else:
        run_id = found.info.run_id
        history = mlflow_client.get_metric_history(run_id, "epoch")
        last_epoch = int(max((m.value for m in history), default=0))
        mlflow_client.update_run(run_id, status="RUNNING")
        mlflow_client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    return TrialRun(mlflow_client, run_id, last_epoch)


def _log_params(mlflow_client, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(key, str(value)) for key, value in params.items()]
    for first in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        mlflow_client.log_batch(run_id, params=items[first : first + 100])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(float(value))

