"""Parameter importances of a study's runs with Optuna's evaluators (fANOVA by default).

The runs become an in-memory Optuna study (`optuna.trial.create_trial` with the study's distributions, widened
to every value that was run), evaluated over margin, temperature, symmetric and framework where the study
varies them. A conditional parameter (e.g. `symmetric` only for SimCLR) is evaluated where it applies.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.table_layouts import native
from search_spaces import Choice, Float, Int, Study

PARAMS = ("margin", "temperature", "symmetric", "framework")


def distributions(study: Study, frame: pd.DataFrame, params: Sequence[str]) -> dict[str, Any]:
    """An Optuna distribution per param: the study's domain (grid values for a grid), widened to the runs' values."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    domains = {p.name: p.domain for p in study.search}
    found = {}
    for name in params:
        values = [native(v) for v in frame[name]]
        domain = domains.get(name)
        if isinstance(domain, Float):
            found[name] = FloatDistribution(min([domain.low, *values]), max([domain.high, *values]), log=domain.log)
        elif isinstance(domain, Int):
            found[name] = IntDistribution(min([domain.low, *values]), max([domain.high, *values]), log=domain.log)
        else:
            choices = list(domain.values) if isinstance(domain, Choice) else []
            choices += [v for v in sorted(set(values), key=str) if v not in choices]
            found[name] = CategoricalDistribution(choices)
    return found


def optuna_study(study: Study, frame: pd.DataFrame, params: Sequence[str]):
    """The runs as completed trials of an in-memory Optuna study (direction from the study's mode)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = distributions(study, frame, params)
    created = optuna.create_study(direction="minimize" if study.mode == "min" else "maximize")
    for _, run in frame.iterrows():
        created.add_trial(optuna.trial.create_trial(
            params={name: native(run[name]) for name in params},
            distributions=dists,
            value=float(run[study.metric]),
            user_attrs={"trial_id": run["trial_id"], "run_id": run["run_id"]},
        ))
    return created


def scopes(study: Study, frame: pd.DataFrame) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(label, condition, params) for each importance evaluation: all runs over the unconditional varying
    params, then, per condition of a conditional param, the runs meeting it."""
    searched = {p.name: dict(p.when) for p in study.search} or {k: {} for point in study.grid for k in point}
    wanted = [name for name in PARAMS if name in searched]
    found = [("all runs", {}, [n for n in wanted if not searched[n] and _varies(frame, n)])]
    conditions: list[dict[str, Any]] = []
    for name in wanted:
        if searched[name] and searched[name] not in conditions:
            conditions.append(searched[name])
    for condition in conditions:
        subset = _where(frame, condition)
        params = [n for n in wanted if (not searched[n] or searched[n] == condition) and n not in condition
                  and _varies(subset, n)]
        label = ", ".join(f"{k}={v}" for k, v in condition.items())
        found.append((label, condition, params))
    return [scope for scope in found if scope[2]]


def importances(study: Study, frame: pd.DataFrame, evaluator=None) -> tuple[pd.DataFrame, list[str]]:
    """Importances (one column per scope, one row per param; NaN where a param is not in a scope) and notes."""
    import optuna

    evaluator = evaluator or optuna.importance.FanovaImportanceEvaluator(seed=0)
    frame = frame[np.isfinite(frame[study.metric].astype(float))]
    columns: dict[str, dict[str, float]] = {}
    notes = []
    for label, condition, params in scopes(study, frame):
        subset = _where(frame, condition)
        if len(subset) < 2:
            notes.append(f"{label}: {len(subset)} run(s), too few for importances")
            continue
        found = optuna.importance.get_param_importances(optuna_study(study, subset, params), evaluator=evaluator,
                                                        params=params)
        columns[f"{label} (n={len(subset)})"] = {name: float(value) for name, value in found.items()}
    if not columns:
        notes.append("no run set varies margin, temperature, symmetric or framework: no importances")
    table = pd.DataFrame(columns).reindex([p for p in PARAMS if any(p in c for c in columns.values())])
    return table, notes


def importance_table(study: Study, runs):
    """The importance table of a study's completed runs (fANOVA over its metric)."""
    from analysis.tables import Table

    values, notes = importances(study, runs.complete)
    text = values.map(lambda v: "–" if pd.isna(v) else f"{v:.3f}").reset_index(names="Parameter")
    data = values.reset_index(names="param")
    title = f"{study.name} — parameter importances for {study.metric} (Optuna fANOVA, completed runs)"
    return Table("importance", title, data, text, notes)


def _varies(frame: pd.DataFrame, name: str) -> bool:
    return name in frame.columns and frame[name].map(native).nunique() > 1


def _where(frame: pd.DataFrame, condition: Mapping[str, Any]) -> pd.DataFrame:
    if not condition:
        return frame
    mask = np.ones(len(frame), dtype=bool)
    for key, value in condition.items():
        mask &= (frame[key].map(native) == value).to_numpy()
    return frame[mask]
