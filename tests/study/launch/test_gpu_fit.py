"""GPU memory planning of packed trials: the study's largest trial, and refusals that name the numbers."""

from __future__ import annotations

import pytest

from search_spaces import load
from study.launch.gpu_fit import check_fit, largest_configs, worker_memory
from study.launch.plan import PlanError, build_plan, plan_resources
from trainables.config import TrainConfig
from trainables.gpu_memory import estimate_gpu_memory

GIB = 2**30


def test_every_searched_memory_choice_is_estimated_and_the_largest_wins():
    plan = build_plan(load("smoke"), "cpu", {}, {})
    configs = largest_configs(plan)
    # margin does not change the memory; queue_size does (MoCo's queues)
    assert sorted((c["framework"], c["queue_size"]) for c in configs) == [("moco", 32), ("moco", 64),
                                                                          ("simclr", 32), ("simclr", 64)]
    resources = plan_resources(16, 1, plan.num_samples)
    largest = worker_memory(plan, resources)
    each = [estimate_gpu_memory(TrainConfig.from_dict(c), plan.base["batch_size"]).total for c in configs]
    assert largest.total == max(each)


def test_ddp_workers_are_estimated_on_their_share_of_the_batch():
    plan = build_plan(load("smoke"), "cpu", {}, {"batch_size": 32})
    whole = worker_memory(plan, plan_resources(16, 2, 2))
    half = worker_memory(plan, plan_resources(16, 2, 2, workers_per_trial=2))
    assert half.activations < whole.activations and half.state == whole.state


def test_packed_trials_that_do_not_fit_are_refused_with_the_numbers():
    estimate = estimate_gpu_memory(TrainConfig.from_dict({"precision": "bf16"}), 200)  # the paper's batch
    per_trial = estimate.total / GIB
    check_fit(2, estimate, int(3 * per_trial * GIB))  # fits
    with pytest.raises(PlanError) as refused:
        check_fit(4, estimate, int(3 * per_trial * GIB))
    message = str(refused.value)
    assert "4 trial(s) per GPU" in message and "use --trials-per-gpu 2 or less" in message
    assert f"{3 * per_trial:.1f} GiB" in message
    with pytest.raises(PlanError, match="smaller batch_size"):
        check_fit(1, estimate, int(0.5 * per_trial * GIB))
