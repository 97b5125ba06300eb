"""EER and minDCF against slow references written from paper.md section 4."""

import numpy as np
import pytest

from trainables.metrics import eer, error_rates, min_dcf, verification_metrics


def slow_rates_between_distinct(scores, labels):
    """Loop over thresholds: below all scores, then at each distinct score (reject score <= threshold)."""
    n_t, n_n = labels.sum(), (1 - labels).sum()
    rates = [(0.0, 1.0)]
    for thr in sorted(set(scores.tolist())):
        fnr = sum(1 for s, l in zip(scores, labels) if l == 1 and s <= thr) / n_t
        fpr = sum(1 for s, l in zip(scores, labels) if l == 0 and s > thr) / n_n
        rates.append((fnr, fpr))
    return rates


def slow_eer(scores, labels):
    rates = slow_rates_between_distinct(scores, labels)
    best = min(rates, key=lambda r: abs(r[0] - r[1]))
    return max(best) * 100


def slow_min_dcf(scores, labels, p=0.01):
    rates = slow_rates_between_distinct(scores, labels)
    return min(fnr * p + fpr * (1 - p) for fnr, fpr in rates) / min(p, 1 - p)


def authors_eer_min_dcf(scores, labels, p=0.01):
    """The authors' per-position definition (argsort, one threshold per position); equal on tie-free scores."""
    order = np.argsort(scores)
    labels = labels[order]
    n_t, n_n = labels.sum(), (1 - labels).sum()
    fnr = np.r_[0, np.cumsum(labels) / n_t]
    fpr = np.r_[1, 1 - np.cumsum(1 - labels) / n_n]
    k = np.argmin(np.abs(fnr - fpr))
    return max(fnr[k], fpr[k]) * 100, (fnr * p + fpr * (1 - p)).min() / min(p, 1 - p)


@pytest.mark.parametrize("seed", range(8))
def test_random_scores_match_slow_reference(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = rng.normal(labels * rng.uniform(0.2, 2.0), 1.0)
    assert eer(scores, labels) == pytest.approx(slow_eer(scores, labels), abs=1e-12)
    assert min_dcf(scores, labels) == pytest.approx(slow_min_dcf(scores, labels), abs=1e-12)
    a_eer, a_dcf = authors_eer_min_dcf(scores, labels)
    assert eer(scores, labels) == pytest.approx(a_eer, abs=1e-12)
    assert min_dcf(scores, labels) == pytest.approx(a_dcf, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_tied_scores_match_slow_reference(seed):
    rng = np.random.default_rng(100 + seed)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(labels * 1.0, 1.0), 1)  # many ties, across labels too
    assert eer(scores, labels) == pytest.approx(slow_eer(scores, labels), abs=1e-12)
    assert min_dcf(scores, labels) == pytest.approx(slow_min_dcf(scores, labels), abs=1e-12)


def test_hand_made_cases():
    # perfect separation
    assert eer([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    assert min_dcf([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    # perfectly inverted
    assert eer([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 100.0
    # all scores tied: the only thresholds reject nothing or everything
    assert eer([0.5] * 4, [0, 1, 0, 1]) == 100.0
    # one target among non-targets: targets 0.3, 0.9; non-targets 0.1, 0.5 -> best split FNR=FPR=0.5
    assert eer([0.3, 0.9, 0.1, 0.5], [1, 1, 0, 0]) == 50.0
    # minDCF closed form: rejecting everything costs c_miss*p/C_def = 1
    assert min_dcf([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == pytest.approx(1.0)


def test_error_rates_shape_and_ends():
    fnr, fpr, thr = error_rates(np.array([0.2, 0.2, 0.7]), np.array([0, 1, 1]))
    assert fnr.tolist() == [0.0, 0.5, 1.0] and fpr.tolist() == [1.0, 0.0, 0.0]
    assert thr[0] == -np.inf and thr[1:].tolist() == [0.2, 0.7]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="target and non-target"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="not finite"):
        eer([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="differ"):
        eer([0.1, 0.2, 0.3], [0, 1])


def test_verification_metrics_combines_both():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(labels, 1.0)
    out = verification_metrics(scores, labels)
    assert out == {"eer": eer(scores, labels), "min_dcf": min_dcf(scores, labels)}
