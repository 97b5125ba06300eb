"""The hooks a trial's Ray Train workers give the training loop: Ray Train's device, checkpoint restore and
reports on every rank, and the trial's MLflow child run on rank 0."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch

from study.tracking.runs import TrialRun, start_trial_run
from study.tracking.settings import TrialTracking
from trainables.checkpoint import read_checkpoint, write_checkpoint
from trainables.config import TrainConfig
from trainables.data_paths import DataPaths
from trainables.distributed import world


class RayTrainHooks:
    """Rank 0 reports each epoch with its checkpoint (and trial scores) and logs it to MLflow when `tracking`
    is given; the other ranks report the metrics only. Resumes from the Train run's newest checkpoint."""

    def __init__(self, tracking: TrialTracking | None):
        self.tracking = tracking
        self.rank = world()[0]
        self.run: TrialRun | None = None

    def device(self) -> torch.device:
        return ray.train.torch.get_device()

    def restore(self) -> dict[str, Any] | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return read_checkpoint(folder)

    def start(self, cfg: TrainConfig, paths: DataPaths) -> None:
        if self.rank == 0 and self.tracking is not None:
            self.run = start_trial_run(self.tracking, cfg, asdict(paths))

    def epoch_end(self, state: dict[str, Any], scores: dict[str, np.ndarray] | None, metrics: dict[str, Any]) -> str | None:
        where = self._report(state, scores, metrics)
        if self.run is not None:
            self.run.log_epoch(metrics, scores)
        return where

    def end(self) -> None:
        if self.run is not None:
            self.run.finish()

    def _report(self, state: dict[str, Any], scores: dict[str, np.ndarray] | None, metrics: dict[str, Any]) -> str | None:
        if self.rank != 0:
            ray.train.report(metrics)
            return None
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_checkpoint(Path(tmp) / "checkpoint", state, scores)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))
        return f"Ray checkpoint of epoch {state['epoch']}"
