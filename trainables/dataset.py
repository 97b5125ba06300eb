"""The training dataset: each item is the two views (2, crop) of one utterance (paper.md section 3.1).

Which files are usable comes from a `FileChecks` (the run's check record, see `trainables.check_record`), or
each distinct file is opened once here. Unusable files are skipped and counted; too many of them is an error.
Audio is preloaded into memory as int16 when it fits `preload_max_bytes` (each distinct file once), else read
on demand (only the two crop regions when the file is at the target rate). A file that breaks while training
is flagged in shared memory (so every DataLoader worker and the training process see it), logged once, and
a readable utterance stands in for it; `refuse_if_too_many_broken` (called in the training process after every
batch) raises DataError once the count exceeds `max_bad_fraction`. The views of item i in epoch e depend only
on (seed, e, i), so they are identical whatever the worker count, the order or a resume from a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from trainables.audio import AudioError, load_audio, resampled_length
from trainables.crops import two_view_starts, two_views
from trainables.file_checks import OPEN_THREADS, FileChecks
from trainables.manifest import TrainList, Utterance

_INT16_SCALE = 32768.0
_SHOWN_BAD = 5
_SUBSTITUTE = 0x5B5B_5B5B
"""Fourth seed word of the stream that picks the utterance standing in for an unreadable one."""
_SUBSTITUTE_TRIES = 64


class DataError(ValueError):
    """The training data as a whole cannot be used (e.g. too many unreadable files)."""


def too_many_bad(bad_rows: int, rows: int, max_bad_fraction: float) -> bool:
    """The trainer's rule: all rows, or more than max_bad_fraction of them, unusable."""
    return bad_rows > 0 and (bad_rows == rows or bad_rows / rows > max_bad_fraction)


def refusal(bad_rows: int, rows: int, max_bad_fraction: float, shown: list[str], more: int, when: str = "") -> str:
    """The one-line DataError message of too many unusable files, naming the first few."""
    tail = f"; and {more} more" if more > 0 else ""
    return (f"{bad_rows} of {rows} training files ({bad_rows / rows:.1%}) are unreadable{when}, more than "
            f"max_bad_files={max_bad_fraction:g} allows (--set max_bad_files=F to skip more): "
            f"{'; '.join(shown)}{tail}")


def _decode_int16(path: str, sample_rate: int) -> np.ndarray | AudioError:
    """The whole file as int16 at `sample_rate` (lossless for 16-bit PCM sources), or the error."""
    try:
        wave = load_audio(path, sample_rate)  # (samples,) float32 in [-1, 1]
    except AudioError as exc:
        return exc
    if wave.shape[0] == 0:
        return AudioError(path, "zero-length audio after resampling")
    return np.clip(np.rint(wave * _INT16_SCALE), -32768, 32767).astype(np.int16)


class TwoViewDataset(Dataset):
    """Two non-overlapping crops per utterance, as a float32 tensor (2, crop); see the module docstring.

    `utterances` are the training rows (a TrainList, or Utterances), `crop` the view length in samples at
    `sample_rate`, `seed` the seed of every crop position, `checks` what opening the list's files found (None:
    open each distinct file now). Call `set_epoch` before each epoch's iterator is created; the epoch is held
    in shared memory, so it also reaches DataLoader workers started earlier (persistent_workers=True).
    """

    def __init__(
        self,
        utterances: TrainList | list[Utterance],
        sample_rate: int,
        crop: int,
        seed: int,
        preload: bool = True,
        preload_max_bytes: int = 4 << 30,
        max_bad_fraction: float = 0.01,
        log: Callable[[str], object] = print,
        threads: int = OPEN_THREADS,
        checks: FileChecks | None = None,
    ):
        if crop <= 0 or sample_rate <= 0:
            raise ValueError(f"crop and sample_rate must be > 0, got crop={crop}, sample_rate={sample_rate}")
        files = utterances if isinstance(utterances, TrainList) else TrainList.from_utterances(utterances)
        if not len(files):
            raise DataError("no training utterances given")
        self.sample_rate = sample_rate
        self.crop = crop
        self.seed = seed
        self.max_bad_fraction = max_bad_fraction
        self.log = log
        self._files = files
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        started = time.perf_counter()
        checks = checks if checks is not None else FileChecks.unchecked(len(files.names))
        used = np.unique(files.file_of_row)
        checks.fill(files, used[~checks.checked[used]], threads)
        self._checks = checks
        self._refuse_bad_at_start()
        lengths = checks.frames.copy()
        other_rate = np.flatnonzero((checks.rates != sample_rate) & (checks.rates > 0))
        lengths[other_rate] = [resampled_length(int(checks.frames[f]), int(checks.rates[f]), sample_rate)
                               for f in other_rate]
        self._lengths = lengths  # (files,) samples at sample_rate
        kept = used[~checks.bad[used]]
        size = 2 * int(lengths[kept].sum())
        if preload and size > preload_max_bytes:
            log(
                f"not preloading: decoded training audio would take {size / 2**30:.2f} GiB, more than "
                f"preload_max_bytes ({preload_max_bytes / 2**30:.2f} GiB); reading on demand"
            )
            preload = False
        self._waves: list[np.ndarray | None] | None = None
        if preload:
            self._waves = self._preload(kept, threads)
        rows = len(files)
        bad_rows = checks.bad[files.file_of_row]  # (rows,)
        if bad_rows.any():
            first = files.utterance(int(np.argmax(bad_rows)))
            log(f"skipped {int(bad_rows.sum())} unreadable training file(s) of {rows}: first: {first.path}: "
                f"{checks.reasons[int(files.file_of_row[np.argmax(bad_rows)])]}")
        self._rows = np.flatnonzero(~bad_rows)  # (items,) list row of each item
        self._item_file = files.file_of_row[self._rows]  # (items,)
        self._bad_rows_at_start = int(bad_rows.sum())
        self._broken = torch.zeros(len(files.names), dtype=torch.uint8).share_memory_()
        self._broken_state = torch.zeros(2, dtype=torch.int64).share_memory_()  # [files flagged, gave up]
        self._broken_seen = 0
        if self._waves is not None:
            held = int(lengths[kept].sum())
            log(
                f"preloaded {len(kept)} training files for {len(self)} utterances ({held / sample_rate / 3600:.2f} h, "
                f"{2 * held / 2**30:.2f} GiB) in {time.perf_counter() - started:.1f} s"
            )

    def _refuse_bad_at_start(self) -> None:
        files, checks = self._files, self._checks
        bad_rows = int(checks.bad[files.file_of_row].sum())
        if too_many_bad(bad_rows, len(files), self.max_bad_fraction):
            bad_files = [f for f in dict.fromkeys(files.file_of_row.tolist()) if f in checks.reasons]
            shown = [f"{files.paths[f]}: {checks.reasons[f]}" for f in bad_files[:_SHOWN_BAD]]
            raise DataError(refusal(bad_rows, len(files), self.max_bad_fraction, shown, len(bad_files) - _SHOWN_BAD))

    def _preload(self, kept: np.ndarray, threads: int) -> list[np.ndarray | None]:
        """Decode each kept file once; files that fail to decode become unusable (and may refuse the list)."""
        paths = [self._files.paths[f] for f in kept]
        with ThreadPoolExecutor(max(1, threads)) as pool:
            decoded = list(pool.map(lambda path: _decode_int16(path, self.sample_rate), paths))
        waves: list[np.ndarray | None] = [None] * len(self._files.names)
        for f, wave in zip(kept.tolist(), decoded):
            if isinstance(wave, AudioError):
                self._checks.set(f, wave)
            else:
                waves[f] = wave
                self._lengths[f] = wave.shape[0]
        self._refuse_bad_at_start()
        return waves

    def __len__(self) -> int:
        return self._rows.shape[0]

    @property
    def utterances(self) -> list[Utterance]:
        """The kept (readable) utterances; item i is utterances[i] (one object each: slow for millions)."""
        return [self._files.utterance(row) for row in self._rows.tolist()]

    @property
    def speaker_ids(self) -> np.ndarray:
        """(items,) int64 speaker code of each kept utterance, -1 where unlabelled (see `speakers`)."""
        return self._files.speaker_of_row[self._rows]

    @property
    def speakers(self) -> list[str | None]:
        """Speaker label of each kept utterance (None where unlabelled), aligned with the items."""
        labels = [*self._files.speaker_labels, None]
        return [labels[code] for code in self.speaker_ids.tolist()]

    @property
    def preloaded(self) -> bool:
        """Whether the audio is held in memory."""
        return self._waves is not None

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops `__getitem__` returns."""
        self._epoch[0] = epoch

    def __getitem__(self, i: int) -> torch.Tensor:
        """The two views of utterance i for the current epoch: float32 (2, crop)."""
        return torch.from_numpy(np.ascontiguousarray(self._readable_views(int(i), self.epoch), dtype=np.float32))

    def get_batch(self, indices: list[int]) -> torch.Tensor:
        """A whole batch (n, 2, crop) float32, equal to stacking `self[i]`; one buffer when preloaded."""
        if self._waves is None:
            return torch.stack([self[i] for i in indices])
        epoch = self.epoch
        batch = np.empty((len(indices), 2, self.crop), dtype=np.int16)  # (n, 2, crop)
        for row, i in enumerate(indices):
            batch[row] = two_views(self._waves[self._item_file[i]], self.crop, self._rng(epoch, int(i)))
        return torch.from_numpy(batch).float().div_(_INT16_SCALE)

    def _rng(self, epoch: int, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, i])

    def _views(self, item: int, rng: np.random.Generator) -> np.ndarray:
        """The two views (2, crop) of `item` cut with `rng`; raises AudioError when its file cannot be read."""
        f = int(self._item_file[item])
        length = int(self._lengths[f])
        if self._waves is not None:
            return two_views(self._waves[f], self.crop, rng).astype(np.float32) / _INT16_SCALE
        path = self._files.paths[f]
        if self._checks.rates[f] == self.sample_rate and length >= 2 * self.crop:
            return np.stack([self._read_crop(path, start) for start in two_view_starts(length, self.crop, rng)])
        # short, or at another rate (exact length known only once resampled): decode the whole file
        return two_views(load_audio(path, self.sample_rate), self.crop, rng)

    def _readable_views(self, i: int, epoch: int) -> np.ndarray:
        """The views of item i; when its file cannot be read, those of the first readable item of a stream
        seeded by (seed, epoch, i), cut with item i's own crop stream (the same whatever the worker)."""
        try:
            return self._views(i, self._rng(epoch, i))
        except AudioError as exc:
            self._flag_broken(i, exc)
        pick = np.random.default_rng([self.seed, epoch, i, _SUBSTITUTE])
        for _ in range(_SUBSTITUTE_TRIES):
            j = int(pick.integers(len(self)))
            if self._broken[int(self._item_file[j])]:
                continue
            try:
                return self._views(j, self._rng(epoch, i))
            except AudioError as exc:
                self._flag_broken(j, exc)
        self._broken_state[1] = 1
        raise DataError(f"{_SUBSTITUTE_TRIES} training files drawn in a row were unreadable")

    def _flag_broken(self, item: int, exc: AudioError) -> None:
        f = int(self._item_file[item])
        if self._broken[f]:
            return
        self._broken[f] = 1
        self._broken_state[0] += 1
        self.log(f"unreadable training file while training: {exc}; a readable utterance stands in (counted "
                 f"against max_bad_files={self.max_bad_fraction:g})")

    def broken_files(self) -> list[str]:
        """Paths of the files found unreadable while training (by any worker)."""
        return [self._files.paths[f] for f in np.flatnonzero(self._broken.numpy()).tolist()]

    def refuse_if_too_many_broken(self) -> None:
        """Raise DataError (in the calling process) when the files unusable at start plus those found unreadable
        while training exceed max_bad_fraction of the list's rows, or when a stand-in could not be found."""
        flagged, gave_up = (int(v) for v in self._broken_state)
        if flagged == self._broken_seen and not gave_up:
            return
        self._broken_seen = flagged
        broken = self._broken.numpy().astype(bool)  # (files,) one snapshot: workers may flag more meanwhile
        bad_rows = self._bad_rows_at_start + int(broken[self._item_file].sum())
        rows = len(self._files)
        paths = [self._files.paths[f] for f in np.flatnonzero(broken).tolist()]
        if too_many_bad(bad_rows, rows, self.max_bad_fraction):
            raise DataError(refusal(bad_rows, rows, self.max_bad_fraction, paths[:_SHOWN_BAD],
                                    len(paths) - _SHOWN_BAD, " (counting those that broke while training)"))
        if gave_up:
            raise DataError(f"{_SUBSTITUTE_TRIES} training files drawn in a row were unreadable while training "
                            f"({len(paths)} broken so far, e.g. {'; '.join(paths[:_SHOWN_BAD])}): check the data "
                            "(python -m study.prepare check)")

    def _read_crop(self, path: str, start: int) -> np.ndarray:
        wave = load_audio(path, self.sample_rate, start, self.crop)  # (crop,)
        if wave.shape[0] != self.crop:
            raise AudioError(path, f"changed since it was checked: read {wave.shape[0]} of {self.crop} samples")
        return wave


class BatchedViews(Dataset):
    """Map-style view of a TwoViewDataset whose index is a list of items (a batch from a batch sampler):
    use as `DataLoader(BatchedViews(ds), sampler=batch_sampler, batch_size=None)`."""

    def __init__(self, dataset: TwoViewDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> torch.Tensor:
        return self.dataset.get_batch(indices)
