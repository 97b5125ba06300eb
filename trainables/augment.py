"""Batched waveform augmentation on the training device: additive noise, then reverberation.

Paper A (paper.md section 3.1, "Augmentation"): each segment gets one MUSAN addition (category picked
uniformly; SNR uniform in noise 0-15, speech 13-20, music 5-15 dB), then convolution with a random,
energy-normalised simulated RIR. Everything here is tensor ops over the whole batch on whatever device the
waves live on; the only per-item Python work is a loop over the (at most three) noise categories at load time.

The banks live on the host as int16 (2 bytes per sample), memory-mapped from one file per node that the first
process builds (`trainables.bank_file`); a step gathers only its noise crops and RIR rows there and moves them
to the waves' device, so nothing of a bank stays on the device. With 16-bit PCM sources at the target rate the
int16 bank is lossless: the augmentation is bit-identical to one from float32 banks of the same files.

Reverberation alignment: the output is the full convolution shifted by the RIR's peak index p = argmax|h|,
y[t] = (x * h)[t + p] for t < T (the convention of Kaldi's wav-reverberate), so the direct path lands on the
original sample and the reverberant crop stays time-aligned with the clean one. The paper-era sslsv code keeps
the first T samples instead (a delay of p samples, 5-50 ms for the bundled RIRs); the difference is a shift.

Random draws come from a CPU `torch.Generator` and are moved to the device, so a seed reproduces a batch
exactly on any device.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from trainables.audio import AudioError, audio_files
from trainables.bank_file import (
    PCM16_SCALE,
    BankWriter,
    cache_key,
    int16_scale,
    is_pcm16,
    open_or_build,
    to_int16,
)
from trainables.corpus import default_cache_dir

MUSAN_SNR_DB: dict[str, tuple[float, float]] = {
    "noise": (0.0, 15.0),
    "speech": (13.0, 20.0),
    "music": (5.0, 15.0),
}
"""Paper A's SNR range (dB) per MUSAN category; the order is the category order of a MUSAN-style bank."""

NOISE_POWER_EPS = 1e-12
"""Added to the noise power so an all-zero noise crop scales to zero instead of dividing by zero."""


def _load_mono(path: Path, sample_rate: int, max_seconds: float | None) -> Tensor:
    """One file as a mono float32 (N,) tensor at `sample_rate`, keeping at most `max_seconds` of it."""
    file_rate = sf.info(str(path)).samplerate
    frames = -1 if max_seconds is None else max(1, int(round(max_seconds * file_rate)))
    data, _ = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)  # (N, channels)
    if not np.isfinite(data).all():
        raise AudioError(str(path), f"{int(np.sum(~np.isfinite(data)))} non-finite (nan/inf) samples")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))  # (N,)
    if file_rate != sample_rate:
        wave = AF.resample(wave, file_rate, sample_rate)
    return wave


def _next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n (2^a 3^b 5^c): a size the FFT libraries handle at full speed."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35
            while size < n:
                size *= 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


class NoiseBank:
    """Additive-noise clips grouped by category, held on the host as int16 (`trainables.bank_file`).

    All categories sit back to back in `samples` (N,) int16, sample values `samples * scale`; `spans[i] =
    (start, length)` locates category `categories[i]` in it and `file_offsets[name]` gives where each of its files
    starts within the category, so a batch of random crops is a single gather. From `from_dir`, `samples` is a
    read-only map of the node's bank file (one copy per node in the page cache, shared by every process); only a
    step's crops move to the training device (`Augmenter.noise_crops`).
    """

    path: Path | None = None
    """The bank file `samples` maps (None for an in-memory bank)."""

    def __init__(
        self,
        clips: Mapping[str, Sequence[Tensor]],
        sample_rate: int,
        snr_db: Mapping[str, tuple[float, float]] | None = None,
    ):
        """In memory: `clips`: category name -> 1-D float waveforms; `snr_db`: name -> (low, high), default
        `MUSAN_SNR_DB`. Stored losslessly when every sample is k / 32768, else rounded to 16 bits."""
        if not clips:
            raise ValueError("NoiseBank needs at least one category")
        flat = [np.asarray(w.reshape(-1).float().cpu()) for waves in clips.values() for w in waves]
        joined = np.concatenate(flat) if flat else np.zeros(0, np.float32)  # (N,)
        scale = int16_scale(is_pcm16(joined), float(np.abs(joined).max(initial=0.0)))
        lengths = {name: [int(w.numel()) for w in waves] for name, waves in clips.items()}
        self._init(to_int16(joined, scale), scale, lengths, sample_rate, snr_db)

    def _init(self, samples: np.ndarray, scale: float, lengths: Mapping[str, Sequence[int]], sample_rate: int,
              snr_db: Mapping[str, tuple[float, float]] | None) -> None:
        ranges = MUSAN_SNR_DB if snr_db is None else snr_db
        spans, offsets, start = [], {}, 0
        for name, sizes in lengths.items():
            if name not in ranges:
                raise ValueError(f"no SNR range for noise category {name!r}")
            if sum(sizes) == 0:
                raise ValueError(f"noise category {name!r} has no samples")
            offsets[name] = torch.tensor([0] + list(sizes[:-1]), dtype=torch.int64).cumsum(0)
            spans.append((start, sum(sizes)))
            start += sum(sizes)
        self.sample_rate = int(sample_rate)
        self.categories: tuple[str, ...] = tuple(lengths)
        self.snr_db: dict[str, tuple[float, float]] = {
            c: (float(ranges[c][0]), float(ranges[c][1])) for c in self.categories
        }
        self.spans: tuple[tuple[int, int], ...] = tuple(spans)
        self.file_offsets: dict[str, Tensor] = offsets
        self.samples = _host(samples)  # (N,) int16, no copy of a mapped file
        self.scale = float(scale)

    @classmethod
    def from_dir(
        cls,
        root: str | Path,
        sample_rate: int,
        max_seconds_per_file: float | None = None,
        cache_dir: str | Path | None = None,
    ) -> NoiseBank:
        """Load a MUSAN-style folder (`noise/`, `speech/`, `music/` subfolders) or a flat one (all 'noise') from
        its bank file under `cache_dir` (default `default_cache_dir()`)/banks, building that file first if needed."""
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"noise folder {root} does not exist")
        present = [c for c in MUSAN_SNR_DB if (root / c).is_dir()]
        folders = {c: root / c for c in present} if present else {"noise": root}
        files = {}
        for name, folder in folders.items():
            files[name] = audio_files(folder)
            if not files[name]:
                raise ValueError(f"noise folder {folder} has no .wav/.flac files")
        every = [f for group in files.values() for f in group]
        key = cache_key("noise", root, every, sample_rate=int(sample_rate), max_seconds=max_seconds_per_file,
                        categories=list(files))
        bank = open_or_build(_banks_dir(cache_dir), key,
                             lambda writer: _write_noise(writer, files, int(sample_rate), max_seconds_per_file))
        out = cls.__new__(cls)
        out._init(bank.arrays["samples"], bank.meta["scale"], dict(bank.meta["lengths"]), sample_rate, None)
        out.path = bank.path
        return out

    def category(self, name: str) -> Tensor:
        """The concatenated waveform (N_c,) of one category as float32 (a copy)."""
        start, length = self.spans[self.categories.index(name)]
        return self.samples[start : start + length].float() * self.scale


class RirBank:
    """Room impulse responses on the host: raw int16 rows zero-padded into `rirs` (R, L), each with its own
    dequantisation factor `scales` (R,) and the L2 norm `norms` (R,) of its dequantised row, so `rows` gives the
    energy-normalised (unit L2 norm) float32 responses exactly; `peaks` (R,) is each one's direct-path index.
    From `from_dir` every array is a read-only map of the node's bank file."""

    path: Path | None = None
    """The bank file the arrays map (None for an in-memory bank)."""

    def __init__(self, rirs: Sequence[Tensor], sample_rate: int):
        """In memory: `rirs`: 1-D impulse responses at `sample_rate`."""
        if len(rirs) == 0:
            raise ValueError("RirBank needs at least one RIR")
        rows = [_rir_row(np.asarray(r.reshape(-1).float().cpu())) for r in rirs]
        zero = [i for i, row in enumerate(rows) if row[2] == 0]
        if zero:
            raise ValueError(f"RIR {zero[0]} is all zeros")
        width = max(row[0].size for row in rows)
        padded = np.zeros((len(rows), width), np.int16)  # (R, L)
        for i, row in enumerate(rows):
            padded[i, : row[0].size] = row[0]
        self._init(padded, *(np.array([row[k] for row in rows], dtype) for k, dtype in
                             ((1, np.float32), (2, np.float32), (3, np.int64))),
                   np.array([row[0].size for row in rows], np.int64), sample_rate)

    def _init(self, rirs: np.ndarray, scales: np.ndarray, norms: np.ndarray, peaks: np.ndarray,
              lengths: np.ndarray, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self.rirs = _host(rirs)  # (R, L) int16
        self.scales, self.norms = _host(scales), _host(norms)  # (R,) float32
        self.peaks, self.lengths = _host(peaks), _host(lengths)  # (R,) int64

    @classmethod
    def from_dir(
        cls,
        root: str | Path,
        sample_rate: int,
        max_seconds: float = 1.5,
        cache_dir: str | Path | None = None,
    ) -> RirBank:
        """Every *.wav / *.flac under `root` (recursive), each truncated to `max_seconds`, from its bank file
        under `cache_dir` (default `default_cache_dir()`)/banks, building that file first if needed."""
        root = Path(root)
        files = audio_files(root) if root.is_dir() else []
        if not files:
            raise ValueError(f"RIR folder {root} has no .wav/.flac files")
        key = cache_key("rir", root, files, sample_rate=int(sample_rate), max_seconds=max_seconds)
        bank = open_or_build(_banks_dir(cache_dir), key,
                             lambda writer: _write_rirs(writer, files, int(sample_rate), max_seconds))
        out = cls.__new__(cls)
        a = bank.arrays
        out._init(a["rirs"], a["scales"], a["norms"], a["peaks"], a["lengths"], sample_rate)
        out.path = bank.path
        return out

    def rows(self, index: Tensor, device: str | torch.device) -> Tensor:
        """The energy-normalised float32 RIRs (S, L) of CPU row indices `index` (S,), gathered on the host as
        int16 and dequantised on `device`."""
        raw = self.rirs[index].to(device).float() * self.scales[index].to(device)[:, None]  # (S, L)
        return raw / self.norms[index].to(device)[:, None]  # (S, L)


_PCM16_SUBTYPES = ("PCM_16", "PCM_S8", "PCM_U8")
"""Sample formats libsndfile decodes to exact multiples of 1 / 32768."""


def _banks_dir(cache_dir: str | Path | None) -> Path:
    return (default_cache_dir() if cache_dir is None else Path(cache_dir)) / "banks"


def _host(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing `array`'s memory (a read-only file map stays one, never copied)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _lossless_source(path: Path, sample_rate: int) -> bool:
    """Whether a file decodes to exact k / 32768 mono samples at `sample_rate` (16-bit or 8-bit PCM, mono)."""
    info = sf.info(str(path))
    return info.subtype in _PCM16_SUBTYPES and info.channels == 1 and info.samplerate == sample_rate


def _write_noise(writer: BankWriter, files: Mapping[str, Sequence[Path]], sample_rate: int,
                 max_seconds: float | None) -> dict:
    """Decode every file into the bank's `samples` (categories back to back); returns the bank's metadata.

    One pass when every source is 16-bit PCM mono at `sample_rate` (lossless, scale 1/32768). Otherwise a first
    pass finds the peak (and whether all values happen to be k / 32768) and one shared scale keeps every file's
    level relative to the others: a crop can span two files, and its gain is computed from the whole crop."""
    every = [f for group in files.values() for f in group]
    scale = PCM16_SCALE
    if not all(_lossless_source(f, sample_rate) for f in every):
        peak, exact = 0.0, True
        for f in every:
            x = _load_mono(f, sample_rate, max_seconds).numpy()
            peak, exact = max(peak, float(np.abs(x).max(initial=0.0))), exact and is_pcm16(x)
        scale = int16_scale(exact, peak)
    lengths: dict[str, list[int]] = {name: [] for name in files}

    def chunks():
        for name, group in files.items():
            for f in group:
                x = _load_mono(f, sample_rate, max_seconds).numpy()
                lengths[name].append(int(x.size))
                yield to_int16(x, scale)

    writer.add("samples", chunks(), np.int16)
    return {"scale": scale, "lengths": list(lengths.items()), "sample_rate": sample_rate}  # a list keeps the order


def _rir_row(x: np.ndarray) -> tuple[np.ndarray, float, float, int]:
    """One RIR as (int16 row, its scale, the L2 norm of the dequantised row, the peak of the normalised row)."""
    scale = int16_scale(is_pcm16(x), float(np.abs(x).max(initial=0.0)))
    row = to_int16(x, scale)
    raw = torch.from_numpy(row).float() * torch.tensor([scale], dtype=torch.float32)  # (n,) as `RirBank.rows`
    norm = raw.norm()
    peak = int((raw / norm).abs().argmax()) if float(norm) > 0 else 0
    return row, scale, float(norm), peak


def _write_rirs(writer: BankWriter, files: Sequence[Path], sample_rate: int, max_seconds: float) -> dict:
    """Decode every RIR (held as int16 in memory while the bank is written) into the bank's arrays."""
    rows = []
    for f in files:
        rows.append(_rir_row(_load_mono(f, sample_rate, max_seconds).numpy()))
        if rows[-1][2] == 0:
            raise AudioError(str(f), "all zeros: not an impulse response")
    width = max(row[0].size for row in rows)

    def padded():
        for row in rows:
            out = np.zeros((1, width), np.int16)  # (1, L)
            out[0, : row[0].size] = row[0]
            yield out

    writer.add("rirs", padded(), np.int16, (width,))
    for k, (name, dtype) in enumerate((("scales", np.float32), ("norms", np.float32), ("peaks", np.int64)), start=1):
        writer.add(name, [np.array([row[k] for row in rows], dtype)], dtype)
    writer.add("lengths", [np.array([row[0].size for row in rows], np.int64)], np.int64)
    return {"sample_rate": sample_rate}


@dataclass(frozen=True)
class AugmentDraws:
    """The random choices for one batch of B crops of T samples (CPU tensors)."""

    noise_mask: Tensor
    """(B,) bool: sample gets additive noise."""
    category: Tensor
    """(B,) int64: index into `NoiseBank.categories`."""
    snr_db: Tensor
    """(B,) float64: target SNR in dB, uniform in the category's range."""
    noise_start: Tensor
    """(B,) int64: crop start within the category's concatenated waveform (wraps when the category < T)."""
    reverb_mask: Tensor
    """(B,) bool: sample gets reverberation."""
    rir_index: Tensor
    """(B,) int64: row of `RirBank.rirs`."""


class Augmenter:
    """Additive noise (probability `noise_prob`), then reverberation (`reverb_prob`), per sample, batched."""

    def __init__(
        self,
        noise: NoiseBank | None,
        rirs: RirBank | None,
        noise_prob: float,
        reverb_prob: float,
    ):
        """A bank may be None only when its probability is 0."""
        for name, p, bank in (("noise_prob", noise_prob, noise), ("reverb_prob", reverb_prob, rirs)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
            if p > 0 and bank is None:
                raise ValueError(f"{name}={p} needs a bank, got None")
        self.noise, self.rirs = noise, rirs
        self.noise_prob, self.reverb_prob = float(noise_prob), float(reverb_prob)

    def to(self, device: str | torch.device) -> Augmenter:
        """A copy (the banks stay on the host: each step moves only its crops and RIRs to the waves' device)."""
        return Augmenter(self.noise, self.rirs, self.noise_prob, self.reverb_prob)

    def draw(self, batch_size: int, length: int, generator: torch.Generator) -> AugmentDraws:
        """Draw every random choice for `batch_size` crops of `length` samples from a CPU generator."""
        if generator.device.type != "cpu":
            raise ValueError("Augmenter draws from a CPU torch.Generator")
        B, g = batch_size, generator
        noise_mask = torch.rand(B, generator=g) < self.noise_prob
        category = torch.zeros(B, dtype=torch.int64)
        snr_db = torch.zeros(B, dtype=torch.float64)
        noise_start = torch.zeros(B, dtype=torch.int64)
        if self.noise is not None:
            bank = self.noise
            category = torch.randint(len(bank.categories), (B,), generator=g)
            ranges = torch.tensor([bank.snr_db[c] for c in bank.categories], dtype=torch.float64)  # (C, 2)
            low, high = ranges[category, 0], ranges[category, 1]  # (B,)
            snr_db = low + (high - low) * torch.rand(B, generator=g, dtype=torch.float64)
            n_c = torch.tensor([n for _, n in bank.spans], dtype=torch.int64)[category]  # (B,)
            choices = torch.where(n_c >= length, n_c - length + 1, n_c)  # valid starts; all starts when wrapping
            noise_start = (torch.rand(B, generator=g, dtype=torch.float64) * choices).long()
        reverb_mask = torch.rand(B, generator=g) < self.reverb_prob
        rir_index = torch.zeros(B, dtype=torch.int64)
        if self.rirs is not None:
            rir_index = torch.randint(self.rirs.rirs.shape[0], (B,), generator=g)
        return AugmentDraws(noise_mask, category, snr_db, noise_start, reverb_mask, rir_index)

    def __call__(self, waves: Tensor, generator: torch.Generator) -> Tensor:
        """Augment `waves` (B, T); samples not selected come back bit-identical."""
        return self.apply(waves, self.draw(waves.shape[0], waves.shape[1], generator))

    def apply(self, waves: Tensor, draws: AugmentDraws) -> Tensor:
        """Apply given draws to `waves` (B, T); returns a new (B, T) tensor, the input is not modified."""
        if waves.dim() != 2:
            raise ValueError(f"waves must be (B, T), got shape {tuple(waves.shape)}")
        out = waves
        noisy = draws.noise_mask.nonzero().squeeze(1)  # (S,) CPU indices: no device sync
        if noisy.numel() > 0:
            idx = noisy.to(waves.device)
            out = out.index_copy(0, idx, self._add_noise(out[idx], draws, noisy))
        reverb = draws.reverb_mask.nonzero().squeeze(1)
        if reverb.numel() > 0:
            idx = reverb.to(waves.device)
            out = out.index_copy(0, idx, self._reverberate(out[idx], draws.rir_index[reverb]))
        return out

    def noise_crops(self, category: Tensor, start: Tensor, length: int, device: torch.device) -> Tensor:
        """Gather (S, length) noise crops for CPU (S,) category indices and starts, wrapping short categories:
        int16 from the host bank, moved to `device` (2 bytes per sample), float32 there."""
        bank = self.noise
        spans = torch.tensor(bank.spans, dtype=torch.int64)  # (C, 2) start, length in `samples`
        if int(spans[category, 1].min()) >= int(start.max()) + length:  # no wrap: plain slices, no index tensor
            first = (spans[category, 0] + start).tolist()
            crops = torch.stack([bank.samples[f : f + length] for f in first])  # (S, T) int16
        else:
            base, n_c = spans[category, 0], spans[category, 1]  # (S,)
            pos = (start[:, None] + torch.arange(length)) % n_c[:, None]  # (S, T)
            crops = bank.samples[base[:, None] + pos]  # (S, T) int16
        return crops.to(device).float() * bank.scale  # (S, T)

    def _add_noise(self, x: Tensor, draws: AugmentDraws, sel: Tensor) -> Tensor:
        """x (S, T) plus noise scaled so that 10 log10(P_x / P_noise) equals the drawn SNR."""
        crops = self.noise_crops(draws.category[sel], draws.noise_start[sel], x.shape[1], x.device).to(x.dtype)
        p_speech = x.pow(2).mean(dim=1)  # (S,)
        p_noise = crops.pow(2).mean(dim=1)  # (S,)
        snr = draws.snr_db[sel].to(device=x.device, dtype=x.dtype)  # (S,)
        gain = torch.sqrt(p_speech / ((p_noise + NOISE_POWER_EPS) * 10.0 ** (snr / 10.0)))  # (S,)
        return x + gain[:, None] * crops  # (S, T)

    def _reverberate(self, x: Tensor, rir_index: Tensor) -> Tensor:
        """x (S, T) convolved with RIRs (FFT), shifted by each RIR's peak index, truncated to T."""
        S, T = x.shape
        h = self.rirs.rows(rir_index, x.device).to(x.dtype)  # (S, L)
        L = h.shape[1]
        n = _next_fast_len(T + L - 1)  # circular convolution of this size equals the linear one on [0, T+L-1)
        # Rotate each RIR left by its peak: output sample t of the circular convolution is then
        # y_linear[t + peak] for t < T (no aliasing since n >= T + L - 1), a plain slice.
        rotated = x.new_zeros(S, n)  # (S, n)
        for row, peak in enumerate(self.rirs.peaks[rir_index].tolist()):
            rotated[row, : L - peak] = h[row, peak:]
            if peak:
                rotated[row, n - peak :] = h[row, :peak]
        full = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(rotated), n=n)  # (S, n)
        return full[:, :T].contiguous()  # (S, T)
