"""Parameter importances through Optuna's evaluators, from runs turned into an Optuna study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import search_spaces
from analysis.importance import distributions, importances, optuna_study, scopes
from analysis.runs import load_runs


def synthetic_runs(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Runs of margin_sweep whose EER depends on the margin only (the importance logic, not a table)."""
    rng = np.random.default_rng(seed)
    margin = rng.uniform(0, 0.5, n)
    return pd.DataFrame({
        "trial_id": [f"t{i}" for i in range(n)], "run_id": [f"r{i}" for i in range(n)],
        "framework": rng.choice(["simclr", "moco"], n), "symmetric": True, "margin": margin,
        "temperature": np.exp(rng.uniform(np.log(0.01), np.log(0.2), n)),
        "eer": 10 + 30 * margin + rng.normal(0, 0.05, n),
    })


def test_the_param_that_drives_eer_is_the_most_important():
    study = search_spaces.load("margin_sweep")
    table, notes = importances(study, synthetic_runs())
    column = table.columns[0]
    assert column == "all runs (n=40)" and notes == []
    assert set(table.index) == {"margin", "temperature", "framework"}  # symmetric is fixed in margin_sweep
    assert table[column].sum() == pytest.approx(1.0)
    assert table[column].idxmax() == "margin" and table.loc["margin", column] > 0.8


def test_a_conditional_param_is_evaluated_where_it_applies():
    study = search_spaces.load("full_search")
    frame = synthetic_runs()
    frame["symmetric"] = np.where(frame["framework"] == "simclr", np.arange(len(frame)) % 2 == 0, True)
    found = scopes(study, frame)
    assert found[0] == ("all runs", {}, ["margin", "temperature", "framework"])
    assert found[1] == ("framework=simclr", {"framework": "simclr"}, ["margin", "temperature", "symmetric"])
    table, _ = importances(study, frame)
    simclr = next(c for c in table.columns if c.startswith("framework=simclr"))
    assert np.isnan(table.loc["framework", simclr]) and table.loc["symmetric", simclr] >= 0
    assert np.isnan(table.loc["symmetric", "all runs (n=40)"])


def full_search_runs(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Runs of full_search (cpu budget) whose EER, for MoCo, depends on the momentum only."""
    rng = np.random.default_rng(seed)
    frame = synthetic_runs(n, seed)
    moco = frame["framework"] == "moco"
    frame["symmetric"] = np.where(moco, True, np.arange(n) % 2 == 0)
    frame["queue_size"] = np.where(moco, rng.choice([256, 512, 1024], n), 64)
    frame["momentum"] = np.where(moco, np.exp(rng.uniform(np.log(0.9), np.log(0.999), n)), 0.999)
    frame["eer"] = np.where(moco, 10 + 200 * (0.999 - frame["momentum"]), frame["eer"]) + rng.normal(0, 0.01, n)
    return frame


def test_every_searched_param_gets_an_importance_moco_ones_within_moco_runs():
    study = search_spaces.load("full_search")
    frame = full_search_runs()
    found = scopes(study, frame, "cpu")
    assert found[-1] == ("framework=moco", {"framework": "moco"}, ["margin", "temperature", "queue_size", "momentum"])
    table, notes = importances(study, frame, profile="cpu")
    moco = next(c for c in table.columns if c.startswith("framework=moco"))
    assert notes == [] and {"queue_size", "momentum"} <= set(table.index)
    assert table.loc[["queue_size", "momentum"], moco].notna().all()
    assert table[moco].idxmax() == "momentum"
    assert table.loc[["queue_size", "momentum"], "all runs (n=60)"].isna().all()  # they apply to MoCo runs only


def test_distributions_are_the_study_domains_widened_to_what_was_run():
    study = search_spaces.load("margin_sweep")
    frame = synthetic_runs().assign(margin=0.7)  # e.g. a launch with a wider range
    dists = distributions(study, frame, ["margin", "temperature", "framework"])
    assert (dists["margin"].low, dists["margin"].high) == (0.0, 0.7)
    assert dists["temperature"].log and dists["temperature"].low == 0.01
    assert set(dists["framework"].choices) == {"simclr", "moco"}


@pytest.mark.slow
def test_runs_of_a_real_store_become_optuna_trials_with_their_params_and_values(store):
    study = search_spaces.load(store.study)
    runs = load_runs(store.study, store.uri).complete
    created = optuna_study(study, runs, ["margin"])
    assert sorted((t.params["margin"], t.value) for t in created.trials) == sorted(zip(runs["margin"], runs["eer"]))
    assert {t.user_attrs["run_id"] for t in created.trials} == set(runs["run_id"])
    table, _ = importances(study, runs)
    assert list(table.index) == ["margin"] and table.iloc[0, 0] == pytest.approx(1.0)  # the only varied param
