"""A trained speaker encoder as one module: waveforms in, L2-normalised speaker embeddings out.

`Embedder` is what a trial exports (an MLflow PyTorch model) and what `study.embed` and `study.evaluate` use:
the run's log-mel front end followed by its encoder, with the config's sample rate, so a caller needs nothing
else to embed audio the way the run was evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainables.checkpoint import read_checkpoint
from trainables.config import TrainConfig
from trainables.evaluation import embed_utterances, load_int16
from trainables.features import LogMel
from trainables.parts import build_framework


class Embedder(nn.Module):
    """Waveforms (B, T) float in [-1, 1] at `sample_rate` -> embeddings (B, D), unit L2 norm."""

    def __init__(self, frontend: LogMel, encoder: nn.Module, sample_rate: int):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.sample_rate = sample_rate

    @torch.no_grad()
    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(self.frontend(waves.float())).float(), dim=-1)  # (B, D)


def embedder_from_state(state: Mapping[str, Any]) -> tuple[Embedder, TrainConfig]:
    """The encoder of a checkpoint state (`trainables.checkpoint`), in eval mode on the CPU, and its config."""
    cfg = TrainConfig.from_dict(state["config"])
    framework = build_framework(cfg)
    framework.load_state_dict(state["model"])
    embedder = Embedder(LogMel(cfg.sample_rate, cfg.n_mels, cfg.mel_window), framework.encoder, cfg.sample_rate)
    return embedder.eval(), cfg


def load_embedder(checkpoint: str | Path) -> tuple[Embedder, TrainConfig]:
    """The encoder of the checkpoint folder `checkpoint` and its config (errors name the file)."""
    return embedder_from_state(read_checkpoint(checkpoint))


def embed_files(embedder: Embedder, paths: Sequence[str | Path], mode: str = "full", segment_seconds: float = 3.515,
                segments: int = 10, device: torch.device | str = "cpu") -> np.ndarray:
    """Embeddings (N, D) of audio files, decoded and resampled to the embedder's rate: one whole-utterance
    embedding per file ('full'), or the mean of `segments` evenly spaced segments ('segments', the paper's)."""
    device = torch.device(device)
    rate = embedder.sample_rate
    waves = [load_int16(str(p), rate) for p in paths]
    embedder.to(device).eval()
    vectors = embed_utterances(waves, embedder.frontend, embedder.encoder, device, mode,
                               int(round(segment_seconds * rate)), segments, quantum=rate // 2)
    return vectors.cpu().numpy()  # (N, D)
