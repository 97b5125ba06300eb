"""Parameter importances of a study's runs with Optuna's evaluators (fANOVA by default).

The runs become an in-memory Optuna study (`optuna.trial.create_trial` with the study's distributions, widened
to every value that was run), evaluated over every key the study searches (`Study.searched_keys`) where it
varies. A conditional parameter (e.g. `queue_size` only for MoCo) is evaluated where it applies.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from analysis.render import NOT_REPORTED, Table, number
from analysis.runs import Runs, matching
from search_spaces import Choice, Float, Int, Study, native


def distributions(study: Study, frame: pd.DataFrame, params: Sequence[str], profile: str | None = None) -> dict[str, Any]:
    """An Optuna distribution per param: the study's domain (grid values for a grid), widened to the runs' values."""
    domains = {p.name: p.domain for p in study.search_for(profile)}
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


def optuna_study(study: Study, frame: pd.DataFrame, params: Sequence[str], profile: str | None = None):
    """The runs as completed trials of an in-memory Optuna study (direction from the study's mode)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = distributions(study, frame, params, profile)
    created = optuna.create_study(direction="minimize" if study.mode == "min" else "maximize")
    for _, run in frame.iterrows():
        created.add_trial(optuna.trial.create_trial(
            params={name: native(run[name]) for name in params},
            distributions=dists,
            value=float(run[study.metric]),
            user_attrs={"trial_id": run["trial_id"], "run_id": run["run_id"]},
        ))
    return created


def searched_params(study: Study, profile: str | None = None) -> list[str]:
    """The searched keys in the order importances list them: the params studied for their own effect, then the
    conditional ones, then those that select a conditional sub-space (e.g. `framework`); declared order within."""
    keys = study.searched_keys(profile)
    conditions = study.conditions(profile)
    selectors = {key for when in conditions.values() for key in when}
    return sorted(keys, key=lambda k: (k in selectors, k in conditions, keys.index(k)))


def scopes(study: Study, frame: pd.DataFrame, profile: str | None = None) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(label, condition, params) for each importance evaluation: all runs over the unconditional params that
    vary, then per condition of the conditional params, the runs meeting it over the params that apply there."""
    names, conditions = searched_params(study, profile), study.conditions(profile)
    found = [("all runs", {}, [n for n in names if n not in conditions and _varies(frame, n)])]
    distinct: list[dict[str, Any]] = []
    for condition in conditions.values():
        if condition not in distinct:
            distinct.append(condition)
    for condition in distinct:
        subset = matching(frame, condition)
        applying = [n for n in names if (n not in conditions or conditions[n] == condition) and n not in condition]
        label = ", ".join(f"{k}={v}" for k, v in condition.items())
        found.append((label, condition, [n for n in applying if _varies(subset, n)]))
    return [scope for scope in found if scope[2]]


def importances(study: Study, frame: pd.DataFrame, evaluator=None,
                profile: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Importances (one column per scope, one row per param; NaN where a param is not in a scope) and notes."""
    evaluator = evaluator or optuna.importance.FanovaImportanceEvaluator(seed=0)
    frame = frame[np.isfinite(frame[study.metric].astype(float))]
    columns: dict[str, dict[str, float]] = {}
    notes = []
    for label, condition, names in scopes(study, frame, profile):
        subset = matching(frame, condition)
        if len(subset) < 2:
            notes.append(f"{label}: {len(subset)} run(s), too few for importances")
            continue
        found = optuna.importance.get_param_importances(optuna_study(study, subset, names, profile),
                                                        evaluator=evaluator, params=names)
        columns[f"{label} (n={len(subset)})"] = {name: float(value) for name, value in found.items()}
    if not columns:
        notes.append(f"no searched param ({', '.join(study.searched_keys(profile))}) varies: no importances")
    table = pd.DataFrame(columns).reindex([p for p in searched_params(study, profile) if any(p in c for c in columns.values())])
    return table, notes


def importance_table(study: Study, runs: Runs) -> Table:
    """The importance table of a study's completed runs (fANOVA over its metric)."""
    values, notes = importances(study, runs.complete, profile=runs.profile)
    text = values.map(lambda v: number(v, 3, NOT_REPORTED)).reset_index(names="Parameter")
    data = values.reset_index(names="param")
    title = f"{study.name} — parameter importances for {study.metric} (Optuna fANOVA, completed runs)"
    return Table("importance", title, data, text, notes)


def _varies(frame: pd.DataFrame, name: str) -> bool:
    return name in frame.columns and frame[name].map(native).nunique() > 1
