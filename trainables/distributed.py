"""Process-group helpers that degrade to identities on a single process (tests, debugging, one GPU)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate `x` from every process along `dim`; gradients flow back to each process's slice."""
    _, size = world()
    if size == 1:
        return x
    from torch.distributed.nn.functional import all_gather  # optional: only where torch has distributed support

    return torch.cat(all_gather(x.contiguous()), dim=dim)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate `x` from every process along `dim`, without gradient."""
    _, size = world()
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=dim)


def all_reduce_mean(value: float, device: torch.device) -> float:
    """Mean of a Python number over processes."""
    _, size = world()
    if size == 1:
        return float(value)
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t)
    return float(t.item()) / size
