"""What opening each distinct training file found: its frames and rate, or why it cannot be used.

Arrays are aligned with a `TrainList`'s distinct names, so a list that repeats files opens each path once and a
million rows cost a few arrays, not a million objects.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from trainables.audio import AudioError, audio_info
from trainables.manifest import TrainList

OPEN_THREADS = 16
"""Files opened at once (libsndfile releases the GIL while it reads)."""


def open_files(paths: list[str], threads: int = OPEN_THREADS) -> list[tuple[int, int] | AudioError]:
    """`audio_info` of each path (frames, rate at the file's own rate), or the AudioError, in threads."""
    def info(path: str) -> tuple[int, int] | AudioError:
        try:
            return audio_info(path)
        except AudioError as exc:
            return exc

    if len(paths) <= 1:
        return [info(p) for p in paths]
    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as pool:
        return list(pool.map(info, paths))


@dataclass
class FileChecks:
    """Per distinct file of a TrainList: `frames` and `rates` (0 where unusable or not checked yet) and the
    reason each unusable one cannot be used, by file index."""

    frames: np.ndarray
    """(files,) int64 frames at the file's own rate."""
    rates: np.ndarray
    """(files,) int64 sample rate in Hz."""
    reasons: dict[int, str]

    @classmethod
    def unchecked(cls, files: int) -> "FileChecks":
        return cls(np.zeros(files, dtype=np.int64), np.zeros(files, dtype=np.int64), {})

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def bad(self) -> np.ndarray:
        """(files,) bool: known to be unusable."""
        mask = np.zeros(len(self), dtype=bool)
        mask[np.fromiter(self.reasons, dtype=np.int64, count=len(self.reasons))] = True
        return mask

    @property
    def checked(self) -> np.ndarray:
        """(files,) bool: opened (usable or not)."""
        return (self.rates > 0) | self.bad

    def set(self, index: int, result: tuple[int, int] | AudioError) -> None:
        """Record what opening file `index` found."""
        if isinstance(result, AudioError):
            self.frames[index] = self.rates[index] = 0
            self.reasons[index] = result.reason
        else:
            self.frames[index], self.rates[index] = result
            self.reasons.pop(index, None)

    def fill(self, files: TrainList, indices: np.ndarray, threads: int = OPEN_THREADS) -> None:
        """Open the files at `indices` (each distinct path once) and record what was found."""
        indices = [int(i) for i in indices]
        paths = list(dict.fromkeys(files.paths[i] for i in indices))
        found = dict(zip(paths, open_files(paths, threads)))
        for i in indices:
            self.set(i, found[files.paths[i]])
