"""Convert compressed audio (VoxCeleb2's AAC `.m4a`) to verified 16 kHz mono 16-bit wav with ffmpeg.

Resumable: an output that exists is finished, because each file is written to a hidden `.<name>.partial`
sibling, verified (it decodes, is 16 kHz mono 16-bit PCM, has samples), and only then renamed into place. An
interrupted run leaves at most one partial file per worker, overwritten when the file is converted again.
Files are converted in parallel (one ffmpeg process per worker thread); a file that fails is reported and
left out, the others go on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import soundfile as sf
from tqdm import tqdm

from study.datasets.root import PrepareError
from trainables.audio import AudioError, audio_info

SAMPLE_RATE = 16000
TIMEOUT_S = 300
"""Longest time one ffmpeg conversion may take (a VoxCeleb2 file takes well under a second)."""
_BATCH = 4096
"""Jobs handed to the thread pool at a time (bounded memory on a million files)."""

FFMPEG_MISSING = (
    "ffmpeg is not installed (it is needed to convert VoxCeleb2's AAC .m4a files to 16 kHz wav). Install it:\n"
    "  Debian/Ubuntu: sudo apt-get install ffmpeg\n"
    "  Fedora/RHEL:   sudo dnf install ffmpeg\n"
    "  conda:         conda install -c conda-forge ffmpeg\n"
    "  macOS:         brew install ffmpeg\n"
    "then run the same command again; or convert the files yourself to <speaker>/<video>/<utt>.wav "
    "(16 kHz mono) and pass that folder as --vox2."
)


class ConversionError(ValueError):
    """One file that could not be converted or verified; the message is "<path>: <reason>"."""


@dataclass
class ConversionReport:
    """What `convert_all` did."""

    converted: int = 0
    """Files converted and verified by this call."""
    skipped: int = 0
    """Outputs that already existed (finished by an earlier run)."""
    failed: list[str] = field(default_factory=list)
    """One "<source>: <reason>" per file that could not be converted."""
    failed_outputs: set[str] = field(default_factory=set)
    """Output paths of the failed files (absent on disk)."""


def find_ffmpeg() -> str:
    """Path of the ffmpeg executable on PATH; PrepareError with install instructions when there is none."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise PrepareError(FFMPEG_MISSING)
    return found


def verify_wav(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> int:
    """Return the frame count of a finished conversion; ConversionError unless it is complete (not truncated),
    decodes to the last sample, and is mono 16-bit PCM wav at `sample_rate` with at least one sample."""
    path = os.fspath(path)
    try:
        frames, rate = audio_info(path)
        info = sf.info(path)
        decoded = sf.read(path, dtype="int16", always_2d=True)[0].shape[0]
    except AudioError as exc:
        raise ConversionError(f"{path}: {exc.reason}") from exc
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise ConversionError(f"{path}: does not decode ({getattr(exc, 'error_string', None) or exc})") from exc
    if info.format != "WAV" or info.subtype != "PCM_16":
        raise ConversionError(f"{path}: expected 16-bit PCM wav, got {info.format}/{info.subtype}")
    if rate != sample_rate:
        raise ConversionError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
    if info.channels != 1:
        raise ConversionError(f"{path}: {info.channels} channels, expected mono")
    if decoded != frames:
        raise ConversionError(f"{path}: truncated (decoded {decoded} of {frames} frames)")
    return frames


def partial_path(output: Path) -> Path:
    """The hidden sibling an output is written to before it is verified and renamed."""
    return output.with_name(f".{output.name}.partial")


def convert_one(source: Path, output: Path, ffmpeg: str, sample_rate: int = SAMPLE_RATE) -> bool:
    """Convert `source` to a verified wav at `output`; False when `output` already exists (nothing done).

    Raises ConversionError naming the source when ffmpeg fails or its output does not verify; no output or
    partial file is left behind then.
    """
    if output.exists():
        return False
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(output)
    command = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-vn", "-map_metadata", "-1",
        "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le", "-f", "wav", "-threads", "1", str(partial),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        if done.returncode != 0:
            detail = " ".join(done.stderr.split())[-300:] or f"exit status {done.returncode}"
            raise ConversionError(f"{source}: ffmpeg failed: {detail}")
        try:
            verify_wav(partial, sample_rate)
        except ConversionError as exc:
            raise ConversionError(f"{source}: converted file failed verification: {exc}") from exc
        os.replace(partial, output)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"{source}: ffmpeg took longer than {TIMEOUT_S} s") from None
    finally:
        partial.unlink(missing_ok=True)
    return True


def convert_all(
    jobs: Sequence[tuple[Path, Path]],
    ffmpeg: str,
    workers: int,
    sample_rate: int = SAMPLE_RATE,
    progress: bool = True,
) -> ConversionReport:
    """Convert every (source, output) pair with `workers` parallel ffmpeg processes; see the module docstring."""
    report = ConversionReport()
    pending = []
    for source, output in jobs:
        if output.exists():
            report.skipped += 1
        else:
            pending.append((source, output))

    def run(job: tuple[Path, Path]) -> tuple[Path, bool | ConversionError]:
        try:
            return job[1], convert_one(job[0], job[1], ffmpeg, sample_rate)
        except ConversionError as exc:
            return job[1], exc

    bar = tqdm(total=len(pending), unit="file", desc="converting", disable=None if progress else True)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(pending), _BATCH):
            for output, result in pool.map(run, pending[start : start + _BATCH]):
                if isinstance(result, ConversionError):
                    report.failed.append(str(result))
                    report.failed_outputs.add(str(output))
                elif result:
                    report.converted += 1
                else:
                    report.skipped += 1
                bar.update()
    bar.close()
    return report
