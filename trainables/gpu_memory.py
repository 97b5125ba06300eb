"""The GPU memory one training worker needs, estimated from its config without a GPU.

Weights, gradients and Adam's two moments (MoCo's key encoder and queues too) are counted from the model the
config builds. The activations autograd keeps for the backward pass are counted by running the training forward
on fake tensors (`FakeTensorMode`: shapes only, no memory, no compute) under a saved-tensors hook, with the
config's autocast (CPU autocast's casting policy stands in for CUDA's). The step's batch (raw views, augmented waves,
features) and a fixed reserve for the CUDA context, cuBLAS/cuDNN workspaces and allocator slack are added.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from trainables.config import TrainConfig
from trainables.features import LogMel

CUDA_RESERVE_BYTES = 1536 << 20
"""CUDA context (about 500 MiB with PyTorch's kernels loaded), cuDNN/cuBLAS workspaces and allocator slack."""
ALLOCATOR_FACTOR = 1.2
"""Headroom over the counted activations: the caching allocator rounds blocks and fragments."""


@dataclass(frozen=True)
class GpuMemory:
    """One worker's estimated GPU memory, in bytes."""

    state: int
    """Weights, gradients, Adam moments (and MoCo's key encoder and queues)."""
    activations: int
    """What autograd keeps between forward and backward, times ALLOCATOR_FACTOR."""
    batch: int
    """The step's views, augmented waves and features."""
    reserve: int = CUDA_RESERVE_BYTES

    @property
    def total(self) -> int:
        return self.state + self.activations + self.batch + self.reserve

    def describe(self) -> str:
        gib = 2**30
        return (f"{self.total / gib:.1f} GiB (weights and optimiser {self.state / gib:.2f}, activations "
                f"{self.activations / gib:.2f}, batch {self.batch / gib:.2f}, CUDA reserve {self.reserve / gib:.2f})")


def estimate_gpu_memory(cfg: TrainConfig, batch_per_worker: int) -> GpuMemory:
    """The estimate for one worker training `batch_per_worker` utterances (two views each) of `cfg` per step."""
    from trainables.parts import build_framework  # the model builders import this module's neighbours

    model = build_framework(cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())  # MoCo queues, batch-norm statistics
    state = weights + buffers + 3 * sum(p.numel() * p.element_size() for p in trainable)  # + grads, Adam m and v
    frames = LogMel(cfg.sample_rate, cfg.n_mels, cfg.mel_window)(torch.zeros(1, cfg.crop_samples)).shape[-1]
    views = 2 * batch_per_worker
    autocast = torch.bfloat16 if cfg.precision == "bf16" else None
    activations = saved_activation_bytes(model, (views, cfg.n_mels, frames), cfg.margin, cfg.temperature, autocast)
    batch = 4 * views * (3 * cfg.crop_samples + cfg.n_mels * frames)  # views, augmented copy, noise crops, features
    return GpuMemory(state=state, activations=int(activations * ALLOCATOR_FACTOR), batch=batch)


def saved_activation_bytes(model: torch.nn.Module, features_shape: tuple[int, int, int], margin: float,
                           temperature: float, autocast: torch.dtype | None = None) -> int:
    """Bytes autograd saves for backward in one training forward of `model` on features of `features_shape`
    (2n, n_mels, frames) under `autocast` (None = fp32), counted on fake tensors; views count with their base."""
    model.train()
    kept: dict[int, torch.Tensor] = {}  # id -> the tensor owning the memory (held, so ids stay unique)

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.requires_grad and tensor.grad_fn is None:  # a parameter: counted in the state already
            return tensor
        owner = tensor if tensor._base is None else tensor._base
        kept.setdefault(id(owner), owner)
        return tensor

    with (FakeTensorMode(allow_non_fake_inputs=True), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
          torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None)):
        loss = model(torch.empty(features_shape), margin, temperature)
    del loss
    return sum(t.numel() * t.element_size() for t in kept.values())
