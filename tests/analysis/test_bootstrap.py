"""Bootstrap intervals of EER: on synthetic scores, and on the trial scores a real study stored."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from analysis.bootstrap import eer_interval, resampled_eer
from analysis.runs import load_runs, load_scores
from trainables.metrics import eer


def gaussian_trials(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n // 2, dtype=int), np.zeros(n - n // 2, dtype=int)]
    return rng.normal(labels * 1.5, 1.0), labels


def test_a_resample_from_counts_has_the_eer_of_the_repeated_trials_ties_included():
    rng = np.random.default_rng(1)
    scores, labels = np.round(rng.normal(size=300), 1), (rng.random(300) < 0.3).astype(int)  # many ties
    order = np.argsort(scores, kind="stable")
    scores, labels = scores[order], labels[order]
    group_end = np.r_[scores[1:] != scores[:-1], True]
    for counts in rng.integers(0, 3, (30, 300)):
        expected = eer(np.repeat(scores, counts), np.repeat(labels, counts))
        assert resampled_eer(labels, group_end, counts) == pytest.approx(expected, abs=1e-12)
    assert resampled_eer(labels, group_end, np.ones(300, dtype=int)) == pytest.approx(eer(scores, labels), abs=1e-12)


def test_separable_scores_have_a_zero_interval():
    labels = np.r_[np.ones(50), np.zeros(50)]
    interval = eer_interval(labels + 0.01 * np.arange(100) / 100, labels, resamples=200)
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_interval_is_reproducible_brackets_the_estimate_and_follows_the_level():
    scores, labels = gaussian_trials(2000)
    wide = eer_interval(scores, labels, resamples=400, level=0.95, seed=3)
    assert wide == eer_interval(scores, labels, resamples=400, level=0.95, seed=3)
    assert wide.estimate == eer(scores, labels)
    assert wide.low < wide.estimate < wide.high
    narrow = eer_interval(scores, labels, resamples=400, level=0.5, seed=3)
    assert wide.low <= narrow.low and narrow.high <= wide.high and narrow.width < wide.width


def test_interval_covers_the_population_eer_about_as_often_as_its_level():
    population = 100 * (1 - NormalDist().cdf(0.75))  # EER of N(1.5, 1) vs N(0, 1)
    hits = 0
    for seed in range(40):
        scores, labels = gaussian_trials(600, seed)
        interval = eer_interval(scores, labels, resamples=200, level=0.9, seed=seed)
        hits += interval.low <= population <= interval.high
    assert 28 <= hits <= 40  # 90 % nominal: 36 expected


def test_refuses_a_single_class():
    with pytest.raises(ValueError, match="target"):
        eer_interval(np.arange(10.0), np.ones(10))


@pytest.mark.slow
def test_interval_from_stored_scores_contains_the_logged_eer_and_narrows_with_more_trials(store):
    runs = load_runs(store.study, store.uri)
    for _, run in runs.complete.iterrows():
        scores, labels = load_scores(store.uri, run)
        full = eer_interval(scores, labels, resamples=500)
        assert full.estimate == pytest.approx(run["eer"], abs=1e-9)  # the same scoring the run logged
        assert full.low <= full.estimate <= full.high

        rng = np.random.default_rng(0)
        keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), (labels == c).sum() // 4, replace=False)
                               for c in (0, 1)])
        quarter = eer_interval(scores[keep], labels[keep], resamples=500)
        assert quarter.width > 1.4 * full.width, (quarter, full)  # ~2x expected for 4x fewer trials
