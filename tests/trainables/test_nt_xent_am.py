"""NT-Xent-AM against a naive per-anchor reference written from paper.md section 2."""

import math

import pytest
import torch
import torch.nn.functional as F

from trainables.nt_xent_am import moco_cosines, nt_xent_am, simclr_cosines


def _normalised(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def naive_symmetric(z1, z2, m, tau):
    """L^(S): 2N anchors, positive = other view, negatives = all other 2N-2 embeddings."""
    z = torch.cat([z1, z2])
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = i + n if i < n else i - n
        pos = math.exp((float(z[i] @ z[j]) - m) / tau)
        neg = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(2 * n) if a not in (i, j))
        total += -math.log(pos / (pos + neg))
    return total / (2 * n)


def naive_nonsymmetric(z1, z2, m, tau):
    """L: view-1 anchors, positive = own view 2, negatives = other view-2 embeddings."""
    n = z1.shape[0]
    total = 0.0
    for i in range(n):
        pos = math.exp((float(z1[i] @ z2[i]) - m) / tau)
        neg = sum(math.exp(float(z1[i] @ z2[a]) / tau) for a in range(n) if a != i)
        total += -math.log(pos / (pos + neg))
    return total / n


def naive_moco(q, k, queue, m, tau):
    """L^(Q): positive = own key, negatives = every queue entry."""
    total = 0.0
    for i in range(q.shape[0]):
        pos = math.exp((float(q[i] @ k[i]) - m) / tau)
        neg = sum(math.exp(float(q[i] @ queue[b]) / tau) for b in range(queue.shape[0]))
        total += -math.log(pos / (pos + neg))
    return total / q.shape[0]


@pytest.mark.parametrize("margin", [0.0, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("temperature", [1 / 30, 0.2, 1.0])
@pytest.mark.parametrize("symmetric", [True, False])
def test_simclr_matches_naive_reference(margin, temperature, symmetric):
    z = _normalised(2, 7, 16, seed=3)
    cosines, positive = simclr_cosines(z, z, offset=0, symmetric=symmetric)
    got = float(nt_xent_am(cosines.double(), positive, margin, temperature))
    reference = (naive_symmetric if symmetric else naive_nonsymmetric)(z[0], z[1], margin, temperature)
    assert got == pytest.approx(reference, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.4])
@pytest.mark.parametrize("temperature", [1 / 30, 0.2])
def test_moco_matches_naive_reference(margin, temperature):
    q, k, queue = _normalised(5, 8, seed=1), _normalised(5, 8, seed=2), _normalised(11, 8, seed=4)
    got = float(nt_xent_am(*moco_cosines(q, k, queue), margin, temperature))
    assert got == pytest.approx(naive_moco(q, k, queue, margin, temperature), rel=1e-9)


def test_margin_zero_is_plain_nt_xent():
    """m = 0 equals the textbook NT-Xent (SimCLR's formulation) computed independently."""
    z = _normalised(2, 6, 10, seed=5)
    tau = 0.1
    cosines, positive = simclr_cosines(z, z, offset=0, symmetric=True)
    got = float(nt_xent_am(cosines.double(), positive, 0.0, tau))
    flat = torch.cat([z[0], z[1]])
    sim = flat @ flat.T / tau
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(6, 12), torch.arange(0, 6)])
    assert got == pytest.approx(float(F.cross_entropy(sim, targets)), rel=1e-12)


@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_closed_form_on_identical_embeddings(n, margin):
    """All cosines 1: L^(S) = log(1 + (2N-2) e^{m/tau}); L = log(1 + (N-1) e^{m/tau}); MoCo: log(1 + K e^{m/tau})."""
    tau = 0.5
    z = F.normalize(torch.ones(2, n, 4, dtype=torch.float64), dim=-1)
    sym = float(nt_xent_am(*simclr_cosines(z, z, 0, True), margin, tau))
    non = float(nt_xent_am(*simclr_cosines(z, z, 0, False), margin, tau))
    moco = float(nt_xent_am(*moco_cosines(z[0], z[1], z[0].repeat(3, 1)), margin, tau))
    assert sym == pytest.approx(math.log(1 + (2 * n - 2) * math.exp(margin / tau)), rel=1e-12)
    assert non == pytest.approx(math.log(1 + (n - 1) * math.exp(margin / tau)), rel=1e-12)
    assert moco == pytest.approx(math.log(1 + 3 * n * math.exp(margin / tau)), rel=1e-12)


def test_margin_raises_the_loss_and_gradients_are_finite():
    z = _normalised(2, 8, 16, seed=7).float().requires_grad_(True)
    losses = []
    for margin in (0.0, 0.1, 0.5):
        z.grad = None
        loss = nt_xent_am(*simclr_cosines(z, z, 0, True), margin, 1 / 30)
        loss.backward()
        assert torch.isfinite(z.grad).all()
        losses.append(float(loss))
    assert losses[0] < losses[1] < losses[2]


def test_offset_selects_this_process_anchors():
    """A process holding utterances 3..5 of a global batch of 8 gets exactly those anchors' rows."""
    z = _normalised(2, 8, 6, seed=9)
    full, full_pos = simclr_cosines(z, z, 0, True)
    part, part_pos = simclr_cosines(z[:, 3:6], z, 3, True)
    rows = torch.cat([torch.arange(3, 6), torch.arange(11, 14)])
    assert torch.equal(part_pos, full_pos[rows])
    # Same cosines up to fp64 matmul rounding (BLAS blocks a 6-row and a 16-row product differently); the -inf
    # self-similarity mask must sit in the same places, so a wrong offset fails here.
    torch.testing.assert_close(part, full[rows], rtol=0, atol=1e-12)
