"""Planning a launch without Ray: validated overrides, trial counts, resources that never oversubscribe, the CLI."""

from __future__ import annotations

import pytest

import search_spaces
from search_spaces import load
from study.launch.plan import PlanError, build_plan, plan_resources
from study.run import main


def test_overrides_are_validated_and_searched_keys_cannot_be_set():
    study = load("margin_sweep")
    plan = build_plan(study, "cpu", {}, {"epochs": 3})
    assert plan.base["epochs"] == 3 and plan.base["symmetric"] is True and plan.num_samples == 6
    with pytest.raises(PlanError, match="margin is searched"):
        build_plan(study, "cpu", {}, {"margin": 0.2})
    with pytest.raises(PlanError, match="temperature"):
        build_plan(load("paper_table1"), "cpu", {}, {"temperature": -1.0})


def test_trial_counts_follow_profile_num_samples_and_seeds():
    assert build_plan(load("margin_sweep"), "paper", {}, {}).num_samples == 24
    assert build_plan(load("margin_sweep"), "cpu", {}, {}, num_samples=3).num_samples == 3
    assert build_plan(load("paper_table1"), "cpu", {}, {}, seeds=(1, 2, 3)).num_samples == 15
    with pytest.raises(PlanError, match="--seeds"):
        build_plan(load("paper_table1"), "cpu", {}, {}, num_samples=3)
    with pytest.raises(PlanError, match="grid studies"):
        build_plan(load("margin_sweep"), "cpu", {}, {}, seeds=(1,))


@pytest.mark.parametrize(
    "cpus, gpus, workers, cpus_per_worker, gpus_per_worker, cap, samples, concurrent",
    [
        (2, 0, 1, 1, None, None, 6, 2),  # this machine: two one-worker trials at once
        (2, 0, 2, 1, None, None, 6, 1),  # two-worker DDP trials: one at a time
        (16, 1, 1, 1, None, None, 6, 1),  # one GPU bounds it, not the CPUs
        (16, 8, 2, 2, 1, None, 24, 4),
        (16, 8, 1, 1, None, 3, 24, 3),  # --max-concurrent caps it
        (64, 0, 1, 1, None, None, 5, 5),  # never more than there are trials
    ],
)
def test_concurrency_never_oversubscribes(cpus, gpus, workers, cpus_per_worker, gpus_per_worker, cap, samples, concurrent):
    res = plan_resources(cpus, gpus, samples, workers, cpus_per_worker, gpus_per_worker, cap)
    assert res.max_concurrent == concurrent
    assert res.max_concurrent * workers * cpus_per_worker <= cpus
    assert res.max_concurrent * workers * res.gpus_per_worker <= gpus
    assert res.gpus_per_worker == (1 if gpus and gpus_per_worker is None else gpus_per_worker or 0)


def test_a_trial_that_cannot_fit_is_refused():
    with pytest.raises(PlanError, match="needs 4 CPU"):
        plan_resources(2, 0, 6, workers_per_trial=4)


def test_list_shows_every_study(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in search_spaces.names():
        assert name in out


def test_dry_run_prints_the_plan_without_running_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["full_search", "--dry-run", "--set", "epochs=6", "--workers-per-trial", "1"]) == 0
    out = capsys.readouterr().out
    assert "embedded corpus" in out and "profile     cpu" in out and "ASHA" in out
    assert "search queue_size" in out and "only when {'framework': 'moco'}" in out
    assert "epochs=6" in out and "trials      8" in out
    assert f"results     {tmp_path}/results/full_search-" in out
    assert f"sqlite:///{tmp_path}/mlflow.db" in out
    assert list(tmp_path.iterdir()) == [], "a dry run writes nothing"


def test_cli_errors_are_one_clear_line(capsys):
    assert main(["smoke", "--dry-run", "--set", "margn=0.1"]) == 2
    assert "unknown config key 'margn'" in capsys.readouterr().err
    assert main(["nope", "--dry-run"]) == 2
    assert "known studies" in capsys.readouterr().err
    assert main(["paper_table1", "--dry-run", "--seeds", "a,b"]) == 2
    assert "--seeds takes comma-separated integers, e.g. 1,2,3; got 'a,b'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cpus, gpus, trials_per_gpu, samples, concurrent",
    [
        (16, 1, 4, 24, 4),  # four packed trials on one GPU
        (16, 2, 4, 24, 8),
        (3, 1, 4, 24, 3),  # CPUs still bound it: each packed trial keeps its worker's CPU
        (16, 1, 4, 2, 2),
    ],
)
def test_packed_trials_share_gpus_without_oversubscribing(cpus, gpus, trials_per_gpu, samples, concurrent):
    res = plan_resources(cpus, gpus, samples, trials_per_gpu=trials_per_gpu)
    assert res.max_concurrent == concurrent
    assert res.gpus_per_trial_worker == pytest.approx(1 / trials_per_gpu)
    assert res.max_concurrent * res.gpus_per_trial_worker <= gpus + 1e-9
    assert "1/4 of a GPU" in res.per_trial()


def test_ddp_trials_keep_whole_gpus():
    with pytest.raises(PlanError, match="DDP trials keep whole GPUs"):
        plan_resources(16, 8, 24, workers_per_trial=2, trials_per_gpu=2)
    with pytest.raises(PlanError, match="packs trials onto GPUs, and this launch uses none"):
        plan_resources(16, 0, 24, trials_per_gpu=2)  # no GPU to pack onto
    with pytest.raises(PlanError, match="--trials-per-gpu must be >= 1"):
        plan_resources(16, 1, 24, trials_per_gpu=0)


def test_rows_run_part_of_a_grid_and_a_resumed_launch_keeps_them(tmp_path, capsys, monkeypatch):
    import json

    from study.launch.records import LAUNCH_FILE, plan_from_record, save_launch
    from study.run import driver_plan, parser, resume_conflicts

    study = load("paper_table1")
    plan = build_plan(study, "cpu", {}, {}, seeds=(1, 2), rows=(4, 1))
    assert plan.rows == (4, 1) and plan.num_samples == 4
    assert plan.study.grid == (study.grid[0], study.grid[3]), "rows keep the study's order"
    assert [(p["symmetric"], p["margin"], p["seed"]) for p in plan.study.grid_points(plan.seeds)] == [
        (False, 0.0, 1), (False, 0.0, 2), (True, 0.1, 1), (True, 0.1, 2)]
    for rows, message in (((0,), "rows 1 to 5, not 0"), ((2, 6), "rows 1 to 5, not 6"), ((2, 2), "twice")):
        with pytest.raises(PlanError, match=message):
            build_plan(study, "cpu", {}, {}, rows=rows)
    with pytest.raises(PlanError, match="--rows applies to grid studies"):
        build_plan(load("margin_sweep"), "cpu", {}, {}, rows=(1,))

    monkeypatch.chdir(tmp_path)
    assert main(["paper_table1", "--rows", "2,4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "trials      2: rows 2, 4 of the grid" in out and "'margin': 0.1" in out and "'symmetric': False" not in out
    assert main(["paper_table1", "--rows", "2,x", "--dry-run"]) == 2
    assert "--rows takes comma-separated integers" in capsys.readouterr().err

    plan.storage, plan.experiment, plan.tracking_uri = str(tmp_path), "paper_table1-1", "sqlite:///x.db"
    resources = plan_resources(2, 0, plan.num_samples)
    save_launch(plan, resources, driver_plan(plan, resources, "0", "parent", "commit"), assume_shared=False)
    record = json.loads((tmp_path / "paper_table1-1" / LAUNCH_FILE).read_text())
    resumed = plan_from_record(record)
    assert resumed.rows == (4, 1) and resumed.study.grid == plan.study.grid and resumed.num_samples == 4
    assert resume_conflicts(parser().parse_args(["paper_table1", "--resume", "--rows", "4,1"]), record) == []
    assert resume_conflicts(parser().parse_args(["paper_table1", "--resume", "--rows", "1,2"]), record) == [
        "--rows (1, 2) (was (4, 1))"]
