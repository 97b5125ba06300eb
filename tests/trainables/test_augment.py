"""Batched noise + reverberation augmentation: SNR, convolution reference, probabilities, determinism, loading."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from trainables.audio import AudioError, audio_files
from trainables.augment import MUSAN_SNR_DB, Augmenter, NoiseBank, RirBank
from trainables.corpus import CACHE_ENV

SR = 16000
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _speech(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Speech-like test signals (B, T): noise bursts under a slow envelope, distinct per row."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / SR
    envelope = 0.5 + 0.5 * torch.sin(2 * torch.pi * (1.0 + torch.rand(batch, 1, generator=g)) * t)  # (B, T)
    return 0.1 * envelope * torch.randn(batch, length, generator=g)


def _write(path: Path, wave: np.ndarray, rate: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave.astype(np.float32), rate, subtype="FLOAT" if path.suffix == ".wav" else "PCM_16")


def _rir(length: int, delay: int, seed: int) -> np.ndarray:
    """A synthetic RIR: a direct-path spike after `delay` samples, then a decaying tail."""
    rng = np.random.default_rng(seed)
    h = np.zeros(length)
    h[delay] = 1.0
    tail = np.arange(length - delay - 1)
    h[delay + 1 :] = 0.3 * rng.standard_normal(tail.size) * np.exp(-tail / (length / 6))
    return h


@pytest.fixture(autouse=True)
def bank_cache(tmp_path, monkeypatch):
    """Bank files of `from_dir` go to a per-test cache folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture
def banks() -> tuple[NoiseBank, RirBank]:
    g = torch.Generator().manual_seed(1)
    clips = {
        "noise": [torch.randn(3000, generator=g), 0.2 * torch.randn(5000, generator=g)],
        "speech": [torch.randn(700, generator=g)],  # shorter than a crop: wraps
        "music": [torch.sin(torch.arange(9000) * 0.05) + 0.1 * torch.randn(9000, generator=g)],
    }
    rirs = [torch.from_numpy(_rir(n, d, s)).float() for n, d, s in [(800, 10, 0), (1500, 90, 1), (400, 0, 2)]]
    return NoiseBank(clips, SR), RirBank(rirs, SR)


def test_noise_reaches_drawn_snr_in_category_range(banks):
    noise, _ = banks
    aug = Augmenter(noise, None, noise_prob=1.0, reverb_prob=0.0)
    x = _speech(64, 2000)
    draws = aug.draw(64, 2000, torch.Generator().manual_seed(3))
    out = aug.apply(x, draws)
    added = (out - x).double()
    achieved = 10 * torch.log10(x.double().pow(2).mean(1) / added.pow(2).mean(1))
    torch.testing.assert_close(achieved, draws.snr_db, atol=0.01, rtol=0)
    assert set(draws.category.tolist()) == {0, 1, 2}
    for i, name in enumerate(noise.categories):
        low, high = MUSAN_SNR_DB[name]
        snr = draws.snr_db[draws.category == i]
        assert bool(((snr >= low) & (snr <= high)).all()), name


def test_added_noise_is_the_drawn_crop_of_its_category(banks):
    noise, _ = banks
    aug = Augmenter(noise, None, noise_prob=1.0, reverb_prob=0.0)
    x = _speech(32, 2000)
    draws = aug.draw(32, 2000, torch.Generator().manual_seed(4))
    added = (aug.apply(x, draws) - x).double()
    for b in range(32):
        cat = noise.category(noise.categories[int(draws.category[b])]).double()
        crop = cat[(int(draws.noise_start[b]) + torch.arange(2000)) % cat.numel()]
        gain = (added[b] @ crop) / (crop @ crop)
        torch.testing.assert_close(added[b], gain * crop, atol=1e-5, rtol=0)
        assert gain > 0


def test_reverberation_matches_numpy_convolve_peak_aligned(banks):
    _, rirs = banks
    aug = Augmenter(None, rirs, noise_prob=0.0, reverb_prob=1.0)
    x = _speech(12, 3000)
    draws = aug.draw(12, 3000, torch.Generator().manual_seed(5))
    out = aug.apply(x, draws)
    assert set(draws.rir_index.tolist()) == {0, 1, 2}
    for b in range(12):
        r = int(draws.rir_index[b])
        h = rirs.rows(torch.tensor([r]), "cpu")[0, : int(rirs.lengths[r])].double().numpy()
        peak = int(np.argmax(np.abs(h)))
        ref = np.convolve(x[b].double().numpy(), h)[peak : peak + 3000]
        np.testing.assert_allclose(out[b].numpy(), ref, atol=1e-4, rtol=0)


def test_rir_bank_normalises_and_finds_direct_path(banks):
    _, rirs = banks
    assert rirs.rirs.shape == (3, 1500)
    torch.testing.assert_close(rirs.rows(torch.arange(3), "cpu").norm(dim=1), torch.ones(3))
    assert rirs.peaks.tolist() == [10, 90, 0]


@pytest.mark.parametrize("noise_prob, reverb_prob", [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_probability_zero_is_identity_and_one_changes_every_sample(banks, noise_prob, reverb_prob):
    aug = Augmenter(*banks, noise_prob=noise_prob, reverb_prob=reverb_prob)
    x = _speech(16, 2000)
    before = x.clone()
    out = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(x, before), "input modified in place"
    changed = (out != x).any(dim=1)
    if noise_prob == reverb_prob == 0.0:
        assert torch.equal(out, x)
    else:
        assert bool(changed.all())


def test_unselected_samples_come_back_bit_identical(banks):
    aug = Augmenter(*banks, noise_prob=0.5, reverb_prob=0.5)
    x = _speech(64, 2000)
    draws = aug.draw(64, 2000, torch.Generator().manual_seed(7))
    out = aug.apply(x, draws)
    selected = draws.noise_mask | draws.reverb_mask
    assert 0 < int(draws.noise_mask.sum()) < 64 and 0 < int(draws.reverb_mask.sum()) < 64
    assert bool((draws.noise_mask != draws.reverb_mask).any()), "masks must be drawn independently"
    assert torch.equal(out[~selected], x[~selected])
    assert bool((out[selected] != x[selected]).any(dim=1).all())


def test_same_seed_same_output_different_seed_different(banks):
    aug = Augmenter(*banks, noise_prob=1.0, reverb_prob=1.0)
    x = _speech(8, 2000)
    a = aug(x, torch.Generator().manual_seed(11))
    b = aug(x, torch.Generator().manual_seed(11))
    c = aug(x, torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_rejects_bad_arguments(banks):
    noise, rirs = banks
    with pytest.raises(ValueError, match="noise_prob"):
        Augmenter(None, rirs, noise_prob=0.5, reverb_prob=0.0)
    with pytest.raises(ValueError, match="reverb_prob"):
        Augmenter(noise, rirs, noise_prob=0.5, reverb_prob=1.5)


def test_musan_layout_gives_three_categories_with_their_ranges(tmp_path):
    rng = np.random.default_rng(0)
    _write(tmp_path / "noise" / "free-sound" / "n1.wav", rng.standard_normal(1600))
    _write(tmp_path / "noise" / "n2.flac", 0.5 * rng.standard_normal(800))
    _write(tmp_path / "speech" / "librivox" / "s1.flac", 0.5 * rng.standard_normal(1200))
    _write(tmp_path / "music" / "m1.wav", rng.standard_normal(2000))
    _write(tmp_path / "music" / "m2.wav", rng.standard_normal(4000), rate=8000)  # resampled to 16 kHz
    (tmp_path / "README").write_text("not audio")
    bank = NoiseBank.from_dir(tmp_path, SR, max_seconds_per_file=0.2)  # 3200 samples at most per file
    assert bank.categories == ("noise", "speech", "music")
    assert bank.snr_db == {"noise": (0.0, 15.0), "speech": (13.0, 20.0), "music": (5.0, 15.0)}
    assert bank.category("noise").numel() == 1600 + 800
    assert bank.file_offsets["noise"].tolist() == [0, 1600]  # sorted paths: free-sound/n1.wav, n2.flac
    assert bank.category("speech").numel() == 1200
    assert bank.category("music").numel() == 2000 + 3200  # 8 kHz file: 1600 frames kept, then x2
    assert bank.samples.numel() == 2400 + 1200 + 5200


def test_flat_layout_is_noise_only_and_empty_folders_raise(tmp_path):
    flat = tmp_path / "flat"
    _write(flat / "a.wav", np.ones(500))
    _write(flat / "deeper" / "b.flac", np.zeros(300))
    bank = NoiseBank.from_dir(flat, SR)
    assert bank.categories == ("noise",)
    assert bank.snr_db == {"noise": (0.0, 15.0)}
    assert bank.samples.numel() == 800

    empty = tmp_path / "empty_noise_dir"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty_noise_dir"):
        NoiseBank.from_dir(empty, SR)
    with pytest.raises(ValueError, match="empty_noise_dir"):
        RirBank.from_dir(empty, SR)
    with pytest.raises(ValueError, match="missing_dir"):
        NoiseBank.from_dir(tmp_path / "missing_dir", SR)

    musan = tmp_path / "musan"
    _write(musan / "noise" / "n.wav", np.ones(100))
    (musan / "music").mkdir()
    with pytest.raises(ValueError, match="music"):
        NoiseBank.from_dir(musan, SR)


def test_rir_folder_loads_truncates_and_normalises(tmp_path):
    _write(tmp_path / "room" / "a.wav", 0.5 * _rir(4000, 20, 0))
    _write(tmp_path / "b.flac", 0.3 * _rir(1000, 5, 1))
    bank = RirBank.from_dir(tmp_path, SR, max_seconds=0.125)  # 2000 samples
    assert bank.rirs.shape == (2, 2000)
    assert bank.lengths.tolist() == [1000, 2000]  # sorted: b.flac, room/a.wav
    assert bank.peaks.tolist() == [5, 20]
    torch.testing.assert_close(bank.rows(torch.arange(2), "cpu").norm(dim=1), torch.ones(2))


def test_banks_take_every_wav_and_flac_below_the_folder_in_path_order(tmp_path):
    for name in ("b/x.WAV", "a-b/y.flac", "a/z.wav", "a/notes.txt", "a/sub.wav/k.flac"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    expected = ["a/sub.wav/k.flac", "a/z.wav", "a-b/y.flac", "b/x.WAV"]  # by path components: "a" before "a-b"
    assert audio_files(tmp_path) == [tmp_path / name for name in expected]


@pytest.mark.skipif(
    not ((DATA / "noise").is_dir() and (DATA / "rir").is_dir()),
    reason=f"real noise/RIR data not found under {DATA} (shared/data/noise and shared/data/rir)",
)
def test_real_banks_augment_a_batch():
    noise = NoiseBank.from_dir(DATA / "noise", SR)
    rirs = RirBank.from_dir(DATA / "rir", SR)
    assert noise.categories == ("noise",) and rirs.rirs.shape[0] >= 10
    aug = Augmenter(noise, rirs, noise_prob=1.0, reverb_prob=1.0)
    x = _speech(8, 32000)
    start = time.perf_counter()
    out = aug(x, torch.Generator().manual_seed(0))
    assert time.perf_counter() - start < 5.0
    assert out.shape == x.shape and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())
    assert bool((out != x).any(dim=1).all())


def test_a_noise_or_rir_file_with_non_finite_samples_is_refused_by_name(tmp_path):
    for kind, name in ((NoiseBank, "noise"), (RirBank, "rir")):
        folder = tmp_path / name
        folder.mkdir()
        sf.write(folder / "good.wav", np.full(1600, 0.1, np.float32), 16000, subtype="FLOAT")
        bad = np.full(1600, 0.1, np.float32)
        bad[10] = np.nan
        sf.write(folder / "bad.wav", bad, 16000, subtype="FLOAT")
        with pytest.raises(AudioError, match=r"bad\.wav: 1 non-finite"):
            kind.from_dir(folder, 16000)
