"""A trial's encoder as an MLflow PyTorch model (front end + network: waveform in, embedding out), logged to its
run with a signature and an input example, loadable with `mlflow.pytorch.load_model`; registering the best one."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from study.tracking.runs import find_trial_run
from study.tracking.settings import TrackingSettings
from study.tracking.store import TrackingError, client
from trainables.embedder import Embedder, load_embedder

MODEL_NAME = "encoder"
"""The name of a trial's logged model (`runs:/<run id>/encoder`)."""
MODEL_TAG = "model_uri"
"""Run tag naming the run's logged encoder model, once logged."""
MODEL_TYPE = "speaker-encoder"
REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}", "torchaudio", "numpy", "soundfile"]
EXAMPLE_SECONDS = 1.0


def signature(embedding_dim: int):
    """Waveforms (batch, samples) float32 in [-1, 1] -> embeddings (batch, embedding_dim) float32, any length."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, embedding_dim))]))


def input_example(sample_rate: int) -> np.ndarray:
    """One second of a 200 Hz tone with harmonics at -12 dBFS, (1, samples) float32: a short, valid input."""
    t = np.arange(int(EXAMPLE_SECONDS * sample_rate)) / sample_rate
    wave = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 6))
    return (0.25 * wave / np.abs(wave).max())[None].astype(np.float32)  # (1, samples)


def log_trial_encoder(launch: TrackingSettings, trial_id: str, checkpoint: str | Path) -> str | None:
    """Log the final encoder of a finished trial (its checkpoint folder) to the trial's run, once: a resumed launch
    finishing the trial again logs nothing new. The model URI, or None when the trial has no run."""
    run = find_trial_run(launch, trial_id)
    if run is None:
        return None
    if MODEL_TAG in run.data.tags:
        return run.data.tags[MODEL_TAG]
    embedder, cfg = load_embedder(checkpoint)
    model_uri = log_embedder(launch.tracking_uri, run.info.run_id, embedder, cfg.epochs, dict(run.data.params))
    link_scores(launch.tracking_uri, run, model_uri.removeprefix("models:/"))
    client(launch.tracking_uri).set_tag(run.info.run_id, MODEL_TAG, model_uri)
    return model_uri


def link_scores(tracking_uri: str, run, model_id: str, keys: tuple[str, ...] = ("eer", "min_dcf")) -> None:
    """Attach the final `keys` of `run` (an MLflow Run: the values already logged, same step and time) to the
    model, on the run's evaluation dataset input (the trial list): the model page then shows its EER on that list."""
    from mlflow.entities import Metric

    store = client(tracking_uri)
    run_id = run.info.run_id
    evaluation = [i.dataset for i in run.inputs.dataset_inputs
                  if {t.key: t.value for t in i.tags}.get("mlflow.data.context") == "evaluation"]
    dataset = {"dataset_name": evaluation[0].name, "dataset_digest": evaluation[0].digest} if evaluation else {}
    linked = []
    for key in keys:
        history = store.get_metric_history(run_id, key)
        if history:
            last = max(history, key=lambda m: (m.step, m.timestamp))
            linked.append(Metric(key, last.value, last.timestamp, last.step, model_id=model_id, run_id=run_id, **dataset))
    if linked:
        store.log_batch(run_id, metrics=linked)


def log_embedder(tracking_uri: str, run_id: str, embedder: Embedder, step: int = 0,
                 params: dict[str, str] | None = None) -> str:
    """Log `embedder` as model `encoder` of run `run_id` (an MLflow 3 logged model whose source is the run, with
    `params`, and a model output of the run at `step`) without reopening the run: its status and end time stay as
    they are. Pip requirements are given, not inferred (MLflow infers them by importing the model in a
    subprocess). The model URI."""
    import mlflow.pytorch  # heavy: only when a trial finishes
    from mlflow.entities import LoggedModelOutput

    store = client(tracking_uri)
    experiment_id = store.get_run(run_id).info.experiment_id
    example = input_example(embedder.sample_rate)
    dim = int(embedder(torch.from_numpy(example)).shape[-1])
    model = store.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id, model_type=MODEL_TYPE,
                                      params=params)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.pytorch.save_model(embedder, f"{tmp}/{MODEL_NAME}", signature=signature(dim), input_example=example,
                                      serialization_format="pickle", pip_requirements=REQUIREMENTS)
            store.log_model_artifacts(model.model_id, f"{tmp}/{MODEL_NAME}")
    except Exception:
        store.finalize_logged_model(model.model_id, "FAILED")
        raise
    store.finalize_logged_model(model.model_id, "READY")
    store.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
    return f"models:/{model.model_id}"


def register(model_uri: str, name: str) -> str:
    """Register `model_uri` in the Model Registry under `name`; 'name version N'."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow.register_model(model_uri, name)
    except MlflowException as error:  # e.g. a run from before encoders were logged: it has no model
        raise TrackingError(f"cannot register {model_uri} as {name}: {str(error.message).splitlines()[0]}") from None
    return f"{name} version {version.version}"
