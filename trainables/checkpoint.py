"""Training state on disk: model, optimiser, scheduler, MoCo queues (model buffers), RNG states, history.

A checkpoint is a folder holding `state.pt` (and, after an evaluation, `scores.npz`); it is written under a
temporary name and renamed, so a crash never leaves a half-written checkpoint behind. The state holds tensors
and plain Python values only, and is loaded with `weights_only=True`: a crafted file (checkpoints often live on
shared storage) is refused instead of running code when it is unpickled.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "state.pt"
SCORES_FILE = "scores.npz"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded safely; the message names the file."""


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
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
    """Load the state written by `write_checkpoint` without unpickling arbitrary objects; raises
    FileNotFoundError naming the folder, CheckpointError for a file that holds anything else."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint state at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = reason.split(". ")[0]  # PyTorch's weights_only refusal goes on for a paragraph
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds more than tensors and plain values, or is damaged "
            f"(nothing in it was run); remove it to start afresh ({reason})"
        ) from None


def read_scores(folder: str | Path) -> dict[str, np.ndarray] | None:
    """The trial scores saved with a checkpoint (arrays only, no pickles), or None when it has none."""
    path = Path(folder) / SCORES_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def checkpoint_in(folder: str | Path) -> Path | None:
    """`folder` itself when it is a checkpoint (holds `state.pt`), else the newest checkpoint under it, else None."""
    folder = Path(folder)
    return folder if (folder / STATE_FILE).is_file() else latest_checkpoint(folder)


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
