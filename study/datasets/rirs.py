"""Index the Simulated Room Impulse Response set (OpenSLR 28, `RIRS_NOISES/simulated_rirs`) for augmentation.

The set has `smallroom/`, `mediumroom/` and `largeroom/`, each with `Room<k>/Room<k>-<n>.wav` files (60,000
in all). Only `simulated_rirs` is used (paper.md section 3.1): the archive's real RIRs and noises are not. The
prepared root gets a link `simulated_rirs` to the folder (what the trainer's `rir_dir` names) and an index
`simulated_rirs.csv` (`File,Room,Size,Seconds,SampleRate`, paths relative to the root), after every file has
been opened and checked.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from study.datasets.root import RIR_DIR, RIR_INDEX, PrepareError, link_folder, write_atomic
from trainables.audio import AudioError, audio_info
from trainables.bank_file import BYTES_PER_SAMPLE

ROOM_SIZES = ("smallroom", "mediumroom", "largeroom")
FULL_COUNT = 60000
RIR_SECONDS_IN_BANK = 1.5
"""The trainer keeps the first 1.5 s of each RIR (`RirBank.from_dir`'s default), all padded to the longest,
int16, one memory-mapped copy per node."""


@dataclass
class RirReport:
    """What `index_rirs` found."""

    folder: Path
    counts: dict[str, int] = field(default_factory=dict)
    """Files per room size."""
    rates: dict[int, int] = field(default_factory=dict)
    """Files per sample rate."""
    errors: list[str] = field(default_factory=list)
    """"<path>: <reason>" per unusable file (the trainer would fail on it)."""
    longest: float = 0.0
    """Seconds of the longest RIR."""

    def lines(self, sample_rate: int = 16000) -> list[str]:
        """A short human-readable report; the bank size is for the trainer's `sample_rate`."""
        total = sum(self.counts.values())
        full = "" if total == FULL_COUNT else f" (the complete set has {FULL_COUNT:,})"
        bank = total * min(RIR_SECONDS_IN_BANK, self.longest) * sample_rate * BYTES_PER_SAMPLE / 2**30
        return [
            f"simulated RIRs in {self.folder}: {total:,} files{full}: "
            + ", ".join(f"{size} {n:,}" for size, n in self.counts.items()),
            "sample rates: " + ", ".join(f"{rate} Hz: {n:,}" for rate, n in sorted(self.rates.items())),
            f"the trainer's RIR bank will hold {bank:.1f} GiB (int16), one memory-mapped copy per node",
            *(f"error: {e}" for e in self.errors),
        ]


def find_simulated_rirs(root: Path) -> Path:
    """The `simulated_rirs` folder: `root` itself, `root/simulated_rirs` or `root/RIRS_NOISES/simulated_rirs`."""
    for candidate in (root, root / "simulated_rirs", root / "RIRS_NOISES" / "simulated_rirs"):
        if any((candidate / size).is_dir() for size in ROOM_SIZES):
            return candidate
    raise PrepareError(
        f"no simulated RIR folder (with {', '.join(ROOM_SIZES)}) at {root}, {root / 'simulated_rirs'} or "
        f"{root / 'RIRS_NOISES' / 'simulated_rirs'}: extract rirs_noises.zip there, or add --download"
    )


def index_rirs(root: Path, out: Path, workers: int = 8, progress: bool = True) -> RirReport:
    """Check every RIR under `root`'s simulated set, link it into `out` and write the index (unless errors)."""
    folder = find_simulated_rirs(root).resolve()
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac") and p.is_file())
    if not files:
        raise PrepareError(f"{folder} has no .wav/.flac files")
    report = RirReport(folder=folder)

    def check(path: Path) -> tuple[int, int] | AudioError:
        try:
            return audio_info(path)
        except AudioError as exc:
            return exc

    rows = []
    bar = tqdm(total=len(files), unit="file", desc="checking RIRs", disable=None if progress else True)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for path, result in zip(files, pool.map(check, files)):
            bar.update()
            if isinstance(result, AudioError):
                report.errors.append(str(result))
                continue
            frames, rate = result
            relative = path.relative_to(folder)
            size = relative.parts[0] if len(relative.parts) > 1 else ""
            room = relative.parts[-2] if len(relative.parts) > 2 else ""
            report.counts[size] = report.counts.get(size, 0) + 1
            report.rates[rate] = report.rates.get(rate, 0) + 1
            report.longest = max(report.longest, frames / rate)
            rows.append(f"{RIR_DIR}/{relative.as_posix()},{room},{size},{frames / rate:.4f},{rate}\n")
    bar.close()
    if not report.errors:
        link_folder(out / RIR_DIR, folder)
        write_atomic(out / RIR_INDEX, "File,Room,Size,Seconds,SampleRate\n" + "".join(rows))
    return report

