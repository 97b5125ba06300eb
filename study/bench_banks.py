"""Noise and RIR banks: int16 host file maps (issue 11) against the float32-per-device banks they replace.

`Float32Banks` keeps the earlier representation and math (every noise category and every normalised RIR as
float32 tensors on the training device, crops gathered there) as the baseline; the tests use it as the reference
the int16 banks must reproduce bit for bit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor

from study.bench_timing import median_time
from trainables.audio import audio_files
from trainables.augment import (
    MUSAN_SNR_DB,
    NOISE_POWER_EPS,
    AugmentDraws,
    Augmenter,
    NoiseBank,
    RirBank,
    _load_mono,
    _next_fast_len,
)

MUSAN_HOURS = 109.0
"""Full MUSAN (noise 6 h, music 42 h, speech 60 h), 16 kHz."""


class Float32Banks:
    """The float32 banks before issue 11: categories back to back in `waveform` (N,) and the energy-normalised
    RIRs `rirs` (R, L) with their peaks, all on `device`; `apply` is that version's `Augmenter.apply`."""

    def __init__(self, clips: dict[str, list[Tensor]] | None, rirs: list[Tensor] | None, device: str | torch.device):
        self.waveform = self.rirs = self.peaks = None
        if clips:
            parts, spans, start = [], [], 0
            for waves in clips.values():
                n = sum(int(w.numel()) for w in waves)
                parts.extend(w.reshape(-1).float() for w in waves)
                spans.append((start, n))
                start += n
            self.spans = tuple(spans)
            self.waveform = torch.cat(parts).to(device)  # (N,)
        if rirs:
            flat = [r.reshape(-1).float() for r in rirs]
            norms = torch.stack([r.norm() for r in flat])  # (R,)
            padded = torch.nn.utils.rnn.pad_sequence(flat, batch_first=True) / norms[:, None]  # (R, L)
            self.rirs = padded.to(device)
            self.peaks = padded.abs().argmax(dim=1).to(device)  # (R,)

    @classmethod
    def from_dir(cls, noise_dir: str | Path | None, rir_dir: str | Path | None, sample_rate: int,
                 device: str | torch.device, noise_max_seconds: float | None = None,
                 rir_max_seconds: float = 1.5) -> Float32Banks:
        """Decode the folders as the earlier `NoiseBank.from_dir` / `RirBank.from_dir` did."""
        clips = None
        if noise_dir is not None:
            root = Path(noise_dir)
            present = [c for c in MUSAN_SNR_DB if (root / c).is_dir()]
            folders = {c: root / c for c in present} if present else {"noise": root}
            clips = {name: [_load_mono(f, sample_rate, noise_max_seconds) for f in audio_files(folder)]
                     for name, folder in folders.items()}
        rirs = None
        if rir_dir is not None:
            rirs = [_load_mono(f, sample_rate, rir_max_seconds) for f in audio_files(rir_dir)]
        return cls(clips, rirs, device)

    def device_bytes(self) -> int:
        return sum(t.nbytes for t in (self.waveform, self.rirs, self.peaks) if t is not None)

    def apply(self, waves: Tensor, draws: AugmentDraws) -> Tensor:
        out = waves
        noisy = draws.noise_mask.nonzero().squeeze(1)
        if noisy.numel() > 0:
            idx = noisy.to(waves.device)
            out = out.index_copy(0, idx, self._add_noise(out[idx], draws, noisy))
        reverb = draws.reverb_mask.nonzero().squeeze(1)
        if reverb.numel() > 0:
            idx = reverb.to(waves.device)
            out = out.index_copy(0, idx, self._reverberate(out[idx], draws.rir_index[reverb]))
        return out

    def _noise_crops(self, category: Tensor, start: Tensor, length: int, device: torch.device) -> Tensor:
        spans = torch.tensor(self.spans, dtype=torch.int64)  # (C, 2)
        if int(spans[category, 1].min()) >= int(start.max()) + length:
            first = (spans[category, 0] + start).tolist()
            return torch.stack([self.waveform[f : f + length] for f in first]).to(device)  # (S, T)
        base, n_c = spans[category, 0].to(device), spans[category, 1].to(device)  # (S,)
        pos = (start.to(device)[:, None] + torch.arange(length, device=device)) % n_c[:, None]  # (S, T)
        return self.waveform[base[:, None] + pos]  # (S, T)

    def _add_noise(self, x: Tensor, draws: AugmentDraws, sel: Tensor) -> Tensor:
        crops = self._noise_crops(draws.category[sel], draws.noise_start[sel], x.shape[1], x.device).to(x.dtype)
        p_speech = x.pow(2).mean(dim=1)  # (S,)
        p_noise = crops.pow(2).mean(dim=1)  # (S,)
        snr = draws.snr_db[sel].to(device=x.device, dtype=x.dtype)  # (S,)
        gain = torch.sqrt(p_speech / ((p_noise + NOISE_POWER_EPS) * 10.0 ** (snr / 10.0)))  # (S,)
        return x + gain[:, None] * crops  # (S, T)

    def _reverberate(self, x: Tensor, rir_index: Tensor) -> Tensor:
        S, T = x.shape
        h = self.rirs[rir_index.to(x.device)].to(x.dtype)  # (S, L)
        L = h.shape[1]
        n = _next_fast_len(T + L - 1)
        rotated = x.new_zeros(S, n)  # (S, n)
        for row, peak in enumerate(self.peaks[rir_index.to(self.peaks.device)].tolist()):
            rotated[row, : L - peak] = h[row, peak:]
            if peak:
                rotated[row, n - peak :] = h[row, :peak]
        full = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(rotated), n=n)  # (S, n)
        return full[:, :T].contiguous()  # (S, T)


def bench_noise_bank(noise_dir: str | Path, rir_dir: str | Path, sample_rate: int = 16000,
                     device: str | torch.device = "cpu", batch: int = 64, seconds: float = 2.0,
                     repeats: int = 5) -> dict:
    """Host and device bytes per hour of noise, build vs reopen time and one augmentation step (batch x 2 views
    x `seconds`, noise and reverb on every row): int16 host file maps against the float32-per-device banks."""
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    cache = Path(tempfile.mkdtemp(prefix="bench-banks-"))
    try:
        start = time.perf_counter()
        noise = NoiseBank.from_dir(noise_dir, sample_rate, cache_dir=cache)
        rirs = RirBank.from_dir(rir_dir, sample_rate, cache_dir=cache)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        noise = NoiseBank.from_dir(noise_dir, sample_rate, cache_dir=cache)
        rirs = RirBank.from_dir(rir_dir, sample_rate, cache_dir=cache)
        open_s = time.perf_counter() - start

        start = time.perf_counter()
        old = Float32Banks.from_dir(noise_dir, rir_dir, sample_rate, device)
        sync()
        old_load_s = time.perf_counter() - start

        hours = noise.samples.numel() / sample_rate / 3600
        noise_file, rir_file = os.path.getsize(noise.path), os.path.getsize(rirs.path)
        bank_tensors = (noise.samples, rirs.rirs, rirs.scales, rirs.norms, rirs.peaks, rirs.lengths)
        resident = sum(t.nbytes for t in bank_tensors if t.device.type != "cpu")

        augmenter = Augmenter(noise, rirs, noise_prob=1.0, reverb_prob=1.0)
        rows, length = 2 * batch, int(round(seconds * sample_rate))
        g = torch.Generator().manual_seed(0)
        waves = (0.1 * torch.randn(rows, length, generator=g)).to(device)  # (2B, T)
        draws = augmenter.draw(rows, length, torch.Generator().manual_seed(1))

        def run(apply):
            def step():
                apply(waves, draws)
                sync()
            return step

        identical = torch.equal(augmenter.apply(waves, draws), old.apply(waves, draws))
        old_step_s = median_time(run(old.apply), repeats)
        new_step_s = median_time(run(augmenter.apply), repeats)
        full_musan = MUSAN_HOURS * 3600 * 16000
        return {
            "device": str(device),
            "noise_hours": hours,
            "rir_count": int(rirs.rirs.shape[0]),
            "float32_device_bytes_per_noise_hour": old.waveform.nbytes / hours,
            "int16_host_bytes_per_noise_hour": noise_file / hours,
            "int16_device_resident_bytes": resident,
            "float32_device_bytes_rirs": old.rirs.nbytes + old.peaks.nbytes,
            "int16_host_bytes_rirs": rir_file,
            "float32_device_bytes_total": old.device_bytes(),
            "int16_host_bytes_total": noise_file + rir_file,
            "step_transfer_bytes_int16": rows * length * 2 + rows * int(rirs.rirs.shape[1]) * 2,
            "step_transfer_bytes_float32": 0,
            "bank_build_s": build_s,
            "bank_open_s": open_s,
            "float32_decode_load_s": old_load_s,
            "step_s_float32_device": old_step_s,
            "step_s_int16_host": new_step_s,
            "bit_identical": bool(identical),
            "full_musan_float32_bytes_per_device": full_musan * 4,
            "full_musan_int16_host_bytes_per_node": full_musan * 2,
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(bench_noise_bank(*sys.argv[1:3], device=sys.argv[3] if len(sys.argv) > 3 else "cpu"),
                     indent=1))
