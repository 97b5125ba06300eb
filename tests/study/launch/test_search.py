"""A study as a Tune search: conditional Optuna params, seeded TPE from the paper's points, exact grids, ASHA."""

from __future__ import annotations

import optuna
from ray.tune.experiment import Experiment, Trial
from ray.tune.schedulers import TrialScheduler

from search_spaces import load
from study.launch.search import DefineByRun, param_space, scheduler, searcher
from trainables.config import build_config


def test_conditional_params_are_sampled_only_where_they_apply():
    study = load("full_search")
    params = study.search_for("cpu")
    optuna_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = DefineByRun(params)
    seen = []
    for _ in range(40):
        trial = optuna_study.ask()
        space(trial)
        seen.append(trial.params)
        optuna_study.tell(trial, 0.0)
    frameworks = {p["framework"] for p in seen}
    assert frameworks == {"simclr", "moco"}
    for values in seen:
        moco = values["framework"] == "moco"
        assert ("queue_size" in values) == moco and ("momentum" in values) == moco
        assert ("symmetric" in values) == (not moco)
        assert 0.0 <= values["margin"] <= 0.5
        config = build_config("cpu", {**study.fixed_for("cpu"), **values})  # every sample is a valid config
        assert config.framework == values["framework"]


def test_optuna_searcher_starts_from_the_paper_points_and_is_seeded():
    study = load("margin_sweep")

    def suggestions(count):
        search = searcher(study, "cpu", 6)
        return [search.suggest(f"t{i}") for i in range(count)]

    first = suggestions(4)
    assert first[:2] == [dict(p) for p in study.points_to_evaluate]
    assert suggestions(4) == first  # same seed, same trials
    for values in first[2:]:
        assert values["framework"] in ("simclr", "moco") and 0.0 <= values["margin"] <= 0.5
        assert 0.008 <= values["temperature"] <= 0.04, "the cpu budget's temperature range, not the study's"


def test_grid_searcher_yields_exactly_the_grid_once_per_seed():
    study = load("paper_table1")
    base = build_config("cpu", study.fixed_for("cpu")).to_dict()
    search = searcher(study, "cpu", 10, seeds=(1, 2))
    search.add_configurations([Experiment(name="g", run=lambda c: None, config=param_space(study, base, (1, 2)),
                                          num_samples=10)])
    trials = []
    while (trial := search.next_trial()) is not None:
        trials.append(trial.config)
    assert len(trials) == 10
    wanted = study.grid_points((1, 2))
    got = [{k: t[k] for k in wanted[0]} for t in trials]
    assert sorted(map(str, got)) == sorted(map(str, wanted))
    assert all(t["framework"] == "simclr" and t["epochs"] == base["epochs"] for t in trials)


def test_asha_measures_time_in_epochs_and_stops_the_worse_half():
    study = load("full_search")
    asha = scheduler(study, "cpu", max_epochs=9)
    asha.set_search_properties("eer", "min")
    assert scheduler(load("margin_sweep"), "cpu", 8) is None
    trials = [Trial("t", stub=True, trial_id=f"a{i}") for i in range(6)]
    for trial in trials:
        asha.on_trial_add(None, trial)
    decisions = {}
    for i, trial in enumerate(trials):  # epoch 1 is the first rung (no training_iteration: it is not the clock)
        decisions[i] = asha.on_trial_result(None, trial, {"epoch": 1, "eer": 10.0 + i})
    assert decisions[0] == TrialScheduler.CONTINUE
    assert decisions[5] == TrialScheduler.STOP


def test_a_trial_resumed_after_optuna_closed_it_still_reaches_the_study(recwarn):
    search = searcher(load("margin_sweep"), "cpu", 6)
    params = search.suggest("a")
    search.on_trial_result("a", {"epoch": 3, "training_iteration": 1, "eer": 30.0})
    search.on_trial_result("a", {"epoch": 4, "training_iteration": 1, "eer": 29.0})  # a restored trial counts anew
    assert search._ot_trials["a"].storage.get_trial(search._ot_trials["a"]._trial_id).intermediate_values == {
        3: 30.0, 4: 29.0}
    search.on_trial_complete("a", error=True)  # the worker died and retries were spent
    search.on_trial_result("a", {"epoch": 5, "training_iteration": 1, "eer": 25.0})  # rerun by --resume
    search.on_trial_complete("a", {"epoch": 6, "eer": 21.5})
    trials = [t for t in search._ot_study.trials if t.state.name != "WAITING"]  # not the enqueued paper points
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].value == 21.5 and trials[1].params == trials[0].params
    assert {k: params[k] for k in trials[1].params} == trials[1].params
    assert not [w for w in recwarn if "already" in str(w.message)]
