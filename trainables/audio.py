"""Reading audio files into float32 mono waveforms at one sample rate.

Anything libsndfile reads (WAV, FLAC, OGG, ...) is accepted. Multi-channel audio is averaged to mono. A file at
another sample rate is resampled (torchaudio's windowed-sinc `resample`) rather than refused, so mixed-rate
corpora work; `start`/`frames` are then counted in samples at the target rate. Every failure is an `AudioError`
whose message names the file and the reason.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

AUDIO_SUFFIXES = (".wav", ".flac")
"""The audio files a noise or RIR folder contributes (matched case-insensitively)."""
_DECLARED_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
"""Sample formats that can hold NaN or infinity (integer PCM and FLAC cannot)."""
_SCAN_FRAMES = 1 << 20


class AudioError(ValueError):
    """An audio file that cannot be used; the message is "<path>: <reason>"."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """Every AUDIO_SUFFIXES file under `folder` (recursive), sorted as paths so banks are reproducible."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(path, "missing (no such file)")
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _describe(exc: Exception) -> str:
    """libsndfile's own words without the "Error opening '<path>'" prefix that repeats the path."""
    return getattr(exc, "error_string", None) or str(exc)


def _truncated_wav(extra_info: str) -> str | None:
    """The reason a RIFF/WAV header declares more data than the file holds, else None."""
    match = _DECLARED_DATA.search(extra_info)
    if match is None:
        return None
    declared, actual = int(match.group(1)), int(match.group(2))
    if declared in _STREAMING_SIZES or declared <= actual:
        return None
    return f"truncated (header declares {declared} data bytes, file holds {actual})"


def _open_checked(f: sf.SoundFile, path: str) -> None:
    """Raise AudioError if an opened file is a truncated WAV, has no frames or has no valid rate."""
    truncated = _truncated_wav(f.extra_info)
    if truncated is not None:
        raise AudioError(path, truncated)
    if f.frames <= 0:
        raise AudioError(path, "zero-length audio (no frames)")
    if f.samplerate <= 0:
        raise AudioError(path, f"unsupported sample rate {f.samplerate} Hz")


def _non_finite(path: str, count: int) -> AudioError:
    return AudioError(path, f"{count} non-finite (nan/inf) samples")


def _count_non_finite(f: sf.SoundFile) -> int:
    """NaN and infinite samples in a whole opened file, read in blocks."""
    f.seek(0)
    return sum(int(np.sum(~np.isfinite(block))) for block in f.blocks(_SCAN_FRAMES, dtype="float32", always_2d=True))


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """Return (frames, samplerate) of an audio file, at the file's own rate.

    Besides opening the header it decodes the file's last frame, so truncated WAV and FLAC files are caught
    here (about 0.1 ms per file); a file of float samples is decoded whole, so NaN or infinite samples are
    caught too. Raises AudioError when the file is missing, empty, has no frames, is truncated, cannot be
    decoded or holds non-finite samples.
    """
    path = str(path)
    _check_exists(path)
    try:
        with sf.SoundFile(path) as f:
            _open_checked(f, path)
            frames, rate = f.frames, f.samplerate
            f.seek(frames - 1)
            if f.read(1, dtype="float32").shape[0] != 1:
                raise AudioError(path, f"truncated (header declares {frames} frames, the last cannot be read)")
            bad = _count_non_finite(f) if f.subtype in _FLOAT_SUBTYPES else 0
            if bad:
                raise _non_finite(path, bad)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(path, f"unreadable or truncated audio ({_describe(exc)})") from exc
    return frames, rate


def _read(path: str, sample_rate: int, start: int, frames: int) -> tuple[np.ndarray, int]:
    """Decode (samples, channels) float32 and the file's rate: only [start, start + frames) when the file is
    at `sample_rate`, else the whole file."""
    try:
        with sf.SoundFile(path) as f:
            _open_checked(f, path)
            rate, total = f.samplerate, f.frames
            if rate != sample_rate:
                start, frames = 0, -1
            elif start > 0:
                f.seek(min(start, total))
            data = f.read(frames, dtype="float32", always_2d=True)  # (samples, channels)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(path, f"unreadable or truncated audio ({_describe(exc)})") from exc
    expected = max(0, total - start) if frames < 0 else min(frames, max(0, total - start))
    if data.shape[0] != expected:
        raise AudioError(path, f"truncated (decoded {data.shape[0]} of {expected} expected frames)")
    return data, rate


def resampled_length(frames: int, orig_rate: int, new_rate: int) -> int:
    """Length of `frames` samples at `orig_rate` once resampled to `new_rate`, ceil(frames * new / orig).

    torchaudio computes the same ceiling in float32, so for very long files it can differ by one sample:
    use this for sizes and durations, and the decoded array's own length for indexing.
    """
    if orig_rate == new_rate:
        return frames
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    return -(-new * frames // orig)


def load_audio(path: str | os.PathLike, sample_rate: int, start: int = 0, frames: int = -1) -> np.ndarray:
    """Read `frames` samples (all if -1) from sample `start` as float32 mono in [-1, 1] at `sample_rate`.

    At the file's own rate only the requested region is decoded. At another rate the whole file is decoded,
    resampled, then sliced, so `start`/`frames` are target-rate samples. Fewer samples come back only when
    the file ends before `start + frames`. Raises AudioError (naming the path) for any unusable file.
    """
    path = str(path)
    if sample_rate <= 0:
        raise AudioError(path, f"unsupported target sample rate {sample_rate} Hz")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    _check_exists(path)
    data, rate = _read(path, sample_rate, start, frames)
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]  # (samples,)
    if not np.isfinite(wave).all():
        raise _non_finite(path, int(np.sum(~np.isfinite(wave))))
    if rate != sample_rate:
        wave = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), rate, sample_rate).numpy()
        wave = wave[start:] if frames < 0 else wave[start : start + frames]
    return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)
