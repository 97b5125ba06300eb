"""Checkpoints: the RNG state survives a round trip, and a crafted file is refused without running anything."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from trainables.checkpoint import CheckpointError, read_checkpoint, rng_state, set_rng_state, write_checkpoint


class CreatesAFileWhenUnpickled:
    """What an attacker with write access to the results storage could put into state.pt."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(np.random.normal()), float(torch.rand(1))


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leaves a cached Gaussian in NumPy's legacy state
    folder = write_checkpoint(tmp_path / "epoch_0001", {"epoch": 1, "rng": rng_state(), "history": [{"loss": 1.5}]})
    expected = draws()
    state = read_checkpoint(folder)
    set_rng_state(state["rng"])
    assert draws() == expected
    assert state["epoch"] == 1 and state["history"] == [{"loss": 1.5}]


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "created-on-load"
    folder = tmp_path / "epoch_0003"
    folder.mkdir()
    torch.save({"epoch": 3, "model": CreatesAFileWhenUnpickled(str(marker))}, folder / "state.pt")
    with pytest.raises(CheckpointError, match=f"checkpoint {folder / 'state.pt'} was refused"):
        read_checkpoint(folder)
    assert not marker.exists()
    torch.load(folder / "state.pt", weights_only=False)  # the file really is dangerous: unsafe loading runs it
    assert marker.is_dir()


def test_a_damaged_checkpoint_is_a_clear_error(tmp_path):
    folder = tmp_path / "epoch_0001"
    folder.mkdir()
    (folder / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="state.pt was refused"):
        read_checkpoint(folder)
