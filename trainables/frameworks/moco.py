"""MoCo with the NT-Xent-AM loss L^(Q): query encoder, EMA key encoder, one FIFO queue of past keys per view.

As in the authors' code (paper.md section 2.4) the loss is computed in both directions and averaged:
(queries of view 1, keys of view 2, queue of view-2 keys) and (view 2, view 1, queue of view-1 keys).
Batch norm of the key encoder never sees the query encoder's batch: under DDP the keys are computed on a shuffle of
the global batch across processes (MoCo's shuffling BN, He et al. 2020, section 3.3) and all-gathered before
enqueueing, and in every process on random groups of about `KEY_BN_GROUP` samples.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from trainables.distributed import gather_no_grad, world
from trainables.nt_xent_am import moco_cosines, nt_xent_am

KEY_BN_GROUP = 32
"""Samples per batch-norm group of the key encoder (a batch of 2n views is split into max(1, 2n // 32) random
groups). Without it a single process computes a query and its positive key on the same batch, whose statistics
leak which samples belong together; MoCo's authors emulate their multi-GPU shuffling BN on one GPU the same way
(split batch norm). Measured on the embedded corpus (MoCo m = 0.1, tau = 1/30, 160 steps, batch 64, one process):
24.9 % EER without groups, 24.5 % with 2 groups of 64, 15.1 % with 4 groups of 32."""


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
    def _key_vectors(self, features: torch.Tensor) -> torch.Tensor:
        """Key encoder (+ projector) on one batch-norm group: (G, F, T) -> (G, D)."""
        z = self.key_encoder(features)
        return self.key_projector(z) if self.key_projector is not None else z

    @torch.no_grad()
    def _keys(self, features: torch.Tensor) -> torch.Tensor:
        """Key-encoder vectors (B, D), batch norm statistics from random groups (shuffled across processes under
        DDP, then split into groups of about `KEY_BN_GROUP` in each process)."""
        rank, size = world()
        if size > 1:
            all_features = gather_no_grad(features)  # (size*B, F, T)
            permutation = torch.randperm(all_features.shape[0], device=features.device)
            dist.broadcast(permutation, src=0)
            mine = permutation.view(size, -1)[rank]  # (B,)
            features = all_features[mine]
        order = torch.randperm(features.shape[0], device=features.device)  # (B,)
        groups = features[order].tensor_split(max(1, features.shape[0] // KEY_BN_GROUP))
        grouped = torch.cat([self._key_vectors(group) for group in groups])  # (B, D) in shuffled order
        z = torch.empty_like(grouped)
        z[order] = grouped
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
