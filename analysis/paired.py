"""Paired bootstrap of the difference in EER and minDCF between two configurations scored on the same trials.

Which units are resampled. Trials are not independent: every trial list reuses each speaker (and each
utterance) in many trials, on both sides, so a hard speaker or a bad recording moves many trial scores together.
Resampling trials as if independent then underestimates the variance, most of all for a difference between two
systems, whose per-trial noise largely cancels while its per-speaker part does not (tests/analysis/
test_paired.py shows the under-coverage). Here speakers are resampled (Poh, Martin & Bengio 2007, "Performance
generalization in biometric authentication using joint user-specific and sample bootstraps", IEEE TPAMI
29(3); Bolle, Ratha & Pankanti 2004, "Error analysis of pattern recognition systems - the subsets bootstrap",
CVIU 93). Speakers are the top level of the nested design (utterances within speakers), and resampling the top
level alone carries the variance of every level below it (Davison & Hinkley 1997, "Bootstrap methods and their
application", section 3.8). Resampling utterances instead (`unit="utterance"`) has no speaker level: its coverage
then rests on chance (in the simulation of tests/analysis/test_paired.py it over-covers, 97-99 %, because its
product weights on pairs of utterances of one speaker over-disperse); it is there for lists without speaker names.

How a trial is weighted. Both sides of a trial come from the same population of speakers, so one draw of units
serves both sides: a resample draws n units with replacement out of n, unit u c_u times, and treats each copy as
a new unit. A trial between two different units a and b then occurs once per pair of copies, c_a * c_b times; a
trial within one unit (a target trial, when units are speakers) occurs once per copy, c_a times. This is the
pigeonhole (two-way, crossed) bootstrap of Owen 2007 ("The pigeonhole bootstrap", Annals of Applied
Statistics 1(2)) with rows and columns drawn from one population, as for dyadic data. The numbers of target and
non-target trials vary between resamples; the rates are normalised per class, and a resample that has no
target or no non-target trial is drawn again.

Paired: every resample applies the same trial weights to both configurations, so what the two share (the
trials, their speakers) cancels in the difference. The weighted error rates are exact for integer weights (a
trial drawn k times counts k times): with each score set sorted once, they are cumulative sums of the weights, as
in `analysis.bootstrap`, computed for a block of resamples at once.

Several seeds: a configuration may give one score set per training seed, all on the same trials, as rows of a
(seeds, trials) array. The difference is that of the seed-mean metrics, mean_s metric(b_s) - mean_s metric(a_s)
(the two may have different seed counts), and each resample applies the same trial weights to every seed of
both. The seeds are held fixed: the interval is over speakers (trials) for these trained models, and does not
include seed-to-seed variation in training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.bootstrap import LEVEL, RESAMPLES, Interval
from trainables.manifest import ManifestError

BLOCK_ELEMENTS = 1 << 21
"""Resamples are done in blocks of about this many (resample, trial) weights (16 MiB of int64)."""
REDRAWS = 100
"""Tries per resample to draw one that has both target and non-target trials."""


@dataclass(frozen=True)
class TrialUnits:
    """The clustering unit of each trial's two sides, as integer ids 0..count-1."""

    enrol: np.ndarray
    """(n,) unit id of the enrolment side."""
    test: np.ndarray
    """(n,) unit id of the test side."""
    names: tuple[str, ...]
    """The name of each unit id."""


@dataclass(frozen=True)
class PairedDifference:
    """metric(b) - metric(a), seed-mean when several seeds: EER in percentage points, and minDCF."""

    eer: Interval
    min_dcf: Interval


def speaker_of(name: str) -> str:
    """The speaker of a trial-list name: its first folder (`id10270/5r0dWxy17C8/00001.wav` -> `id10270`, the
    VoxCeleb and speechocean762 layouts). Absolute names and names without a folder are refused."""
    head, sep, _ = name.partition("/")
    if not sep or not head or name.startswith(("/", "~")) or head in (".", ".."):
        raise ManifestError(
            f"trial-list name {name!r} does not start with a speaker folder (expected 'speaker/.../file'); "
            "pass trial_units a function that maps a name to its speaker, or unit='utterance'"
        )
    return head


def trial_units(enrol: Sequence[str], test: Sequence[str],
                unit: str | Callable[[str], str] = "speaker") -> TrialUnits:
    """Each trial's units from its enrolment and test names (as in the trial list, `Trial.enrol`/`.test`).

    unit: "speaker" (`speaker_of`, the default and the justified choice, see the module docstring),
    "utterance" (the name itself), or a function from a name to its unit.
    """
    if len(enrol) != len(test):
        raise ValueError(f"{len(enrol)} enrolment names but {len(test)} test names")
    if unit == "speaker":
        unit_of = speaker_of
    elif unit == "utterance":
        unit_of = str
    elif callable(unit):
        unit_of = unit
    else:
        raise ValueError(f"unit must be 'speaker', 'utterance' or a function, got {unit!r}")
    ids: dict[str, int] = {}
    of_name: dict[str, int] = {}

    def id_of(name: str) -> int:
        if name not in of_name:
            of_name[name] = ids.setdefault(unit_of(name), len(ids))
        return of_name[name]

    enrol_ids = np.fromiter((id_of(n) for n in enrol), dtype=np.int64, count=len(enrol))
    test_ids = np.fromiter((id_of(n) for n in test), dtype=np.int64, count=len(test))
    return TrialUnits(enrol_ids, test_ids, tuple(ids))


def paired_difference(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray, units: TrialUnits,
                      resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0,
                      p_target: float = 0.01) -> PairedDifference:
    """Difference b - a in EER (points) and minDCF, with percentile intervals from the paired unit bootstrap
    (module docstring). scores_a, scores_b: (n,) or (seeds, n), aligned with labels (n,) and units."""
    labels = _labels(labels)
    if units.enrol.shape != labels.shape or units.test.shape != labels.shape:
        raise ValueError(f"units cover {units.enrol.size} and {units.test.size} trials, labels {labels.size}")
    if len(units.names) < 2:
        raise ValueError(f"need at least 2 units to resample, got {len(units.names)}")
    enrol, test = units.enrol, units.test
    within = enrol == test  # (n,)
    count = len(units.names)

    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        copies = _row_counts(rng.integers(0, count, (size, count)), count)  # (size, count) draws of each unit
        return np.where(within, copies[:, enrol], copies[:, enrol] * copies[:, test])  # (size, n)

    return _bootstrap(scores_a, scores_b, labels, draw, resamples, level, seed, p_target)


def trial_paired_difference(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray,
                            resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0,
                            p_target: float = 0.01) -> PairedDifference:
    """As `paired_difference`, but resampling trials as if independent (stratified by class, as
    `analysis.bootstrap.eer_interval`): too narrow when trials share speakers, kept for comparison."""
    labels = _labels(labels)
    classes = [np.flatnonzero(labels == c) for c in (0, 1)]

    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        drawn = np.concatenate([m[rng.integers(0, m.size, (size, m.size))] for m in classes], axis=1)  # (size, n)
        return _row_counts(drawn, labels.size)  # (size, n)

    return _bootstrap(scores_a, scores_b, labels, draw, resamples, level, seed, p_target)


def difference_replicates(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                          p_target: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(EER, minDCF) differences b - a, each (r,), of the seed-mean metrics on the trials counted `weights`
    (r, n) non-negative integer times each; every row needs a weighted target and non-target trial."""
    labels = _labels(labels)
    a, b = _score_sets(scores_a, labels), _score_sets(scores_b, labels)
    weights = np.atleast_2d(np.asarray(weights))
    if weights.shape[1:] != labels.shape or weights.dtype.kind not in "iub" or (weights < 0).any():
        raise ValueError(f"weights must be non-negative integers of shape (r, {labels.size}), got {weights.dtype} "
                         f"{weights.shape}")
    weights = weights.astype(np.int64)
    totals = weights @ np.stack([labels, 1 - labels], axis=1)  # (r, 2) weighted targets, non-targets
    if (totals == 0).any():
        raise ValueError("a weight row has no target or no non-target trial")
    eer_a, dcf_a = _mean_metrics(a, labels, weights, p_target)
    eer_b, dcf_b = _mean_metrics(b, labels, weights, p_target)
    return eer_b - eer_a, dcf_b - dcf_a


def _bootstrap(scores_a, scores_b, labels, draw, resamples, level, seed, p_target) -> PairedDifference:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    a, b = _score_sets(scores_a, labels), _score_sets(scores_b, labels)
    n_target = int(labels.sum())
    if n_target < 2 or labels.size - n_target < 2:
        raise ValueError(f"need at least 2 target and 2 non-target trials, got {n_target} and "
                         f"{labels.size - n_target}")
    ones = np.ones((1, labels.size), dtype=np.int64)
    (eer_all_a,), (dcf_all_a,) = _mean_metrics(a, labels, ones, p_target)
    (eer_all_b,), (dcf_all_b,) = _mean_metrics(b, labels, ones, p_target)
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_ELEMENTS // labels.size)
    eers, dcfs = np.empty(resamples), np.empty(resamples)
    for start in range(0, resamples, block):
        weights = _valid_draws(draw, rng, min(block, resamples - start), labels)  # (size, n)
        stop = start + weights.shape[0]
        eer_a, dcf_a = _mean_metrics(a, labels, weights, p_target)
        eer_b, dcf_b = _mean_metrics(b, labels, weights, p_target)
        eers[start:stop], dcfs[start:stop] = eer_b - eer_a, dcf_b - dcf_a
    eer, dcf = float(eer_all_b - eer_all_a), float(dcf_all_b - dcf_all_a)
    return PairedDifference(_interval(eer, eers, level), _interval(dcf, dcfs, level))


def _valid_draws(draw, rng: np.random.Generator, size: int, labels: np.ndarray) -> np.ndarray:
    """`size` weight rows, each with weighted target and non-target trials (others drawn again)."""
    weights = draw(rng, size)  # (size, n)
    for attempt in range(REDRAWS):
        totals = weights @ np.stack([labels, 1 - labels], axis=1)  # (size, 2)
        bad = np.flatnonzero((totals == 0).any(axis=1))
        if bad.size == 0:
            return weights
        if attempt < REDRAWS - 1:
            weights[bad] = draw(rng, bad.size)
    raise ValueError(f"resamples keep lacking target or non-target trials after {REDRAWS} draws: too few units "
                     "with both kinds of trial")


def _row_counts(drawn: np.ndarray, size: int) -> np.ndarray:
    """(r, size) how often each of 0..size-1 occurs in each row of `drawn` (r, m)."""
    offsets = np.arange(drawn.shape[0])[:, None] * size  # (r, 1)
    return np.bincount((drawn + offsets).ravel(), minlength=drawn.shape[0] * size).reshape(-1, size)


def _interval(estimate: float, values: np.ndarray, level: float) -> Interval:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), level, values.size)


def _labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels).ravel()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    return labels.astype(np.int64)


@dataclass(frozen=True)
class _Sorted:
    """One score set sorted once: the order, and the last trial of each run of tied scores."""

    order: np.ndarray
    group_end: np.ndarray


def _score_sets(scores: np.ndarray, labels: np.ndarray) -> list[_Sorted]:
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[None] if scores.ndim == 1 else scores  # (seeds, n)
    if scores.ndim != 2 or scores.shape[1] != labels.size or scores.shape[0] == 0:
        raise ValueError(f"scores must be (n,) or (seeds, n) with n = {labels.size} trials, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} trial score(s) are not finite")
    sets = []
    for row in scores:
        order = np.argsort(row, kind="stable")
        ordered = row[order]
        sets.append(_Sorted(order, np.r_[ordered[1:] != ordered[:-1], True]))  # (n,) end of each run of ties
    return sets


def _mean_metrics(sets: list[_Sorted], labels: np.ndarray, weights: np.ndarray,
                  p_target: float) -> tuple[np.ndarray, np.ndarray]:
    """Seed-mean (EER %, minDCF), each (r,), of the trials counted `weights` (r, n) times."""
    eers, dcfs = np.zeros(weights.shape[0]), np.zeros(weights.shape[0])
    for s in sets:
        eer, dcf = _weighted_metrics(labels[s.order], s.group_end, weights[:, s.order], p_target)
        eers += eer
        dcfs += dcf
    return eers / len(sets), dcfs / len(sets)


def _weighted_metrics(sorted_labels: np.ndarray, group_end: np.ndarray, counts: np.ndarray,
                      p_target: float) -> tuple[np.ndarray, np.ndarray]:
    """(EER %, minDCF), each (r,), of trials in ascending score order counted `counts` (r, n) times: the rates
    of `trainables.metrics.error_rates` on the repeated trials, then `eer_from_rates`/`min_dcf_from_rates`
    (unit costs) row by row, with the same floating-point operations."""
    targets_below = np.cumsum(counts * sorted_labels, axis=1)[:, group_end]  # (r, k)
    trials_below = np.cumsum(counts, axis=1)[:, group_end]  # (r, k)
    n_target = targets_below[:, -1:]  # (r, 1)
    n_nontarget = trials_below[:, -1:] - n_target  # (r, 1)
    rows = counts.shape[0]
    fnr = np.c_[np.zeros(rows), targets_below / n_target]  # (r, k + 1)
    fpr = np.c_[np.ones(rows), (n_nontarget - (trials_below - targets_below)) / n_nontarget]  # (r, k + 1)
    at = np.argmin(np.abs(fnr - fpr), axis=1)[:, None]  # (r, 1)
    eer = np.maximum(np.take_along_axis(fnr, at, 1), np.take_along_axis(fpr, at, 1))[:, 0] * 100.0  # (r,)
    c_det = 1.0 * fnr * p_target + 1.0 * fpr * (1.0 - p_target)  # (r, k + 1)
    dcf = c_det.min(axis=1) / min(1.0 * p_target, 1.0 * (1.0 - p_target))  # (r,)
    return eer, dcf
