"""The DataLoader of a run: how many worker processes read audio, and the check of files that break while
training, raised in the training process (not as a worker's wrapped traceback)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from trainables.dataset import BatchedViews, TwoViewDataset
from trainables.sampler import BatchSampler

AUTO_WORKERS = -1
"""`loader_workers` value that sizes the workers from the preload decision and the CPUs (see `auto_workers`)."""
MAX_AUTO_WORKERS = 8
PREFETCH_BATCHES = 2
"""Batches each worker prepares ahead; each is held in shared memory (a paper batch is about 50 MB)."""


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by torch's thread count (which follows
    OMP_NUM_THREADS, set by Ray to the CPUs of a trial's worker)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, torch.get_num_threads()))


def auto_workers(preloaded: bool, cpus: int) -> int:
    """Loader workers for `loader_workers` = AUTO_WORKERS: none when the audio is in memory (slicing it is
    cheaper than handing batches between processes), else one per CPU but the training process's own, at least
    one and at most MAX_AUTO_WORKERS."""
    if preloaded:
        return 0
    return max(1, min(MAX_AUTO_WORKERS, cpus - 1))


class CheckedLoader:
    """Iterates a DataLoader over a TwoViewDataset and, after every batch (and on a worker's failure), raises
    the dataset's DataError here, in the training process, once too many files broke while training."""

    def __init__(self, loader: DataLoader, dataset: TwoViewDataset):
        self.loader = loader
        self.dataset = dataset

    @property
    def num_workers(self) -> int:
        return self.loader.num_workers

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[torch.Tensor]:
        batches = iter(self.loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception:
                self.dataset.refuse_if_too_many_broken()
                raise
            self.dataset.refuse_if_too_many_broken()
            yield batch


def build_loader(dataset: TwoViewDataset, sampler: BatchSampler, workers: int, device: torch.device) -> CheckedLoader:
    """Batches (n, 2, crop) of `sampler`'s indices; `workers` = AUTO_WORKERS picks the count (`auto_workers`)."""
    if workers == AUTO_WORKERS:
        workers = auto_workers(dataset.preloaded, available_cpus())
    options = {"persistent_workers": True, "prefetch_factor": PREFETCH_BATCHES} if workers > 0 else {}
    loader = DataLoader(BatchedViews(dataset), sampler=sampler, batch_size=None, num_workers=workers,
                        pin_memory=device.type == "cuda", **options)
    return CheckedLoader(loader, dataset)
