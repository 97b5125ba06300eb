"""The side effects of a training run, handed to the loop by its caller.

`train(cfg, runtime, hooks)` asks its hooks for the device, for the state to resume from, and tells them when
the run starts, when each epoch ends (with its checkpoint state, trial scores and metrics) and when it ends.
`study/` builds Ray Train + MLflow hooks for a trial's workers; `LocalCheckpoints` are those of an in-process run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from trainables.checkpoint import latest_checkpoint, prune_checkpoints, read_checkpoint, write_checkpoint
from trainables.config import TrainConfig
from trainables.data_paths import DataPaths
from trainables.distributed import world


class Hooks(Protocol):
    def device(self) -> torch.device | None:
        """The device to train on; None = choose from `Runtime.device`."""

    def restore(self) -> dict[str, Any] | None:
        """The checkpoint state to continue from, or None to start afresh."""

    def start(self, cfg: TrainConfig, paths: DataPaths) -> None:
        """The run's data is loaded and its state restored; training starts."""

    def step_end(self, epoch: int, step: int, steps: int, loss: float) -> None:
        """One optimiser step of 0-based `epoch` done: its 1-based `step` of `steps`, with its loss (every rank)."""

    def epoch_end(self, state: dict[str, Any], scores: dict[str, np.ndarray] | None, metrics: dict[str, Any]) -> str | None:
        """Keep one epoch's checkpoint state (and trial scores when evaluated) and metrics; return where the
        checkpoint is (named in the error when the loss later becomes non-finite), or None when none was kept."""

    def end(self) -> None:
        """Every epoch trained."""


class LocalCheckpoints:
    """The hooks of an in-process run: a checkpoint per epoch in output_dir/checkpoints (the newest `keep` are
    kept), resumed from the newest; no output_dir = no checkpoints."""

    def __init__(self, output_dir: str | Path = "", resume: bool = True, keep: int = 2):
        self.folder = Path(output_dir) / "checkpoints" if output_dir else None
        self.resume = resume
        self.keep = keep

    def device(self) -> torch.device | None:
        return None

    def restore(self) -> dict[str, Any] | None:
        found = latest_checkpoint(self.folder) if (self.resume and self.folder) else None
        return read_checkpoint(found) if found else None

    def start(self, cfg: TrainConfig, paths: DataPaths) -> None:
        pass

    def step_end(self, epoch: int, step: int, steps: int, loss: float) -> None:
        pass

    def epoch_end(self, state: dict[str, Any], scores: dict[str, np.ndarray] | None, metrics: dict[str, Any]) -> str | None:
        if self.folder is None or world()[0] != 0:
            return None
        written = write_checkpoint(self.folder / f"epoch_{state['epoch']:04d}", state, scores)
        prune_checkpoints(self.folder, keep=self.keep)
        return str(written)

    def end(self) -> None:
        pass
