"""Floors in the analysis: what each run's trial list gives without learning (`trainables.floors`: the trivial
log-mel statistic and the untrained encoder, logged with every evaluated epoch), and the one rule that flags a run
as not learned.

A run has not learned when its EER is above the lower of its two floors minus `NOT_LEARNED_POINTS` points: a
result within a few points of what a trivial statistic or a random network scores says nothing about the loss
or its margin. Runs logged before floors existed have none (NaN): they are neither flagged nor cleared.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

import numpy as np
import pandas as pd

from trainables.metrics import FLOOR_METRICS

NOT_LEARNED_POINTS = 3.0
"""A run whose EER is above (its lower floor - this many points) is flagged as not learned."""
NOT_LEARNED_MARK = "†"
"""The marker of a not-learned EER in the tables."""
FLOOR_NAMES = {"trivial": "trivial statistic", "untrained": "untrained encoder"}
NOT_LEARNED_NOTE = (f"{NOT_LEARNED_MARK} not learned: EER above the lower of the run's two floors minus "
                    f"{NOT_LEARNED_POINTS:g} points (the floors are scored on the same trials)")


def learned(eer: float, floors: Iterable[float]) -> bool | None:
    """Whether an EER (%) is more than NOT_LEARNED_POINTS below the lowest of its floors (EER, %); None when
    the EER or every floor is unknown (NaN)."""
    known = [float(f) for f in floors if f is not None and math.isfinite(float(f))]
    if eer is None or not math.isfinite(float(eer)) or not known:
        return None
    return float(eer) <= min(known) - NOT_LEARNED_POINTS


def run_learned(run: pd.Series | dict[str, Any]) -> bool | None:
    """`learned` of one run (a row with `eer` and the floor metrics)."""
    return learned(run.get("eer"), (run.get("floor_trivial_eer"), run.get("floor_untrained_eer")))


def learned_column(frame: pd.DataFrame) -> pd.Series:
    """`run_learned` of every row (object dtype: True, False or None)."""
    return pd.Series([run_learned(run) for _, run in frame.iterrows()], index=frame.index, dtype=object)


def marked(text: str, is_learned: bool | None) -> str:
    """An EER cell with the not-learned marker when `is_learned` is False."""
    return f"{text} {NOT_LEARNED_MARK}" if is_learned is False else text


def floor_groups(frame: pd.DataFrame) -> list[tuple[str, dict[str, float], int]]:
    """The distinct floors of the runs: (trial list shown by its file name, the four floors, how many runs) per
    trial list and floor values (one entry when every run shares one list and protocol); runs without floors
    are left out."""
    if frame.empty or not set(FLOOR_METRICS) <= set(frame.columns):
        return []
    known = frame[np.isfinite(frame[list(FLOOR_METRICS)].astype(float)).any(axis=1)]
    groups: dict[tuple, int] = {}
    for _, run in known.iterrows():
        key = (trial_list_name(run), *(round(float(run[m]), 6) for m in FLOOR_METRICS))
        groups[key] = groups.get(key, 0) + 1
    return [(key[0], dict(zip(FLOOR_METRICS, key[1:])), n) for key, n in groups.items()]


def trial_list_name(run: pd.Series) -> str:
    """The run's trial list by file name ('trials.txt of the embedded corpus' without a data_root)."""
    trials = run.get("trials") if isinstance(run.get("trials"), str) else ""
    root = run.get("data_root") if isinstance(run.get("data_root"), str) else ""
    if not root:
        return f"{os.path.basename(trials) or 'trials.txt'} of the embedded corpus"
    return os.path.basename(trials) or "?"


def floors_text(floors: dict[str, float]) -> str:
    """'trivial statistic 28.1 % EER (minDCF 0.9000), untrained encoder 35.0 % EER (minDCF 1.0000)'."""
    parts = []
    for kind, name in FLOOR_NAMES.items():
        eer, dcf = floors[f"floor_{kind}_eer"], floors[f"floor_{kind}_min_dcf"]
        if math.isfinite(eer):
            parts.append(f"{name} {eer:.2f} % EER (minDCF {dcf:.4f})")
    return ", ".join(parts)


def floor_notes(frame: pd.DataFrame) -> list[str]:
    """Table notes: the floors of the runs' trial list(s), the not-learned rule, or that the runs have none."""
    groups = floor_groups(frame)
    if not groups:
        return ["floors: none logged by these runs (they predate floors)"] if len(frame) else []
    several = len(groups) > 1
    notes = [f"Floors on {name}: {floors_text(floors)}" + (f" ({n} run{'s' if n > 1 else ''})" if several else "")
             for name, floors, n in groups]
    return notes + [NOT_LEARNED_NOTE]


def learned_flags(runs: pd.DataFrame | None) -> bool | None:
    """A table row's flag from its runs: False when any run did not learn, True when all did, None when unknown."""
    if runs is None or runs.empty:
        return None
    flags = list(learned_column(runs))
    if any(flag is False for flag in flags):
        return False
    return True if all(flag is True for flag in flags) else None


def row_floor(runs: pd.DataFrame | None, key: str) -> float:
    """A floor of a table row: the median over its runs (they share one list and protocol), NaN without one."""
    if runs is None or runs.empty or key not in runs.columns:
        return math.nan
    values = runs[key].astype(float)
    values = values[np.isfinite(values)]
    return float(values.median()) if len(values) else math.nan
