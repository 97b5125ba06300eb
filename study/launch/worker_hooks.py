"""The hooks a trial's workers give the training loop: Ray Train's device, checkpoint restore and reports on
every rank (`InTrialHooks`: the same for a single-worker trial run in its Tune trial), and the trial's MLflow
child run on rank 0, written in the background (a tracking outage never holds up training; the checkpoint keeps
what could not be sent)."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import ray.tune
import torch

from study.launch.live_board import BoardPoster
from study.tracking.background import BackgroundRun
from study.tracking.settings import TrialTracking
from trainables.checkpoint import latest_checkpoint, read_checkpoint, read_scores, write_checkpoint
from trainables.config import TrainConfig
from trainables.data_paths import DataPaths
from trainables.distributed import world
from trainables.loop import evaluation_due
from trainables.hooks import LocalCheckpoints


FLUSH_WAIT_S = 30.0
"""How long rank 0 waits at the end for MLflow to hold the whole run; the trial's driver sends what is left."""


class RayTrainHooks:
    """Rank 0 reports each epoch with its checkpoint (and trial scores), logs it to MLflow when `tracking`
    is given and posts where it is to the launch's live-view board `board` (`study.launch.live_board`) when
    given; the other ranks report the metrics only. Resumes from the Train run's newest checkpoint, and sends
    MLflow whatever epochs of its history the run lacks."""

    def __init__(self, tracking: TrialTracking | None, board: str = "", trial_id: str = ""):
        self.tracking = tracking
        self.rank = world()[0]
        self.run: BackgroundRun | None = None
        self.history: list[dict[str, Any]] = []
        self.scores: dict[str, np.ndarray] | None = None
        self.board = BoardPoster(board, trial_id) if board and self.rank == 0 else None
        self.cfg: TrainConfig | None = None

    def device(self) -> torch.device:
        return ray.train.torch.get_device()

    def restore(self) -> dict[str, Any] | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            state = read_checkpoint(folder)
            self.scores = read_scores(folder)
        self.history = list(state["history"])
        return state

    def start(self, cfg: TrainConfig, paths: DataPaths) -> None:
        self.cfg = cfg
        if self.rank == 0 and self.tracking is not None:
            self.run = BackgroundRun(self.tracking, cfg, asdict(paths), self.history, self.scores)
        if self.board is not None:
            evaluated = [m["eer"] for m in self.history if "eer" in m]
            self.board.start(cfg.epochs, len(self.history), evaluated[-1] if evaluated else None)

    def step_end(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if self.board is not None and self.cfg is not None:
            self.board.step(epoch, step, steps, loss, evaluation_due(self.cfg, epoch))

    def epoch_end(self, state: dict[str, Any], scores: dict[str, np.ndarray] | None, metrics: dict[str, Any]) -> str | None:
        if self.run is not None:
            self.run.log_epoch(metrics, scores)
        if self.board is not None:
            self.board.epoch_end(metrics)
        return self._report(state, scores, metrics)

    def end(self) -> None:
        if self.run is not None and not self.run.finish(FLUSH_WAIT_S):
            print(f"MLflow did not take the run's last epochs within {FLUSH_WAIT_S:.0f} s ({self.run.last_error}); "
                  "they are in the trial's checkpoint, and its driver sends them", flush=True)

    def _report(self, state: dict[str, Any], scores: dict[str, np.ndarray] | None, metrics: dict[str, Any]) -> str | None:
        if self.rank != 0:
            ray.train.report(metrics)
            return None
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_checkpoint(Path(tmp) / "checkpoint", state, scores)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))
        return f"Ray checkpoint of epoch {state['epoch']}"


class InTrialHooks(RayTrainHooks):
    """The hooks of a single-worker trial run in its Tune trial process, without a Ray Train controller: the GPU
    (share) Ray gave the trial, checkpoints in `folder` (the newest two kept; a retry or `--resume` continues from
    the newest), evaluated epochs reported to Tune; MLflow as for Ray Train workers."""

    def __init__(self, tracking: TrialTracking | None, folder: Path, metric: str, board: str = "", trial_id: str = ""):
        super().__init__(tracking, board, trial_id)
        self.checkpoints = LocalCheckpoints(folder)
        self.metric = metric

    def device(self) -> torch.device:
        return torch.device("cuda", 0) if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")

    def restore(self) -> dict[str, Any] | None:
        found = latest_checkpoint(self.checkpoints.folder)
        if found is None:
            return None
        state = read_checkpoint(found)
        self.scores = read_scores(found)
        self.history = list(state["history"])
        return state

    def latest(self) -> Path | None:
        """The newest checkpoint folder written (or restored)."""
        return latest_checkpoint(self.checkpoints.folder)

    def _report(self, state: dict[str, Any], scores: dict[str, np.ndarray] | None, metrics: dict[str, Any]) -> str | None:
        written = self.checkpoints.epoch_end(state, scores, metrics)
        if self.metric in metrics:
            ray.tune.report({**metrics, "world_size": 1})
        return written
