"""int16 noise/RIR bank files: bit-identical augmentation, one build per node, file maps, distrust of damaged files."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from study.bench_banks import Float32Banks
from trainables import augment
from trainables.augment import Augmenter, NoiseBank, RirBank
from trainables.bank_file import PCM16_SCALE, BankFileError

SR = 16000
T = 2000


def _pcm16(path: Path, k: np.ndarray, rate: int = SR) -> None:
    """Write int16 samples `k` as 16-bit PCM (WAV or FLAC by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), k.astype(np.int16), rate, subtype="PCM_16")


def _musan(root: Path, seed: int = 0) -> Path:
    """A MUSAN-style folder of 16-bit PCM files; `speech` (700 samples) is shorter than a crop, so it wraps."""
    rng = np.random.default_rng(seed)
    _pcm16(root / "noise" / "a" / "n1.wav", rng.integers(-30000, 30000, 3000))
    _pcm16(root / "noise" / "n2.flac", rng.integers(-2000, 2000, 5000))
    _pcm16(root / "speech" / "s1.flac", rng.integers(-9000, 9000, 700))
    _pcm16(root / "music" / "m1.wav", (20000 * np.sin(np.arange(9000) * 0.05)).astype(np.int16))
    return root


def _rirs(root: Path, seed: int = 1) -> Path:
    """16-bit PCM RIRs of different lengths and direct-path delays (one with its peak at sample 0)."""
    rng = np.random.default_rng(seed)
    for i, (n, delay) in enumerate([(800, 10), (1500, 90), (400, 0), (1200, 33)]):
        h = np.zeros(n)
        h[delay] = 20000
        h[delay + 1 :] = 5000 * rng.standard_normal(n - delay - 1) * np.exp(-np.arange(n - delay - 1) / (n / 6))
        _pcm16(root / f"room{i % 2}" / f"r{i}.wav", np.clip(np.rint(h), -32768, 32767))
    return root


def _speech(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, length, generator=g)  # (B, T)


def _mapped_file(tensor: torch.Tensor) -> str | None:
    """The file whose mapping (in /proc/self/maps) holds the tensor's memory, else None."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) == 6 else None
    return None


def _counting_loads(monkeypatch) -> list[Path]:
    """Record every file `augment._load_mono` decodes."""
    calls, original = [], augment._load_mono

    def counted(path, *args):
        calls.append(path)
        return original(path, *args)

    monkeypatch.setattr(augment, "_load_mono", counted)
    return calls


@pytest.mark.parametrize("noise_prob, reverb_prob", [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.5)])
def test_int16_banks_augment_bit_identically_to_float32_banks(tmp_path, noise_prob, reverb_prob):
    noise_dir, rir_dir = _musan(tmp_path / "musan"), _rirs(tmp_path / "rirs")
    noise = NoiseBank.from_dir(noise_dir, SR, cache_dir=tmp_path / "cache")
    rirs = RirBank.from_dir(rir_dir, SR, cache_dir=tmp_path / "cache")
    assert noise.scale == PCM16_SCALE and rirs.scales.tolist() == [PCM16_SCALE] * 4
    reference = Float32Banks.from_dir(noise_dir, rir_dir, SR, "cpu")
    aug = Augmenter(noise, rirs, noise_prob, reverb_prob)
    x = _speech(48, T)
    for seed in range(3):
        draws = aug.draw(48, T, torch.Generator().manual_seed(seed))
        out = aug.apply(x, draws)
        assert torch.equal(out, reference.apply(x, draws))
        assert torch.equal(aug(x, torch.Generator().manual_seed(seed)), out)
    if noise_prob:  # the short speech category (700 < T samples) was drawn, so crops wrapped
        assert bool((draws.noise_mask & (draws.category == noise.categories.index("speech"))).any())
    assert torch.equal(rirs.peaks, reference.peaks)
    assert torch.equal(rirs.rows(torch.arange(4), "cpu"), reference.rirs)


def test_bank_file_is_built_once_and_reopened_without_decoding(tmp_path, monkeypatch):
    noise_dir, rir_dir, cache = _musan(tmp_path / "musan"), _rirs(tmp_path / "rirs"), tmp_path / "cache"
    calls = _counting_loads(monkeypatch)
    first = NoiseBank.from_dir(noise_dir, SR, cache_dir=cache)
    RirBank.from_dir(rir_dir, SR, cache_dir=cache)
    assert len(calls) == 4 + 4  # every noise file and every RIR decoded once (16-bit PCM: one pass)
    again = NoiseBank.from_dir(noise_dir, SR, cache_dir=cache)
    rirs = RirBank.from_dir(rir_dir, SR, cache_dir=cache)
    assert len(calls) == 8, "reopening decoded audio"
    assert again.path == first.path and torch.equal(again.samples, first.samples)
    assert sorted(p.suffix for p in (cache / "banks").iterdir()) == [".bank", ".bank", ".lock", ".lock"]

    _pcm16(noise_dir / "noise" / "n2.flac", np.zeros(100, np.int16))  # the folder changed: a new bank
    changed = NoiseBank.from_dir(noise_dir, SR, cache_dir=cache)
    assert len(calls) == 12 and changed.path != first.path
    assert changed.samples.numel() == first.samples.numel() - 4900
    assert sorted(p.name for p in (cache / "banks").glob("noise-*.bank")) == [changed.path.name]  # stale one gone
    assert torch.equal(again.samples[:100], first.samples[:100])  # still mapped after the unlink
    assert _mapped_file(rirs.rirs) == str(rirs.path)


def test_bank_arrays_are_the_file_map_and_stay_on_the_host(tmp_path):
    noise = NoiseBank.from_dir(_musan(tmp_path / "musan"), SR, cache_dir=tmp_path / "cache")
    rirs = RirBank.from_dir(_rirs(tmp_path / "rirs"), SR, cache_dir=tmp_path / "cache")
    assert _mapped_file(noise.samples) == str(noise.path)
    for array in (rirs.rirs, rirs.scales, rirs.norms, rirs.peaks, rirs.lengths):
        assert _mapped_file(array) == str(rirs.path)
    assert noise.samples.dtype == rirs.rirs.dtype == torch.int16
    moved = Augmenter(noise, rirs, 1.0, 1.0).to("cpu")
    assert moved.noise.samples.data_ptr() == noise.samples.data_ptr()
    assert moved.rirs.rirs.data_ptr() == rirs.rirs.data_ptr()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_nothing_of_the_bank_stays_on_the_device(tmp_path):
    noise_dir, rir_dir = _musan(tmp_path / "musan"), _rirs(tmp_path / "rirs")
    cuda = torch.device("cuda")
    before = torch.cuda.memory_allocated(cuda)
    aug = Augmenter(NoiseBank.from_dir(noise_dir, SR, cache_dir=tmp_path / "cache"),
                    RirBank.from_dir(rir_dir, SR, cache_dir=tmp_path / "cache"), 1.0, 1.0).to(cuda)
    assert torch.cuda.memory_allocated(cuda) == before
    x = _speech(48, T).to(cuda)
    draws = aug.draw(48, T, torch.Generator().manual_seed(0))
    out = aug.apply(x, draws)
    reference = Float32Banks.from_dir(noise_dir, rir_dir, SR, cuda)
    assert out.device.type == "cuda" and torch.equal(out, reference.apply(x, draws))
    del out, reference
    assert torch.cuda.memory_allocated(cuda) == before + x.nbytes


def _open_in_child(noise_dir, cache, barrier, log, results):
    """Child process: decode slowly (logging each decode) and open the bank at the same time as its sibling."""
    original = augment._load_mono

    def logged(path, *args):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {path}\n")
        time.sleep(0.1)
        return original(path, *args)

    augment._load_mono = logged
    barrier.wait()
    bank = NoiseBank.from_dir(noise_dir, SR, cache_dir=cache)
    results.put((str(bank.path), bank.samples.numpy().tobytes(), _mapped_file(bank.samples)))


def test_two_processes_opening_at_once_build_one_bank(tmp_path):
    noise_dir, cache, log = _musan(tmp_path / "musan"), tmp_path / "cache", tmp_path / "decodes.log"
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_open_in_child, args=(noise_dir, cache, barrier, log, results)) for _ in range(2)]
    for child in children:
        child.start()
    got = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    decodes = log.read_text().splitlines()
    assert len(decodes) == 4 and len({line.split()[0] for line in decodes}) == 1  # one build, by one process
    (path_a, bytes_a, mapped_a), (path_b, bytes_b, mapped_b) = got
    assert path_a == path_b == mapped_a == mapped_b and bytes_a == bytes_b
    assert [p.name for p in (cache / "banks").iterdir() if p.suffix == ".tmp"] == []


@pytest.mark.parametrize("damage", ["truncate", "tail", "payload", "garbage"])
def test_a_damaged_bank_file_is_rebuilt_not_trusted(tmp_path, monkeypatch, damage):
    noise_dir, cache = _musan(tmp_path / "musan"), tmp_path / "cache"
    calls = _counting_loads(monkeypatch)
    good = NoiseBank.from_dir(noise_dir, SR, cache_dir=cache)
    expected, path = good.samples.clone(), good.path
    del good
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "tail":
        data[-40:-20] = b"x" * 20  # inside the JSON header
    elif damage == "payload":
        data[70:90] = bytes(20)  # the first samples (covered by the sampled digest)
    else:
        data = bytearray(b"not a bank at all")
    path.write_bytes(bytes(data))
    rebuilt = NoiseBank.from_dir(noise_dir, SR, cache_dir=cache)
    assert len(calls) == 8, "the damaged file was trusted"
    assert torch.equal(rebuilt.samples, expected)


def test_an_unwritable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(BankFileError, match=r"cannot build the augmentation bank .*MARGIN_STUDY_CACHE"):
        NoiseBank.from_dir(_musan(tmp_path / "musan"), SR, cache_dir=blocker)


def test_float_and_resampled_sources_are_rounded_to_16_bits_without_clipping(tmp_path):
    rng = np.random.default_rng(3)
    loud = 1.7 * np.sin(np.arange(4000) * 0.01)  # a float WAV beyond full scale
    (tmp_path / "noise").mkdir()
    sf.write(str(tmp_path / "noise" / "f.wav"), loud.astype(np.float32), SR, subtype="FLOAT")
    _pcm16(tmp_path / "noise" / "g.wav", rng.integers(-1000, 1000, 1000), rate=8000)  # resampled
    bank = NoiseBank.from_dir(tmp_path, SR, cache_dir=tmp_path / "cache")
    reference = Float32Banks.from_dir(tmp_path, None, SR, "cpu").waveform
    peak = float(reference.abs().max())
    assert bank.scale == pytest.approx(peak / 32767, rel=1e-6)
    error = (bank.samples.double() * bank.scale - reference.double()).abs().max()  # (N,) -> ()
    assert float(error) <= bank.scale / 2 * (1 + 1e-9)

    rir = np.zeros(600, np.float32)
    rir[40], rir[41:] = 0.9, 0.2 * rng.standard_normal(559).astype(np.float32)
    (tmp_path / "rirdir").mkdir()
    sf.write(str(tmp_path / "rirdir" / "rir.wav"), rir, SR, subtype="FLOAT")
    rirs = RirBank.from_dir(tmp_path / "rirdir", SR, cache_dir=tmp_path / "cache")
    row = rirs.rows(torch.tensor([0]), "cpu")[0]
    torch.testing.assert_close(row.norm(), torch.tensor(1.0))
    torch.testing.assert_close(row, torch.from_numpy(rir / np.linalg.norm(rir)), atol=1e-4, rtol=0)
    assert int(rirs.peaks[0]) == 40
