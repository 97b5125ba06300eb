"""Fast ResNet-34 and the log-mel front end."""

import math

import torch

from trainables.encoders import build_encoder
from trainables.features import LogMel


def test_fast_resnet34_shapes_and_size():
    enc = build_encoder("fast_resnet34", n_mels=40, embedding_dim=512).eval()
    out = enc(torch.randn(3, 40, 201))
    assert out.shape == (3, 512)
    params = sum(p.numel() for p in enc.parameters())
    assert 1.2e6 < params < 1.6e6  # Fast ResNet-34 (16-32-64-128) has about 1.4 M parameters
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 2 * (3 + 4 + 6 + 3)


def test_encoder_handles_variable_length():
    enc = build_encoder("fast_resnet34", 40, 64).eval()
    with torch.no_grad():
        assert enc(torch.randn(1, 40, 97)).shape == (1, 64)
        assert enc(torch.randn(1, 40, 1000)).shape == (1, 64)


def test_logmel_frames_and_normalisation():
    fe = LogMel(16000, 40)
    x = torch.randn(2, 32000)
    f = fe(x)
    assert f.shape == (2, 40, 32000 // 160 + 1)
    assert torch.allclose(f.mean(dim=2), torch.zeros(2, 40), atol=1e-4)
    assert torch.allclose(f.std(dim=2, unbiased=False), torch.ones(2, 40), atol=1e-2)


def test_logmel_puts_a_tone_in_the_right_band():
    """A pure tone's log-mel energy peaks in the band whose filter weighs the tone's frequency most.

    Read before the per-utterance normalisation: after it, every band's time-mean is 0 by construction.
    """
    fe = LogMel(16000, 40)
    t = torch.arange(32000) / 16000
    filters = fe.mel.mel_scale.fb  # (n_fft // 2 + 1, n_mels): weight of each FFT bin in each band
    peaks = []
    for hz in (300, 4000):
        energy = fe.log_energies(torch.sin(2 * math.pi * hz * t)[None]).mean(dim=2)[0]  # (n_mels,)
        top = energy.topk(2).values
        assert top[0] - top[1] > 0.5  # a clear peak, not a near-tie: 1.1 nats (300 Hz) and 3.2 nats (4 kHz)
        peaks.append(int(energy.argmax()))
        assert peaks[-1] == int(filters[round(hz * 512 / 16000)].argmax())
    assert peaks[0] < peaks[1]


def test_logmel_is_gain_invariant():
    """Per-utterance normalisation removes a constant gain (up to the 1e-6 floor)."""
    fe = LogMel(16000, 40)
    x = torch.randn(1, 16000)
    assert torch.allclose(fe(x), fe(3.0 * x), atol=1e-3)
