"""Training state on disk: model, optimiser, scheduler, MoCo queues (model buffers), RNG states, history.

A checkpoint is a folder holding `state.pt` (and, after an evaluation, `scores.npz`); it is written under a
temporary name and renamed, so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "state.pt"
SCORES_FILE = "scores.npz"


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(folder: str | Path, state: dict[str, Any], scores: dict[str, np.ndarray] | None = None) -> Path:
    """Atomically write `state` (and optional trial scores) as the checkpoint folder `folder`."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(state, tmp / STATE_FILE)
    if scores is not None:
        np.savez_compressed(tmp / SCORES_FILE, **scores)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def read_checkpoint(folder: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load the state written by `write_checkpoint`; raises FileNotFoundError naming the folder."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint state at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete `epoch_NNNN` checkpoint folder under `root`, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("epoch_*") if p.is_dir() and not p.name.endswith(".tmp") and (p / STATE_FILE).is_file())
    return done[-1] if done else None


def prune_checkpoints(root: str | Path, keep: int = 2) -> None:
    """Delete all but the newest `keep` epoch checkpoints under `root`."""
    done = sorted(p for p in Path(root).glob("epoch_*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
