"""Batched waveform augmentation on the training device: additive noise, then reverberation.

Paper A (paper.md section 3.1, "Augmentation"): each segment gets one MUSAN addition (category picked
uniformly; SNR uniform in noise 0-15, speech 13-20, music 5-15 dB), then convolution with a random,
energy-normalised simulated RIR. Everything here is tensor ops over the whole batch on whatever device the
waves live on; the only per-item Python work is a loop over the (at most three) noise categories at load time.

Reverberation alignment: the output is the full convolution shifted by the RIR's peak index p = argmax|h|,
y[t] = (x * h)[t + p] for t < T (the convention of Kaldi's wav-reverberate), so the direct path lands on the
original sample and the reverberant crop stays time-aligned with the clean one. The paper-era sslsv code keeps
the first T samples instead (a delay of p samples, 5-50 ms for the bundled RIRs); the difference is a shift.

Random draws come from a CPU `torch.Generator` and are moved to the device, so a seed reproduces a batch
exactly on any device.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from trainables.audio import AudioError, audio_files

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
    """Additive-noise clips grouped by category; each category is one concatenated 1-D tensor.

    All categories sit back to back in `waveform` (N,); `spans[i] = (start, length)` locates category
    `categories[i]` in it and `file_offsets[name]` gives where each of its files starts within the category,
    so a batch of random crops is a single gather.
    """

    def __init__(
        self,
        clips: Mapping[str, Sequence[Tensor]],
        sample_rate: int,
        snr_db: Mapping[str, tuple[float, float]] | None = None,
        device: str | torch.device = "cpu",
    ):
        """`clips`: category name -> 1-D waveforms; `snr_db`: name -> (low, high), default `MUSAN_SNR_DB`."""
        ranges = MUSAN_SNR_DB if snr_db is None else snr_db
        if not clips:
            raise ValueError("NoiseBank needs at least one category")
        parts, spans, offsets, start = [], [], {}, 0
        for name, waves in clips.items():
            if name not in ranges:
                raise ValueError(f"no SNR range for noise category {name!r}")
            lengths = [int(w.numel()) for w in waves]
            if sum(lengths) == 0:
                raise ValueError(f"noise category {name!r} has no samples")
            offsets[name] = torch.tensor([0] + lengths[:-1], dtype=torch.int64).cumsum(0)
            parts.extend(w.reshape(-1).float() for w in waves)
            spans.append((start, sum(lengths)))
            start += sum(lengths)
        self.sample_rate = int(sample_rate)
        self.categories: tuple[str, ...] = tuple(clips)
        self.snr_db: dict[str, tuple[float, float]] = {
            c: (float(ranges[c][0]), float(ranges[c][1])) for c in self.categories
        }
        self.spans: tuple[tuple[int, int], ...] = tuple(spans)
        self.file_offsets: dict[str, Tensor] = offsets
        self.waveform = torch.cat(parts).to(device)  # (N,)

    @classmethod
    def from_dir(
        cls,
        root: str | Path,
        sample_rate: int,
        device: str | torch.device = "cpu",
        max_seconds_per_file: float | None = None,
    ) -> NoiseBank:
        """Load a MUSAN-style folder (`noise/`, `speech/`, `music/` subfolders) or a flat one (all 'noise')."""
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"noise folder {root} does not exist")
        present = [c for c in MUSAN_SNR_DB if (root / c).is_dir()]
        folders = {c: root / c for c in present} if present else {"noise": root}
        clips = {}
        for name, folder in folders.items():
            files = audio_files(folder)
            if not files:
                raise ValueError(f"noise folder {folder} has no .wav/.flac files")
            clips[name] = [_load_mono(f, sample_rate, max_seconds_per_file) for f in files]
        return cls(clips, sample_rate, device=device)

    @property
    def device(self) -> torch.device:
        return self.waveform.device

    def category(self, name: str) -> Tensor:
        """The concatenated waveform (N_c,) of one category (a view into `waveform`)."""
        start, length = self.spans[self.categories.index(name)]
        return self.waveform[start : start + length]

    def to(self, device: str | torch.device) -> NoiseBank:
        """A copy with the waveform on `device`."""
        bank = copy.copy(self)
        bank.waveform = self.waveform.to(device)
        return bank


class RirBank:
    """Room impulse responses, each energy-normalised (unit L2 norm), zero-padded into one (R, L) tensor."""

    def __init__(self, rirs: Sequence[Tensor], sample_rate: int, device: str | torch.device = "cpu"):
        """`rirs`: 1-D impulse responses at `sample_rate`; each is divided by its L2 norm."""
        if len(rirs) == 0:
            raise ValueError("RirBank needs at least one RIR")
        flat = [r.reshape(-1).float() for r in rirs]
        norms = torch.stack([r.norm() for r in flat])  # (R,)
        if bool((norms == 0).any()):
            raise ValueError(f"RIR {int((norms == 0).nonzero()[0])} is all zeros")
        self.sample_rate = int(sample_rate)
        self.lengths = torch.tensor([r.numel() for r in flat], dtype=torch.int64)  # (R,)
        rirs_padded = torch.nn.utils.rnn.pad_sequence(flat, batch_first=True)  # (R, L)
        rirs_padded = rirs_padded / norms[:, None]
        self.rirs = rirs_padded.to(device)  # (R, L)
        self.peaks = rirs_padded.abs().argmax(dim=1).to(device)  # (R,) direct-path index

    @classmethod
    def from_dir(
        cls,
        root: str | Path,
        sample_rate: int,
        device: str | torch.device = "cpu",
        max_seconds: float = 1.5,
    ) -> RirBank:
        """Load every *.wav / *.flac under `root` (recursive), each truncated to `max_seconds`."""
        root = Path(root)
        files = audio_files(root) if root.is_dir() else []
        if not files:
            raise ValueError(f"RIR folder {root} has no .wav/.flac files")
        return cls([_load_mono(f, sample_rate, max_seconds) for f in files], sample_rate, device=device)

    @property
    def device(self) -> torch.device:
        return self.rirs.device

    def to(self, device: str | torch.device) -> RirBank:
        """A copy with the RIRs on `device`."""
        bank = copy.copy(self)
        bank.rirs, bank.peaks = self.rirs.to(device), self.peaks.to(device)
        return bank


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
        """A copy with both banks on `device`."""
        noise = None if self.noise is None else self.noise.to(device)
        rirs = None if self.rirs is None else self.rirs.to(device)
        return Augmenter(noise, rirs, self.noise_prob, self.reverb_prob)

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
        """Gather (S, length) noise crops for CPU (S,) category indices and starts, wrapping short categories."""
        bank = self.noise
        spans = torch.tensor(bank.spans, dtype=torch.int64)  # (C, 2) start, length in `waveform`
        if int(spans[category, 1].min()) >= int(start.max()) + length:  # no wrap: plain slices, no index tensor
            first = (spans[category, 0] + start).tolist()
            return torch.stack([bank.waveform[f : f + length] for f in first]).to(device)  # (S, T)
        base, n_c = spans[category, 0].to(device), spans[category, 1].to(device)  # (S,)
        pos = (start.to(device)[:, None] + torch.arange(length, device=device)) % n_c[:, None]  # (S, T)
        return bank.waveform[base[:, None] + pos]  # (S, T)

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
        h = self.rirs.rirs[rir_index.to(x.device)].to(x.dtype)  # (S, L)
        L = h.shape[1]
        n = _next_fast_len(T + L - 1)  # circular convolution of this size equals the linear one on [0, T+L-1)
        # Rotate each RIR left by its peak: output sample t of the circular convolution is then
        # y_linear[t + peak] for t < T (no aliasing since n >= T + L - 1), a plain slice.
        rotated = x.new_zeros(S, n)  # (S, n)
        for row, peak in enumerate(self.rirs.peaks[rir_index.to(self.rirs.peaks.device)].tolist()):
            rotated[row, : L - peak] = h[row, peak:]
            if peak:
                rotated[row, n - peak :] = h[row, :peak]
        full = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(rotated), n=n)  # (S, n)
        return full[:, :T].contiguous()  # (S, T)
