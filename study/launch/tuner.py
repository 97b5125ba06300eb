"""The Ray Tune `Tuner` of a launch: the trial driver with its resources, the search, the scheduler and the
progress view, fresh or restored from the launch's experiment folder."""

from __future__ import annotations

from functools import partial

from ray import tune

from study.launch import progress, search
from study.launch.driver import DriverPlan, train_driver
from study.launch.plan import Plan, Resources
from study.tracking.runs import mark_stopped_early

DRIVER_MEMORY = 512 * 2**20
"""Memory reserved for each DDP trial's driver (the Tune trial itself takes no CPU: its Train workers do)."""
ON_HEAD_NODE = {"node:__internal_head__": 0.001}
"""DDP trial drivers (and so their Train controllers) run on the head node: losing another node costs a trial
only its workers, which Ray Train restarts from the last checkpoint (`--max-failures`). A single-worker trial
that loses its node is restarted by Tune, from the same checkpoints (on the shared results folder)."""


def make_tuner(plan: Plan, resources: Resources, driver: DriverPlan, restore: bool) -> tune.Tuner:
    """The Tuner of a launch, fresh or restored from its experiment folder."""
    study = plan.study
    trainable = tune.with_resources(tune.with_parameters(train_driver, plan=driver.to_dict()), trial_resources(resources, driver))
    path = f"{plan.storage}/{plan.experiment}"
    if restore:
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    epochs = plan.base["epochs"]
    return tune.Tuner(
        trainable,
        param_space=search.param_space(study, plan.base, plan.seeds),
        tune_config=tune.TuneConfig(
            metric=study.metric,
            mode=study.mode,
            search_alg=search.searcher(study, plan.profile, plan.num_samples, plan.seeds),
            scheduler=search.scheduler(study, plan.profile, epochs),
            num_samples=plan.num_samples,
            max_concurrent_trials=resources.max_concurrent,
            reuse_actors=driver.in_trial,  # a trial process keeps torch imported for the next trial
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=plan.experiment,
            storage_path=plan.storage,
            callbacks=[progress.progress_callback(
                plan.num_samples, epochs, plan.searched, plan.conditions, study.metric,
                stopped_early=partial(mark_stopped_early, driver.tracking) if driver.tracking else None,
                max_failures=driver.max_failures if driver.in_trial else None,
                board=driver.board, concurrency=resources.max_concurrent)],
            failure_config=tune.FailureConfig(max_failures=driver.max_failures if driver.in_trial else 0),
            verbose=0,
        ),
    )


def trial_resources(resources: Resources, driver: DriverPlan) -> dict[str, float]:
    """What a Tune trial holds: a single-worker trial runs its loop itself (its worker's CPUs and GPU share); a
    DDP trial's driver holds only memory on the head node, its Train workers the rest."""
    if driver.in_trial:
        gpu = resources.gpus_per_trial_worker
        return {"CPU": resources.cpus_per_worker, **({"GPU": gpu} if gpu else {})}
    return {"CPU": 0, "memory": DRIVER_MEMORY, **ON_HEAD_NODE}


def _trial_name(trial) -> str:
    return trial.trial_id


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"
