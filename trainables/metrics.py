"""Speaker-verification metrics exactly as paper.md section 4, vectorised (one sort, no threshold loop).

Thresholds are placed only between distinct scores, so tied scores are never split (paper.md section 4,
"Ties"); on tie-free scores this equals the authors' per-position definition.
"""

from __future__ import annotations

import numpy as np

FLOOR_METRICS = ("floor_trivial_eer", "floor_trivial_min_dcf", "floor_untrained_eer", "floor_untrained_min_dcf")
"""The names of a run's floors on its trial list (`trainables.floors`), as logged beside `eer` and `min_dcf`."""


def error_rates(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-negative and false-positive rates at every threshold between distinct scores.

    scores: (n,) trial scores; labels: (n,) 1 = target, 0 = non-target.
    Returns (fnr, fpr, thresholds), each (k + 1,): entry 0 is the threshold below every score
    (FNR = 0, FPR = 1); entry j >= 1 rejects every trial scoring <= thresholds[j].
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{int(np.sum(~np.isfinite(scores)))} trial score(s) are not finite")
    n_target = int(labels.sum())
    n_nontarget = labels.size - n_target
    if n_target == 0 or n_nontarget == 0:
        raise ValueError(f"need target and non-target trials, got {n_target} and {n_nontarget}")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]  # (n,)
    targets_below = np.cumsum(labels[order])  # (n,) targets among the k+1 lowest scores
    last_of_group = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]  # (n,) end of each run of ties
    targets_below = targets_below[last_of_group]  # (k,)
    trials_below = np.flatnonzero(last_of_group) + 1  # (k,)
    nontargets_below = trials_below - targets_below  # (k,)
    fnr = np.r_[0.0, targets_below / n_target]  # (k + 1,)
    fpr = np.r_[1.0, (n_nontarget - nontargets_below) / n_nontarget]  # (k + 1,)
    thresholds = np.r_[-np.inf, sorted_scores[last_of_group]]  # (k + 1,)
    return fnr, fpr, thresholds


def eer_from_rates(fnr: np.ndarray, fpr: np.ndarray) -> float:
    """EER in %: at the threshold minimising |FNR - FPR|, max(FNR, FPR) x 100 (no interpolation)."""
    k = int(np.argmin(np.abs(fnr - fpr)))
    return float(max(fnr[k], fpr[k]) * 100.0)


def min_dcf_from_rates(
    fnr: np.ndarray, fpr: np.ndarray, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """Normalised minimum detection cost (NIST SRE16 eqs. 2-4)."""
    c_det = c_miss * fnr * p_target + c_fa * fpr * (1.0 - p_target)  # (k + 1,)
    c_def = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(c_det.min() / c_def)


def eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """Equal error rate in %."""
    return eer_from_rates(*error_rates(scores, labels)[:2])


def min_dcf(scores: np.ndarray, labels: np.ndarray, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """minDCF with p_target 0.01 and unit costs by default."""
    return min_dcf_from_rates(*error_rates(scores, labels)[:2], p_target=p_target, c_miss=c_miss, c_fa=c_fa)


def verification_metrics(scores: np.ndarray, labels: np.ndarray, p_target: float = 0.01) -> dict[str, float]:
    """{'eer': %, 'min_dcf': minDCF at p_target} from one sort."""
    fnr, fpr, _ = error_rates(scores, labels)
    return {"eer": eer_from_rates(fnr, fpr), "min_dcf": min_dcf_from_rates(fnr, fpr, p_target)}
