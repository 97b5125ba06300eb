"""MUSAN split into fixed-length chunks by category, as paper A's augmentation expects (paper.md section 3.1).

`musan/<category>/<subset>/<name>.wav` becomes `<out>/<category>/<subset>/<name>_<start seconds, 5 digits>.wav`
for category noise, speech and music: every full chunk of `chunk_seconds` (8 s in the paper) without overlap,
at the file's own rate and channels, 16-bit. The tail shorter than a chunk is dropped, so is a file shorter
than one chunk (as in the authors' sslsv `split_musan`). Resumable: a file whose chunks all exist is skipped,
and each chunk is written to a hidden partial file then renamed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from study.datasets.root import PrepareError
from trainables.bank_file import BYTES_PER_SAMPLE

CATEGORIES = ("noise", "speech", "music")
CHUNK_SECONDS = 8.0


@dataclass
class CategoryStats:
    """One category of the split."""

    files: int = 0
    """Source files."""
    chunks: int = 0
    """Chunks written or already present."""
    seconds: float = 0.0
    """Duration of all chunks."""
    too_short: int = 0
    """Source files shorter than one chunk (no chunk)."""


@dataclass
class MusanReport:
    """What `split_musan` did."""

    categories: dict[str, CategoryStats] = field(default_factory=dict)
    written: int = 0
    """Chunks written by this call (the rest existed)."""
    errors: list[str] = field(default_factory=list)
    """"<path>: <reason>" per source file that could not be read."""

    def lines(self, sample_rate: int = 16000) -> list[str]:
        """A short human-readable report; the bank size is for the trainer's `sample_rate`."""
        out = []
        for name, c in self.categories.items():
            out.append(
                f"{name}: {c.files:,} files -> {c.chunks:,} chunks, {c.seconds / 3600:.1f} h"
                + (f" ({c.too_short} shorter than one chunk, skipped)" if c.too_short else "")
            )
        total = sum(c.seconds for c in self.categories.values()) * sample_rate
        out.append(f"chunks written now: {self.written:,}; the trainer's noise bank will hold "
                   f"{total * BYTES_PER_SAMPLE / 2**30:.1f} GiB (int16), one memory-mapped copy per node")
        out += [f"error: {e}" for e in self.errors]
        return out


def find_musan(root: Path) -> Path:
    """The MUSAN folder holding noise/, speech/, music/: `root` itself or `root/musan`."""
    for candidate in (root, root / "musan"):
        if all((candidate / c).is_dir() for c in CATEGORIES):
            return candidate
    raise PrepareError(
        f"no MUSAN folder with {'/, '.join(CATEGORIES)}/ subfolders at {root} or {root / 'musan'}: "
        "extract musan.tar.gz there, or add --download"
    )


def chunk_starts(frames: int, chunk: int) -> range:
    """Start frames of every full, non-overlapping chunk of `chunk` frames in a file of `frames`."""
    return range(0, frames - chunk + 1, chunk)


def chunk_name(source: Path, start: int, rate: int) -> str:
    """`<stem>_<start seconds, 5 digits>.wav`."""
    return f"{source.stem}_{start // rate:05d}.wav"


def split_file(source: Path, out_dir: Path, chunk_seconds: float) -> tuple[int, int, int]:
    """Write the chunks of one file; returns (chunks, their seconds, chunks written now)."""
    info = sf.info(str(source))
    chunk = int(round(chunk_seconds * info.samplerate))
    starts = chunk_starts(info.frames, chunk)
    targets = [out_dir / chunk_name(source, s, info.samplerate) for s in starts]
    if all(t.exists() for t in targets):
        return len(targets), len(targets) * chunk / info.samplerate, 0
    out_dir.mkdir(parents=True, exist_ok=True)
    data, _ = sf.read(str(source), dtype="int16", always_2d=True)  # (frames, channels)
    if data.shape[0] != info.frames:
        raise ValueError(f"decoded {data.shape[0]} of {info.frames} frames")
    written = 0
    for start, target in zip(starts, targets):
        if target.exists():
            continue
        partial = target.with_name(f".{target.name}.partial")
        sf.write(str(partial), data[start : start + chunk], info.samplerate, subtype="PCM_16", format="WAV")
        os.replace(partial, target)
        written += 1
    return len(targets), len(targets) * chunk / info.samplerate, written


def split_musan(root: Path, out: Path, chunk_seconds: float = CHUNK_SECONDS, workers: int = 8,
                progress: bool = True) -> MusanReport:
    """Split MUSAN under `root` (see `find_musan`) into `out`; see the module docstring."""
    musan = find_musan(root)
    report = MusanReport()
    jobs = []
    for category in CATEGORIES:
        files = sorted(p for p in (musan / category).rglob("*.wav") if p.is_file())
        if not files:
            raise PrepareError(f"{musan / category} has no .wav files")
        report.categories[category] = CategoryStats(files=len(files))
        jobs += [(category, f, out / category / f.parent.relative_to(musan / category)) for f in files]

    def run(job):
        category, source, out_dir = job
        try:
            return category, split_file(source, out_dir, chunk_seconds)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
            return category, f"{source}: {getattr(exc, 'error_string', None) or exc}"

    bar = tqdm(total=len(jobs), unit="file", desc="splitting MUSAN", disable=None if progress else True)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for category, result in pool.map(run, jobs):
            bar.update()
            if isinstance(result, str):
                report.errors.append(result)
                continue
            chunks, seconds, written = result
            stats = report.categories[category]
            stats.chunks += chunks
            stats.seconds += seconds
            stats.too_short += chunks == 0
            report.written += written
    bar.close()
    for category, stats in report.categories.items():
        if stats.chunks == 0:
            report.errors.append(f"{musan / category}: no file is at least {chunk_seconds:g} s long, no chunk written")
    return report
