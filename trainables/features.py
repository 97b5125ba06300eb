"""Log-mel filterbank front end, computed on the training device (paper.md section 3.1)."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

WINDOWS = {"hamming": torch.hamming_window, "hann": torch.hann_window}


class LogMel(nn.Module):
    """Waveforms (B, T) -> normalised log-mel features (B, n_mels, frames).

    MelSpectrogram(n_fft 512, 25 ms window, 10 ms hop), log(x + 1e-6), then per-utterance mean/variance
    normalisation over time for each mel bin (InstanceNorm1d without affine). Always computed in fp32.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 40, window: str = "hamming"):
        super().__init__()
        if window not in WINDOWS:
            raise ValueError(f"window={window!r} is not one of {sorted(WINDOWS)}")
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=512,
            win_length=int(round(0.025 * sample_rate)),
            hop_length=int(round(0.010 * sample_rate)),
            n_mels=n_mels,
            window_fn=WINDOWS[window],
        )
        self.norm = nn.InstanceNorm1d(n_mels)

    @torch.no_grad()
    def log_energies(self, waves: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, T) -> log mel band energies before normalisation (B, n_mels, frames), in fp32."""
        with torch.autocast(device_type=waves.device.type, enabled=False):
            return (self.mel(waves.float()) + 1e-6).log()  # (B, n_mels, frames)

    @torch.no_grad()
    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.norm(self.log_energies(waves))  # (B, n_mels, frames)
