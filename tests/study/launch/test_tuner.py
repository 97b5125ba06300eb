"""What a trial holds and where it trains: single-worker trials run their loop in the Tune trial (a GPU share
when packed), DDP trials under a Ray Train controller pinned to the head node."""

from __future__ import annotations

from study.launch.driver import DriverPlan
from study.launch.plan import plan_resources
from study.launch.tuner import ON_HEAD_NODE, trial_resources


def driver(workers: int, storage: str = "/results/x", **extra) -> DriverPlan:
    return DriverPlan(study="smoke", metric="eer", mode="min", searched=(), conditions={}, workers_per_trial=workers,
                      cpus_per_worker=2.0, gpus_per_worker=1, train_storage=storage, **extra)


def test_single_worker_trials_train_in_the_trial_with_their_gpu_share():
    resources = plan_resources(16, 2, 24, cpus_per_worker=2.0, trials_per_gpu=4)
    plan = driver(1, trials_per_gpu=4)
    assert plan.in_trial
    assert trial_resources(resources, plan) == {"CPU": 2.0, "GPU": 0.25}


def test_ddp_trials_and_remote_storage_keep_the_ray_train_controller():
    resources = plan_resources(16, 2, 24, workers_per_trial=2, cpus_per_worker=2.0)
    assert not driver(2).in_trial
    assert trial_resources(resources, driver(2))["CPU"] == 0 and ON_HEAD_NODE.items() <= trial_resources(
        resources, driver(2)).items()
    assert not driver(1, storage="s3://bucket/results").in_trial  # checkpoints then go through Ray Train's storage
    assert not driver(1, ray_train=True).in_trial
