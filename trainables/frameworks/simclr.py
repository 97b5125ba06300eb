"""SimCLR with the (symmetric) NT-Xent-AM loss; negatives come from the global (all-gathered) batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.distributed import gather_with_grad, world
from trainables.nt_xent_am import nt_xent_am, simclr_cosines


class SimCLR(nn.Module):
    """Encoder (+ optional projector) trained on two views of each utterance."""

    def __init__(self, encoder: nn.Module, projector: nn.Module | None = None, symmetric: bool = True):
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.symmetric = symmetric

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, F, T) -> L2-normalised loss-space vectors (B, D), fp32."""
        z = self.encoder(features)
        if self.projector is not None:
            z = self.projector(z)
        return F.normalize(z.float(), dim=-1)

    def forward(self, features: torch.Tensor, margin: float, temperature: float) -> torch.Tensor:
        """features: (2n, F, T), view 1 of the n local utterances then view 2. Returns the scalar loss."""
        n = features.shape[0] // 2
        z = self.embed(features).view(2, n, -1)  # (2, n, D)
        with torch.autocast(features.device.type, enabled=False):  # cosines and loss in fp32
            candidates = gather_with_grad(z, dim=1)  # (2, N, D)
            rank, _ = world()
            cosines, positive = simclr_cosines(z, candidates, offset=rank * n, symmetric=self.symmetric)
            return nt_xent_am(cosines, positive, margin, temperature)

    def after_step(self) -> None:
        """Nothing to update after the optimiser step (MoCo updates its key encoder here)."""
