"""Encoder registry: name -> constructor taking (n_mels, embedding_dim)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from trainables.encoders.fast_resnet34 import FastResNet34

ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "fast_resnet34": FastResNet34,
}


def build_encoder(name: str, n_mels: int, embedding_dim: int) -> nn.Module:
    """Instantiate a registered encoder; raises KeyError naming the known encoders."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; known encoders: {sorted(ENCODERS)}")
    return ENCODERS[name](n_mels=n_mels, embedding_dim=embedding_dim)
