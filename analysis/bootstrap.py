"""Bootstrap confidence intervals of EER from one run's trial scores (resampling the trials).

A resample is a count per trial (how often it was drawn). With the trials sorted once, the error rates of a
resample follow from cumulative sums of its counts, without sorting again (several times faster on VoxCeleb1-O's
37,720 trials): the same rates as `trainables.metrics.error_rates` on the resampled trials (duplicates are ties,
thresholds lie between distinct scores), and the EER is `trainables.metrics.eer_from_rates` of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.metrics import eer, eer_from_rates

RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    level: float
    resamples: int

    @property
    def width(self) -> float:
        return self.high - self.low


def eer_interval(scores: np.ndarray, labels: np.ndarray, resamples: int = RESAMPLES, level: float = LEVEL,
                 seed: int = 0) -> Interval:
    """EER (%) of the trials and its percentile bootstrap interval.

    Each resample draws, with replacement, as many target trials from the targets and as many non-target
    trials from the non-targets as there are (stratified), so every resample has both classes in the original
    proportion.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(int)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    n_target, n_nontarget = int((labels == 1).sum()), int((labels == 0).sum())
    if n_target < 2 or n_nontarget < 2:
        raise ValueError(f"need at least 2 target and 2 non-target trials, got {n_target} and {n_nontarget}")
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    group_end = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]  # (n,) last trial of each run of ties
    targets, nontargets = np.flatnonzero(sorted_labels == 1), np.flatnonzero(sorted_labels == 0)
    rng = np.random.default_rng(seed)
    counts = np.zeros(scores.size, dtype=np.int64)  # (n,) draws of each sorted trial
    values = np.empty(resamples)
    for i in range(resamples):
        counts[targets] = np.bincount(rng.integers(0, targets.size, targets.size), minlength=targets.size)
        counts[nontargets] = np.bincount(rng.integers(0, nontargets.size, nontargets.size), minlength=nontargets.size)
        values[i] = resampled_eer(sorted_labels, group_end, counts)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(eer(scores, labels), float(low), float(high), level, resamples)


def resampled_eer(sorted_labels: np.ndarray, group_end: np.ndarray, counts: np.ndarray) -> float:
    """EER (%) of the trials drawn `counts` times each (all (n,), in ascending score order; `group_end` marks
    the last trial of each run of tied scores)."""
    targets_below = np.cumsum(counts * sorted_labels)[group_end]  # (k,) drawn targets scoring <= each threshold
    trials_below = np.cumsum(counts)[group_end]  # (k,)
    n_target, n_nontarget = targets_below[-1], trials_below[-1] - targets_below[-1]
    fnr = np.r_[0.0, targets_below / n_target]  # (k + 1,)
    fpr = np.r_[1.0, (n_nontarget - (trials_below - targets_below)) / n_nontarget]  # (k + 1,)
    return eer_from_rates(fnr, fpr)
