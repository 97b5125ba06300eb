"""The Ray Tune `Tuner` of a launch: the trial driver with its resources, the search, the scheduler and the
progress view, fresh or restored from the launch's experiment folder."""

from __future__ import annotations

from ray import tune

from study.launch import progress, search
from study.launch.driver import DriverPlan, train_driver
from study.launch.plan import Plan, Resources

DRIVER_MEMORY = 512 * 2**20
"""Memory reserved for each trial's driver (the Tune trial itself takes no CPU: its Train workers do)."""


def make_tuner(plan: Plan, resources: Resources, driver: DriverPlan, restore: bool) -> tune.Tuner:
    """The Tuner of a launch, fresh or restored from its experiment folder."""
    study = plan.study
    trainable = tune.with_resources(
        tune.with_parameters(train_driver, plan=driver.to_dict()), {"CPU": 0, "memory": DRIVER_MEMORY}
    )
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
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=plan.experiment,
            storage_path=plan.storage,
            callbacks=[progress.progress_callback(plan.num_samples, epochs, plan.searched, plan.conditions, study.metric)],
            verbose=0,
        ),
    )


def _trial_name(trial) -> str:
    return trial.trial_id


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"
