"""A study's metadata, in its one home: the searched keys (one rule for `seed`), conditions, paper references."""

from __future__ import annotations

import dataclasses

import numpy as np

import search_spaces
from search_spaces import describe_config, same_value


def test_values_compare_as_they_come_back_from_text():
    assert same_value(float("0.1"), 0.1) and same_value(float(str(1 / 30)), 1 / 30)
    assert not same_value(True, 1) and not same_value(0.1, 0.2) and same_value("moco", "moco")


def test_numpy_scalars_compare_as_their_values():
    assert same_value(np.float64(0.1), 0.1) and same_value(np.bool_(True), True) and same_value(np.int64(3), 3)
    assert not same_value(np.bool_(True), 1) and not same_value(float("nan"), float("nan"))


def test_searched_keys_follow_one_rule_for_seed():
    table2 = search_spaces.load("paper_table2")
    assert table2.searched_keys("cpu") == ("margin",)  # one seed for every trial: not searched
    assert table2.searched_keys("cpu", seeds=(1, 2)) == ("margin", "seed")  # seeds given to the launch
    assert dataclasses.replace(table2, seeds=(1, 2)).searched_keys() == ("margin", "seed")  # declared by the study
    full = search_spaces.load("full_search")
    assert full.searched_keys("cpu") == ("framework", "symmetric", "margin", "temperature", "queue_size", "momentum")
    assert full.searched_keys("cpu", seeds=(1, 2)) == full.searched_keys("cpu")  # Optuna: seed is fixed
    assert full.conditions("cpu") == {"symmetric": {"framework": "simclr"}, "queue_size": {"framework": "moco"},
                                      "momentum": {"framework": "moco"}}
    assert table2.conditions("cpu") == {}


def test_profile_budgets_replace_domains_not_keys():
    full = search_spaces.load("full_search")
    assert full.searched_keys("cpu") == full.searched_keys("paper") == full.searched_keys()
    domains = {profile: {p.name: p.domain for p in full.search_for(profile)} for profile in ("cpu", "paper")}
    assert domains["cpu"]["queue_size"] != domains["paper"]["queue_size"]


def test_a_trial_config_and_a_partial_row_find_the_same_paper_row():
    study = search_spaces.load("paper_table1")
    partial = {"symmetric": True, "margin": 0.1}
    ref = study.matching_reference(partial)
    assert ref is not None and ref.eer == 7.85
    from_mlflow = {**study.full_config(partial), "margin": np.float64(float("0.1")), "symmetric": np.bool_(True)}
    assert study.matching_reference(from_mlflow) is ref
    assert study.matching_reference({"symmetric": True, "margin": 0.3}) is None
    sweep = search_spaces.load("margin_sweep")  # its references set framework and temperature too
    assert sweep.matching_reference({"framework": "moco", "margin": 0.1, "temperature": 1 / 30}).eer == 9.36


def test_a_trial_shows_its_searched_values_where_they_apply():
    full = search_spaces.load("full_search")
    keys, conditions = full.searched_keys("cpu"), full.conditions("cpu")
    moco = {"framework": "moco", "symmetric": True, "margin": 0.1, "temperature": 0.05, "queue_size": 512,
            "momentum": 0.99}
    assert describe_config(moco, keys, conditions) == ("framework=moco, margin=0.1, temperature=0.05, "
                                                       "queue_size=512, momentum=0.99")
    simclr = {**moco, "framework": "simclr"}
    assert describe_config(simclr, keys, conditions) == "framework=simclr, symmetric=True, margin=0.1, temperature=0.05"
