"""A trial with 2 Ray Train workers really runs DDP: world size 2, each rank trains on its own data, gradients
are synchronised (identical weights afterwards), and SimCLR's negatives are gathered from both ranks.

The study's own worker function (the real loop with its Ray Train hooks) runs under the study's own
`torch_trainer`; two spies wrap (not replace) the functions that build DDP and gather the embeddings, to look
at what they did.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import ray.train
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import trainables.frameworks.simclr as simclr
import trainables.parts as parts
from search_spaces import load
from study.launch.cluster import connect, disconnect, worker_env
from study.launch.driver import DriverPlan, torch_trainer, train_fn_per_worker
from trainables.config import build_config
from trainables.corpus import default_cache_dir, ensure_embedded_corpus


def ddp_probe(config):
    """Per-worker function: the worker loop, then what each rank saw, compared across ranks."""
    wrapped, gathered = [], []
    real_wrap, real_gather = parts.wrap_distributed, simclr.gather_with_grad

    def spy_wrap(model, device):
        start = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        result = real_wrap(model, device)
        wrapped.append((model, result, start))
        return result

    def spy_gather(x, dim=0):
        out = real_gather(x, dim)
        gathered.append((tuple(x.shape), tuple(out.shape), float(x.detach().float().sum())))
        return out

    parts.wrap_distributed, simclr.gather_with_grad = spy_wrap, spy_gather
    try:
        train_fn_per_worker(config)
    finally:
        parts.wrap_distributed, simclr.gather_with_grad = real_wrap, real_gather
    model, ddp, start = wrapped[0]
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    size = dist.get_world_size()
    everyone = [torch.empty_like(params) for _ in range(size)]
    dist.all_gather(everyone, params)
    local_sums = [None] * size
    dist.all_gather_object(local_sums, gathered[0][2])
    found = {
        "world_size": size,
        "ddp": isinstance(ddp, DistributedDataParallel),
        "params_equal_across_ranks": all(torch.equal(everyone[0], e) for e in everyone),
        "params_changed": not torch.equal(params, start),
        "local_shape": list(gathered[0][0]),
        "gathered_shape": list(gathered[0][1]),
        "local_sums": local_sums,
    }
    with tempfile.TemporaryDirectory() as folder:  # Result.metrics are those of the newest checkpoint
        checkpoint = ray.train.Checkpoint.from_directory(folder) if dist.get_rank() == 0 else None
        ray.train.report(found, checkpoint=checkpoint)


@pytest.fixture(scope="module")
def local_ray():
    ensure_embedded_corpus(log=lambda *_: None)
    temp_dir = tempfile.mkdtemp(prefix="ms", dir="/tmp")
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp_dir
    try:
        yield connect(None, worker_env(None, {"MARGIN_STUDY_CACHE": str(default_cache_dir().resolve())}))
    finally:
        disconnect()
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_run_ddp_with_synchronised_gradients_and_gathered_negatives(local_ray, tmp_path):
    config = build_config("cpu", {**load("smoke").fixed, "framework": "simclr", "epochs": 1, "eval_every": 0}).to_dict()
    driver = DriverPlan(study="ddp", metric="eer", mode="min", searched=(), conditions={}, workers_per_trial=2,
                        cpus_per_worker=1, gpus_per_worker=0, train_storage=str(tmp_path))
    trainer = torch_trainer(ddp_probe, {"config": config, "tracking": None, "verbose": False}, driver, "ddp-probe")
    metrics = trainer.fit().metrics

    assert metrics["world_size"] == 2 and metrics["ddp"]
    assert metrics["params_changed"], "training must have updated the weights"
    assert metrics["params_equal_across_ranks"], "DDP must keep both ranks' weights identical"
    per_rank = config["batch_size"] // 2
    assert metrics["local_shape"][:2] == [2, per_rank]  # (views, this rank's utterances, dim)
    assert metrics["gathered_shape"][:2] == [2, 2 * per_rank]  # negatives from both ranks
    first, second = metrics["local_sums"]
    assert first != second, "each rank must train on its own utterances"
