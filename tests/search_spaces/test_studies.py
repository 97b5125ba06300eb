"""Every study loads and describes valid trials; studies are found by module; bad studies are refused."""

from __future__ import annotations

import dataclasses

import pytest

import search_spaces
from search_spaces import Budget, Choice, Float, Param, Study
from trainables.config import PROFILES, ConfigError, TrainConfig, build_config

FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
REQUIRED = {"margin_sweep", "full_search", "paper_table1", "paper_table2", "paper_table3", "smoke"}


def test_the_required_studies_exist():
    assert REQUIRED <= set(search_spaces.names())


@pytest.mark.parametrize("name", search_spaces.names())
def test_study_loads_and_its_keys_are_train_config_fields(name):
    study = search_spaces.load(name)
    assert study.name == name and study.description
    study.validate()
    for profile in PROFILES:
        assert set(study.fixed_for(profile)) <= FIELDS
        assert {p.name for p in study.search_for(profile)} <= FIELDS
        assert study.samples_for(profile) >= 1
        for config in study.example_configs(profile):  # grid points, domain ends, every choice
            assert isinstance(build_config(profile, config), TrainConfig)
    for ref in study.references:
        assert set(ref.config) <= FIELDS and 0 < ref.eer < 50


@pytest.mark.parametrize("name", ["paper_table1", "paper_table2", "paper_table3"])
def test_paper_grids_are_exactly_the_paper_rows(name):
    study = search_spaces.load(name)
    rows = [dict(ref.config) for ref in study.references]
    assert [dict(point) for point in study.grid] == rows


def test_margin_sweep_starts_from_the_paper_points_within_its_ranges():
    study = search_spaces.load("margin_sweep")
    domains = {p.name: p.domain for p in study.search}
    assert domains["margin"] == Float(0.0, 0.5) and domains["temperature"].log
    assert set(domains["framework"].values) == {"simclr", "moco"}
    assert study.fixed["symmetric"] is True
    assert {p["framework"] for p in study.points_to_evaluate} == {"simclr", "moco"}
    assert all(p["margin"] == 0.1 and p["temperature"] == pytest.approx(1 / 30) for p in study.points_to_evaluate)


def test_full_search_has_conditional_moco_params_and_early_stopping():
    study = search_spaces.load("full_search")
    when = {p.name: dict(p.when) for p in study.search}
    assert when["queue_size"] == when["momentum"] == {"framework": "moco"}
    assert when["symmetric"] == {"framework": "simclr"}
    assert study.early_stopping is not None
    for profile in PROFILES:  # ASHA rungs must fall on evaluated epochs
        asha, fixed = study.early_stopping_for(profile), study.fixed_for(profile)
        assert fixed["eval_every"] and asha.grace_period % fixed["eval_every"] == 0


def test_grid_points_cross_seeds():
    study = search_spaces.load("paper_table2")
    points = dataclasses.replace(study, seeds=(1, 2, 3)).grid_points()
    assert len(points) == 6 and {p["seed"] for p in points} == {1, 2, 3}


def test_a_new_module_is_a_new_study(tmp_path, monkeypatch):
    (tmp_path / "tiny_extra.py").write_text(
        "from search_spaces import Choice, Param, Study\n"
        "STUDY = Study(name='tiny_extra', description='added by a test', search=(Param('margin', Choice((0.0, 0.1))),),"
        " num_samples=2)\n"
    )
    monkeypatch.setattr(search_spaces, "__path__", [*search_spaces.__path__, str(tmp_path)])
    assert "tiny_extra" in search_spaces.names()
    study = search_spaces.load("tiny_extra")
    study.validate()
    assert study.samples_for("cpu") == 2


def test_unknown_study_names_the_known_ones():
    with pytest.raises(KeyError, match="margin_sweep"):
        search_spaces.load("no_such_study")


def _study(**changes) -> Study:
    values = dict(name="t", description="t", search=(Param("margin", Float(0.0, 0.5)),), num_samples=2)
    return Study(**{**values, **changes})


@pytest.mark.parametrize(
    "study, message",
    [
        (_study(fixed={"margn": 0.1}), "unknown config key"),
        (_study(search=(Param("queue_size", Choice((64,)), when={"framework": "moco"}),)), "depends on framework"),
        (_study(points_to_evaluate=({"margin": 0.9},)), "outside"),
        (_study(fixed={"temperature": 0.0}), "temperature"),
        (_study(grid=({"margin": 0.1},)), "either `search` or `grid`"),
        (Study(name="t", description="t", fixed={"framework": "moco", "batch_size": 64},
               grid=({"queue_size": 32},)), "queue_size"),
        (_study(budgets={"cpu": Budget(num_samples=0)}, num_samples=0), "num_samples"),
    ],
)
def test_invalid_studies_are_refused(study, message):
    with pytest.raises(ConfigError, match=message):
        study.validate()

