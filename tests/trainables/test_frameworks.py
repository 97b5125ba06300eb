"""SimCLR and MoCo modules: loss wiring, EMA key encoder, FIFO queue; DDP gathers negatives with gradient."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from trainables.frameworks import MoCo, SimCLR
from trainables.frameworks.moco import KEY_BN_GROUP
from trainables.nt_xent_am import moco_cosines, nt_xent_am, simclr_cosines


def tiny_encoder(dim=8):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4 * 5, dim))


def test_simclr_loss_is_nt_xent_am_of_the_embeddings():
    enc = tiny_encoder()
    model = SimCLR(enc, symmetric=True)
    x = torch.randn(6, 4, 5)
    z = F.normalize(enc(x), dim=-1).view(2, 3, -1)
    expected = nt_xent_am(*simclr_cosines(z, z, 0, True), 0.2, 0.1)
    assert torch.allclose(model(x, 0.2, 0.1), expected)


def test_moco_queue_is_fifo_and_key_encoder_is_ema():
    enc = tiny_encoder()
    model = MoCo(enc, queue_size=8, momentum=0.9, dim=8)
    assert not any(p.requires_grad for p in model.key_encoder.parameters())
    before_queue = model.queue.clone()
    key_before = [p.clone() for p in model.key_encoder.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.randn(6, 4, 5)  # n = 3 utterances, two views
    loss = model(x, 0.1, 0.2)
    with torch.no_grad():
        k = F.normalize(model.key_encoder(x), dim=-1).view(2, 3, -1)
        q = F.normalize(enc(x), dim=-1).view(2, 3, -1)
        expected = 0.5 * (
            nt_xent_am(*moco_cosines(q[0], k[1], before_queue[1]), 0.1, 0.2)
            + nt_xent_am(*moco_cosines(q[1], k[0], before_queue[0]), 0.1, 0.2)
        )
    assert torch.allclose(loss, expected)
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.after_step()
    for p_k, p_k0, p_q in zip(model.key_encoder.parameters(), key_before, enc.parameters()):
        # fp32 rounding of the in-place EMA (1 ulp = 1.5e-8 here, as much as allclose's default slack at some
        # elements); a momentum off by 0.01 is off by 4e-3.
        torch.testing.assert_close(p_k, 0.9 * p_k0 + 0.1 * p_q, rtol=0, atol=1e-6)
    assert torch.allclose(model.queue[:, :3], k) and torch.equal(model.queue[:, 3:], before_queue[:, 3:])
    assert int(model.queue_ptr) == 3
    for _ in range(2):  # 3 more + 3 more keys wrap around the 8 slots
        model(torch.randn(6, 4, 5), 0.1, 0.2)
        model.after_step()
    assert int(model.queue_ptr) == (3 + 3 + 3) % 8


def test_moco_key_batch_norm_statistics_come_from_random_groups_not_the_query_batch():
    """A batch of 4 groups' worth of views: each key is the key encoder on its own random group (batch norm
    statistics of that group), not on the whole batch the queries see; a batch under two groups is one group."""
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(4 * 5, 8), nn.BatchNorm1d(8))
    model = MoCo(enc, queue_size=256, momentum=0.9, dim=8)
    x = torch.randn(4 * KEY_BN_GROUP, 4, 5)
    torch.manual_seed(1)
    keys = model._keys(x)
    torch.manual_seed(1)
    order = torch.randperm(len(x))
    expected = torch.empty_like(keys)
    for group in order.tensor_split(4):
        expected[group] = F.normalize(model.key_encoder(x[group]), dim=-1)
    torch.testing.assert_close(keys, expected)
    whole = F.normalize(model.key_encoder(x), dim=-1)
    assert (keys - whole).abs().max() > 1e-2, "the whole batch's statistics would give other keys"
    small = x[: 2 * KEY_BN_GROUP - 1]
    torch.testing.assert_close(model._keys(small), F.normalize(model.key_encoder(small), dim=-1))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, framework, x, queue):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    enc = tiny_encoder()
    model = SimCLR(enc, symmetric=True) if framework == "simclr" else MoCo(enc, queue_size=16, momentum=0.9, dim=8)
    ddp = DistributedDataParallel(model, broadcast_buffers=False)
    n = x.shape[1] // world_size
    local = x[:, rank * n : (rank + 1) * n].reshape(-1, 4, 5)  # (2n, 4, 5): view 1 then view 2
    loss = ddp(local, 0.1, 0.2)
    loss.backward()
    grads = [p.grad.numpy().copy() for p in enc.parameters()]
    model.after_step()
    total = torch.tensor([float(loss.detach())])
    dist.all_reduce(total)
    queue.put((rank, float(total) / world_size, grads, model.queue.numpy().copy() if framework == "moco" else None))
    dist.destroy_process_group()


@pytest.mark.parametrize("framework", ["simclr", "moco"])
def test_ddp_two_processes_equal_one_process_on_the_global_batch(framework):
    """World size 2: the mean loss, the synchronised gradients and the MoCo queue equal a single process
    on the whole batch, which holds only if negatives are gathered from both processes with gradient."""
    torch.manual_seed(1)
    x = torch.randn(2, 6, 4, 5)  # (views, N, ...)
    enc = tiny_encoder()
    model = SimCLR(enc, symmetric=True) if framework == "simclr" else MoCo(enc, queue_size=16, momentum=0.9, dim=8)
    loss = model(x.reshape(-1, 4, 5), 0.1, 0.2)
    loss.backward()
    model.after_step()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, framework, x, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted((queue.get(timeout=120) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(timeout=60)
    for rank, mean_loss, grads, ddp_queue in results:
        assert mean_loss == pytest.approx(float(loss), rel=1e-5)
        for g_ddp, p in zip(grads, enc.parameters()):
            assert torch.allclose(torch.from_numpy(g_ddp), p.grad, atol=1e-6)
        if framework == "moco":
            assert torch.allclose(torch.from_numpy(ddp_queue), model.queue, atol=1e-6)
