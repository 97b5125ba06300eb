"""The GPU memory estimate: activations counted on fake tensors equal those of a real forward, and the parts add up."""

from __future__ import annotations

import pytest
import torch

from trainables.config import TrainConfig
from trainables.gpu_memory import CUDA_RESERVE_BYTES, estimate_gpu_memory, saved_activation_bytes
from trainables.parts import build_framework


def _real_saved_bytes(model, shape, autocast) -> int:
    kept = {}

    def pack(tensor):
        if not (tensor.requires_grad and tensor.grad_fn is None):
            owner = tensor if tensor._base is None else tensor._base
            kept.setdefault(id(owner), owner)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast is not None):
        model(torch.randn(shape), 0.1, 1 / 30)
    return sum(t.numel() * t.element_size() for t in kept.values())


@pytest.mark.parametrize("framework", ["simclr", "moco"])
@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
def test_fake_tensor_count_equals_a_real_forward(framework, autocast):
    cfg = TrainConfig.from_dict({"framework": framework, "queue_size": 256, "batch_size": 4})
    shape = (8, cfg.n_mels, 51)
    fake = saved_activation_bytes(build_framework(cfg), shape, 0.1, 1 / 30, autocast)
    real = _real_saved_bytes(build_framework(cfg), shape, autocast)
    if autocast is None:
        assert fake == real
    else:  # autocast caches its bf16 weight copies differently under fake tensors: a few KiB of 14 MiB
        assert fake == pytest.approx(real, rel=0.002)


def test_activations_grow_with_the_batch_and_bf16_keeps_fewer_bytes():
    cfg = TrainConfig.from_dict({})
    small, large = estimate_gpu_memory(cfg, 50), estimate_gpu_memory(cfg, 100)
    assert large.activations == pytest.approx(2 * small.activations, rel=0.02)
    assert large.state == small.state and large.reserve == CUDA_RESERVE_BYTES
    assert estimate_gpu_memory(cfg.replace(precision="bf16"), 100).activations < 0.7 * large.activations
    assert large.total == large.state + large.activations + large.batch + large.reserve


def test_moco_state_counts_the_key_encoder_and_queues():
    simclr = estimate_gpu_memory(TrainConfig.from_dict({}), 8)
    moco = estimate_gpu_memory(TrainConfig.from_dict({"framework": "moco"}), 8)
    queues = 2 * 32768 * 512 * 4  # two views' queues of 32768 keys x 512 floats
    assert moco.state - simclr.state >= queues
