"""Batches of dataset indices, identical on every rank, each rank taking its slice of the global batch.

Options from sslsv's `Sampler` (paper.md section 3.1, Table 3): `prevent_class_collisions` keeps two
utterances of one speaker out of a global batch, so no positive is ever used as a negative;
`max_utterances_per_speaker` draws at most that many utterances per speaker each epoch, a fresh random subset.
Everything is a deterministic function of (seed, epoch), so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from itertools import islice

import numpy as np

_STREAM = 0xFFFF_FFFF
"""Third seed word, kept apart from the dataset's crop streams [seed, epoch, item]."""


class BatchSampler:
    """Iterable of lists of dataset indices for one rank; pass it as a DataLoader's `batch_sampler`.

    `speakers` are the labels of the items (None = unlabelled), or their int codes (-1 = unlabelled).
    `batch_size` is the global batch (all ranks together); each rank yields batch_size // world_size indices
    per step. The incomplete last batch is dropped. Call `set_epoch` before iterating each epoch.
    """

    def __init__(
        self,
        speakers: list[str | None] | np.ndarray,
        batch_size: int,
        seed: int,
        prevent_class_collisions: bool = False,
        max_utterances_per_speaker: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size <= 0 or world_size <= 0:
            raise ValueError(f"batch_size and world_size must be > 0, got {batch_size} and {world_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by world_size {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside [0, {world_size})")
        if max_utterances_per_speaker < 0:
            raise ValueError(f"max_utterances_per_speaker must be >= 0, got {max_utterances_per_speaker}")
        needs_labels = prevent_class_collisions or max_utterances_per_speaker > 0
        if not needs_labels:
            codes = np.zeros(len(speakers), dtype=np.int64)
        elif isinstance(speakers, np.ndarray):  # speaker codes, -1 = unlabelled: renumbered by first appearance
            codes = speakers.astype(np.int64)
            values, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
            renumbered = np.full(values.shape[0], -1, dtype=np.int64)
            labelled = values >= 0
            renumbered[np.argsort(first[labelled]) + int(np.sum(~labelled))] = np.arange(int(labelled.sum()))
            codes = renumbered[inverse.reshape(-1)]
        else:
            labels: dict[str, int] = {}
            codes = np.fromiter((-1 if s is None else labels.setdefault(s, len(labels)) for s in speakers),
                                dtype=np.int64, count=len(speakers))
        unlabelled = int(np.sum(codes < 0))
        if needs_labels and unlabelled:
            option = "prevent_class_collisions" if prevent_class_collisions else "max_utterances_per_speaker"
            raise ValueError(
                f"{option} needs a speaker label for every utterance, but {unlabelled} of {len(speakers)} have "
                "none (add a Speaker column to the training list)"
            )
        self.batch_size = batch_size
        self.seed = seed
        self.prevent_class_collisions = prevent_class_collisions
        self.max_utterances_per_speaker = max_utterances_per_speaker
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._speaker_ids = codes
        self._by_speaker: list[np.ndarray] = []
        if needs_labels:
            grouped = np.argsort(self._speaker_ids, kind="stable")  # (N,) indices grouped by speaker
            bounds = np.flatnonzero(np.diff(self._speaker_ids[grouped])) + 1
            self._by_speaker = np.split(grouped, bounds)
        usable = self._usable_count()
        if usable < batch_size:
            raise ValueError(f"{usable} utterances cannot fill one batch of {batch_size}")
        if prevent_class_collisions and len(self._by_speaker) < batch_size:
            raise ValueError(
                f"{len(self._by_speaker)} speakers cannot fill one batch of {batch_size} without class collisions"
            )
        self._plan: tuple[int, list[np.ndarray]] | None = None

    def _usable_count(self) -> int:
        if self.max_utterances_per_speaker <= 0:
            return self._speaker_ids.shape[0]
        return sum(min(len(ids), self.max_utterances_per_speaker) for ids in self._by_speaker)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches are yielded."""
        self.epoch = epoch

    def global_batches(self) -> list[np.ndarray]:
        """This epoch's global batches (each batch_size indices), the same on every rank."""
        if self._plan is None or self._plan[0] != self.epoch:
            self._plan = (self.epoch, self._build(np.random.default_rng([self.seed, self.epoch, _STREAM])))
        return self._plan[1]

    def _build(self, rng: np.random.Generator) -> list[np.ndarray]:
        if self.max_utterances_per_speaker > 0:
            cap = self.max_utterances_per_speaker
            pool = np.concatenate([rng.permutation(ids)[:cap] for ids in self._by_speaker])
        else:
            pool = np.arange(self._speaker_ids.shape[0])
        order = rng.permutation(pool)  # (usable,)
        if self.prevent_class_collisions:
            batches = self._collision_free(order)
            return [rng.permutation(batches[k]) for k in rng.permutation(len(batches))]
        count = order.shape[0] // self.batch_size
        return list(order[: count * self.batch_size].reshape(count, self.batch_size))

    def _collision_free(self, order: np.ndarray) -> list[np.ndarray]:
        """Greedy batches over the shuffled `order`: an utterance whose speaker is already in the batch
        being filled waits (per speaker, first in first out) and opens a later batch; what is left when no
        full batch can be formed any more is dropped for this epoch."""
        speaker_of = self._speaker_ids
        waiting: OrderedDict[int, deque[int]] = OrderedDict()
        batches: list[np.ndarray] = []
        batch: list[int] = []
        in_batch: set[int] = set()

        def add_waiting(speaker: int) -> None:
            queue = waiting[speaker]
            batch.append(queue.popleft())
            in_batch.add(speaker)
            if not queue:
                del waiting[speaker]

        def close_if_full() -> bool:
            if len(batch) < self.batch_size:
                return False
            batches.append(np.array(batch, dtype=np.int64))
            batch.clear()
            in_batch.clear()
            for speaker in list(islice(waiting, self.batch_size)):
                add_waiting(speaker)
            return True

        for index in order.tolist():
            speaker = int(speaker_of[index])
            if speaker in in_batch:
                waiting.setdefault(speaker, deque()).append(index)
                continue
            batch.append(index)
            in_batch.add(speaker)
            while close_if_full():
                pass
        while True:
            room = self.batch_size - len(batch)
            for speaker in [s for s in waiting if s not in in_batch][:room]:
                add_waiting(speaker)
            if not close_if_full():
                return batches

    def __iter__(self) -> Iterator[list[int]]:
        size = self.batch_size // self.world_size
        for batch in self.global_batches():
            yield batch[self.rank * size : (self.rank + 1) * size].tolist()

    def __len__(self) -> int:
        return len(self.global_batches())
