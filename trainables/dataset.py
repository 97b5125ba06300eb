"""The training dataset: each item is the two views (2, crop) of one utterance (paper.md section 3.1).

Every file is checked once at construction; unreadable files are skipped and counted, and too many of them
is an error. Audio is preloaded into memory as int16 when it fits `preload_max_bytes`, else read on demand
(only the two crop regions when the file is at the target rate). The views of item i in epoch e depend only
on (seed, e, i), so they are identical whatever the worker count, the order or a resume from a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from trainables.audio import AudioError, audio_info, load_audio, resampled_length
from trainables.crops import two_view_starts, two_views
from trainables.manifest import Utterance

_INT16_SCALE = 32768.0
_SHOWN_BAD = 5


class DataError(ValueError):
    """The training data as a whole cannot be used (e.g. too many unreadable files)."""


def _info_or_error(path: str) -> tuple[int, int] | AudioError:
    try:
        return audio_info(path)
    except AudioError as exc:
        return exc


def _decode_int16(path: str, sample_rate: int) -> np.ndarray | AudioError:
    """The whole file as int16 at `sample_rate` (lossless for 16-bit PCM sources), or the error."""
    try:
        wave = load_audio(path, sample_rate)  # (samples,) float32 in [-1, 1]
    except AudioError as exc:
        return exc
    if wave.shape[0] == 0:
        return AudioError(path, "zero-length audio after resampling")
    return np.clip(np.rint(wave * _INT16_SCALE), -32768, 32767).astype(np.int16)


def _refuse_too_many(bad: list[AudioError], total: int, max_bad_fraction: float) -> None:
    """Raise DataError when all files, or more than max_bad_fraction of them, are unreadable."""
    if bad and (len(bad) == total or len(bad) / total > max_bad_fraction):
        shown = "; ".join(str(exc) for exc in bad[:_SHOWN_BAD])
        more = f"; and {len(bad) - _SHOWN_BAD} more" if len(bad) > _SHOWN_BAD else ""
        raise DataError(
            f"{len(bad)} of {total} training files ({len(bad) / total:.1%}) are unreadable, more than "
            f"max_bad_files={max_bad_fraction:g} allows (--set max_bad_files=F to skip more): {shown}{more}"
        )


class TwoViewDataset(Dataset):
    """Two non-overlapping crops per utterance, as a float32 tensor (2, crop); see the module docstring.

    `utterances` are the training files, `crop` the view length in samples at `sample_rate`, `seed` the
    seed of every crop position. Call `set_epoch` before each epoch's iterator is created; the epoch is held
    in shared memory, so it also reaches DataLoader workers started earlier (persistent_workers=True).
    """

    def __init__(
        self,
        utterances: list[Utterance],
        sample_rate: int,
        crop: int,
        seed: int,
        preload: bool = True,
        preload_max_bytes: int = 4 << 30,
        max_bad_fraction: float = 0.01,
        log: Callable[[str], object] = print,
        threads: int = 16,
    ):
        if crop <= 0 or sample_rate <= 0:
            raise ValueError(f"crop and sample_rate must be > 0, got crop={crop}, sample_rate={sample_rate}")
        if not utterances:
            raise DataError("no training utterances given")
        self.sample_rate = sample_rate
        self.crop = crop
        self.seed = seed
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        total = len(utterances)
        started = time.perf_counter()
        with ThreadPoolExecutor(max(1, threads)) as pool:
            infos = list(pool.map(_info_or_error, [u.path for u in utterances]))
            bad = [info for info in infos if isinstance(info, AudioError)]
            kept = [(u, info) for u, info in zip(utterances, infos) if not isinstance(info, AudioError)]
            _refuse_too_many(bad, total, max_bad_fraction)
            lengths = [resampled_length(frames, rate, sample_rate) for _, (frames, rate) in kept]
            size = 2 * sum(lengths)
            if preload and size > preload_max_bytes:
                log(
                    f"not preloading: decoded training audio would take {size / 2**30:.2f} GiB, more than "
                    f"preload_max_bytes ({preload_max_bytes / 2**30:.2f} GiB); reading on demand"
                )
                preload = False
            waves: list[np.ndarray] | None = None
            if preload:
                decoded = list(pool.map(lambda item: _decode_int16(item[0].path, sample_rate), kept))
                bad += [wave for wave in decoded if isinstance(wave, AudioError)]
                kept = [item for item, wave in zip(kept, decoded) if not isinstance(wave, AudioError)]
                waves = [wave for wave in decoded if not isinstance(wave, AudioError)]
                lengths = [wave.shape[0] for wave in waves]
        _refuse_too_many(bad, total, max_bad_fraction)
        if bad:
            log(f"skipped {len(bad)} unreadable training file(s) of {total}: first: {bad[0].path}: {bad[0].reason}")
        self._utterances = [u for u, _ in kept]
        self._rates = [rate for _, (_, rate) in kept]
        self._lengths = lengths
        self._waves = waves
        if waves is not None:
            log(
                f"preloaded {len(waves)} training utterances ({sum(lengths) / sample_rate / 3600:.2f} h, "
                f"{2 * sum(lengths) / 2**30:.2f} GiB) in {time.perf_counter() - started:.1f} s"
            )

    def __len__(self) -> int:
        return len(self._utterances)

    @property
    def utterances(self) -> list[Utterance]:
        """The kept (readable) utterances; item i is utterances[i]."""
        return list(self._utterances)

    @property
    def speakers(self) -> list[str | None]:
        """Speaker label of each kept utterance (None where unlabelled), aligned with the items."""
        return [u.speaker for u in self._utterances]

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
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        length = self._lengths[i]
        if self._waves is not None:
            views = two_views(self._waves[i], self.crop, rng).astype(np.float32) / _INT16_SCALE  # (2, crop)
        elif self._rates[i] == self.sample_rate and length >= 2 * self.crop:
            path = self._utterances[i].path
            views = np.stack([self._read_crop(path, start) for start in two_view_starts(length, self.crop, rng)])
        else:  # short, or at another rate (exact length known only once resampled): decode the whole file
            views = two_views(load_audio(self._utterances[i].path, self.sample_rate), self.crop, rng)
        return torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32))

    def get_batch(self, indices: list[int]) -> torch.Tensor:
        """A whole batch (n, 2, crop) float32, equal to stacking `self[i]`; one buffer when preloaded."""
        if self._waves is None:
            return torch.stack([self[i] for i in indices])
        batch = np.empty((len(indices), 2, self.crop), dtype=np.int16)  # (n, 2, crop)
        for row, i in enumerate(indices):
            batch[row] = two_views(self._waves[i], self.crop, np.random.default_rng([self.seed, self.epoch, int(i)]))
        return torch.from_numpy(batch).float().div_(_INT16_SCALE)

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
