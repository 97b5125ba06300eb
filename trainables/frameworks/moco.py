"""MoCo with the NT-Xent-AM loss L^(Q): query encoder, EMA key encoder, one FIFO queue of past keys per view.

As in the authors' code (paper.md section 2.4) the loss is computed in both directions and averaged:
(queries of view 1, keys of view 2, queue of view-2 keys) and (view 2, view 1, queue of view-1 keys).
Under DDP the keys are computed with shuffled batch norm across processes and all-gathered before enqueueing.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from trainables.distributed import gather_no_grad, world
from trainables.nt_xent_am import moco_cosines, nt_xent_am


class MoCo(nn.Module):
    """Query encoder (+ projector) trained against an EMA copy; `after_step` updates the copy and the queues."""

    def __init__(self, encoder: nn.Module, queue_size: int, momentum: float, dim: int, projector: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.momentum = momentum
        self.key_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.key_projector = copy.deepcopy(projector).requires_grad_(False) if projector is not None else None
        generator = torch.Generator().manual_seed(0)
        queue = F.normalize(torch.randn(2, queue_size, dim, generator=generator), dim=-1)  # (2 views, K, D)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending_keys: torch.Tensor | None = None

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Query-encoder features (B, F, T) -> L2-normalised vectors (B, D), fp32."""
        z = self.encoder(features)
        if self.projector is not None:
            z = self.projector(z)
        return F.normalize(z.float(), dim=-1)

    @torch.no_grad()
    def _keys(self, features: torch.Tensor) -> torch.Tensor:
        """Key-encoder vectors (B, D), with batch norm statistics shuffled across processes under DDP."""
        rank, size = world()
        if size > 1:
            all_features = gather_no_grad(features)  # (size*B, F, T)
            permutation = torch.randperm(all_features.shape[0], device=features.device)
            dist.broadcast(permutation, src=0)
            mine = permutation.view(size, -1)[rank]  # (B,)
            features = all_features[mine]
        z = self.key_encoder(features)
        if self.key_projector is not None:
            z = self.key_projector(z)
        z = F.normalize(z.float(), dim=-1)  # (B, D)
        if size > 1:
            gathered = gather_no_grad(z)  # (size*B, D) in permuted order
            restored = torch.empty_like(gathered)
            restored[permutation] = gathered
            z = restored.view(size, -1, z.shape[-1])[rank]
        return z

    def forward(self, features: torch.Tensor, margin: float, temperature: float) -> torch.Tensor:
        """features: (2n, F, T), view 1 then view 2. Returns the scalar loss averaged over both directions."""
        n = features.shape[0] // 2
        q = self.embed(features).view(2, n, -1)  # (2, n, D)
        k = self._keys(features).view(2, n, -1)  # (2, n, D)
        with torch.autocast(features.device.type, enabled=False):  # cosines and loss in fp32
            loss_12 = nt_xent_am(*moco_cosines(q[0], k[1], self.queue[1]), margin, temperature)
            loss_21 = nt_xent_am(*moco_cosines(q[1], k[0], self.queue[0]), margin, temperature)
        self._pending_keys = k
        return 0.5 * (loss_12 + loss_21)

    @torch.no_grad()
    def after_step(self) -> None:
        """EMA update theta_k <- t*theta_k + (1-t)*theta_q, then enqueue this step's (gathered) keys."""
        pairs = [(self.encoder, self.key_encoder)]
        if self.projector is not None:
            pairs.append((self.projector, self.key_projector))
        for online, target in pairs:
            for p_q, p_k in zip(online.parameters(), target.parameters()):
                p_k.mul_(self.momentum).add_(p_q.detach(), alpha=1.0 - self.momentum)
        if self._pending_keys is None:
            return
        keys = gather_no_grad(self._pending_keys, dim=1)  # (2, N, D)
        self._pending_keys = None
        size = self.queue.shape[1]
        keys = keys[:, -size:]  # a batch larger than the queue keeps its newest keys
        ptr = int(self.queue_ptr)
        slots = (torch.arange(keys.shape[1], device=keys.device) + ptr) % size  # (N,) FIFO ring positions
        self.queue[:, slots] = keys
        self.queue_ptr.fill_((ptr + keys.shape[1]) % size)
