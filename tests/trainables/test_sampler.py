from collections import Counter

import numpy as np
import pytest

from trainables.sampler import BatchSampler


def labels(counts: list[int]) -> list[str]:
    """Speaker labels for utterances grouped by speaker: counts[k] utterances of speaker k."""
    return [f"spk{k}" for k, n in enumerate(counts) for _ in range(n)]


def unbalanced(seed: int = 0, speakers: int = 60) -> list[str]:
    counts = np.random.default_rng(seed).integers(1, 40, speakers).tolist()
    counts[0] = 150  # one dominant speaker
    speaker_list = labels(counts)
    order = np.random.default_rng(seed + 1).permutation(len(speaker_list))
    return [speaker_list[k] for k in order]


def test_plain_batches_cover_a_shuffle_and_drop_the_last():
    sampler = BatchSampler([None] * 103, batch_size=10, seed=5)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 10
    assert all(len(b) == 10 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == 100 and set(flat) <= set(range(103))
    assert flat != sorted(flat)


def test_deterministic_per_seed_and_epoch():
    a, b = BatchSampler([None] * 50, 10, seed=1), BatchSampler([None] * 50, 10, seed=1)
    assert list(a) == list(b)
    epoch0 = list(a)
    a.set_epoch(1)
    assert list(a) != epoch0
    a.set_epoch(0)
    assert list(a) == epoch0
    assert list(BatchSampler([None] * 50, 10, seed=2)) != epoch0


@pytest.mark.parametrize("collisions", [False, True])
def test_ranks_partition_the_global_batch(collisions):
    speakers = unbalanced()
    world = 4
    samplers = [
        BatchSampler(speakers, 40, seed=3, prevent_class_collisions=collisions, rank=r, world_size=world)
        for r in range(world)
    ]
    for s in samplers:
        s.set_epoch(2)
    per_rank = [list(s) for s in samplers]
    assert len({len(batches) for batches in per_rank}) == 1
    for step, global_batch in enumerate(samplers[0].global_batches()):
        parts = [per_rank[r][step] for r in range(world)]
        assert all(len(p) == 10 for p in parts)
        assert sum(parts, []) == global_batch.tolist()


def test_batch_size_must_divide_by_world_size():
    with pytest.raises(ValueError, match="not divisible by world_size 3"):
        BatchSampler([None] * 100, 10, seed=0, world_size=3)


def test_too_few_utterances():
    with pytest.raises(ValueError, match="9 utterances cannot fill one batch of 10"):
        BatchSampler([None] * 9, 10, seed=0)
    with pytest.raises(ValueError, match="6 utterances cannot fill one batch of 10"):
        BatchSampler(labels([5, 5, 5]), 10, seed=0, max_utterances_per_speaker=2)


def test_options_need_labels():
    for kwargs in ({"prevent_class_collisions": True}, {"max_utterances_per_speaker": 2}):
        with pytest.raises(ValueError, match="needs a speaker label for every utterance, but 1 of 30"):
            BatchSampler(labels([10, 10]) + [None] + labels([9]), 4, seed=0, **kwargs)


def test_collision_free_batches():
    speakers = unbalanced()
    sampler = BatchSampler(speakers, 32, seed=11, prevent_class_collisions=True)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) > 0
        for batch in batches:
            assert len(batch) == 32
            assert len({speakers[i] for i in batch}) == 32, "two utterances of one speaker in a batch"
        flat = [i for b in batches for i in b]
        assert len(set(flat)) == len(flat)
        # n collision-free batches exist iff sum_s min(count_s, n) >= n * B; greedy deferral gets close.
        counts = Counter(speakers).values()
        best = max(n for n in range(1, len(speakers) // 32 + 1) if sum(min(c, n) for c in counts) >= n * 32)
        assert len(batches) >= best - 2


def test_collision_free_batches_keep_almost_everything_with_many_speakers():
    speakers = labels(np.random.default_rng(2).integers(1, 20, 400).tolist())
    sampler = BatchSampler(speakers, 32, seed=0, prevent_class_collisions=True)
    assert len(sampler) == len(speakers) // 32
    for batch in sampler:
        assert len({speakers[i] for i in batch}) == 32


def test_plain_batches_do_collide_on_the_same_data():
    speakers = unbalanced()
    batches = list(BatchSampler(speakers, 32, seed=11))
    assert any(len({speakers[i] for i in b}) < 32 for b in batches)


def test_collision_prevention_needs_enough_speakers():
    with pytest.raises(ValueError, match="3 speakers cannot fill one batch of 4 without class collisions"):
        BatchSampler(labels([10, 10, 10]), 4, seed=0, prevent_class_collisions=True)


@pytest.mark.parametrize("collisions", [False, True])
def test_per_speaker_cap_draws_fresh_subsets(collisions):
    speakers = labels([30, 12, 3, 8, 20, 5, 40, 2])
    cap = 4
    sampler = BatchSampler(speakers, 6, seed=4, prevent_class_collisions=collisions, max_utterances_per_speaker=cap)
    drawn = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        flat = [i for b in sampler for i in b]
        counts = Counter(speakers[i] for i in flat)
        assert max(counts.values()) <= cap
        drawn.append(frozenset(flat))
    usable = sum(min(n, cap) for n in Counter(speakers).values())  # 29
    if not collisions:
        assert len(sampler) == usable // 6
    assert len(set(drawn)) > 1, "the capped subset should change between epochs"
    assert len(frozenset().union(*drawn)) > usable
