"""A `Study` as a Ray Tune search: the param space, the search algorithm (Optuna or an exact grid), the scheduler.

Optuna gets a define-by-run function, so conditional params (e.g. `queue_size` only for MoCo) are sampled only
where they apply; TPE is seeded, multivariate and grouped. Grids run each point exactly once per seed.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import optuna

from search_spaces import Choice, Float, Int, Param, Study


class DefineByRun:
    """An Optuna define-by-run function sampling `params` in order, skipping those whose condition fails.
    A class, not a closure: Tune pickles the searcher (with the standard pickle) to save the study's state."""

    def __init__(self, params: Sequence[Param]):
        self.params = tuple(params)

    def __call__(self, trial) -> None:
        chosen: dict[str, Any] = {}
        for param in self.params:
            if param.applies(chosen):
                chosen[param.name] = suggest(trial, param)


def suggest(trial, param: Param) -> Any:
    """One Optuna suggestion for `param`."""
    domain = param.domain
    if isinstance(domain, Choice):
        return trial.suggest_categorical(param.name, list(domain.values))
    if isinstance(domain, Float):
        return trial.suggest_float(param.name, domain.low, domain.high, log=domain.log)
    if isinstance(domain, Int):
        return trial.suggest_int(param.name, domain.low, domain.high, log=domain.log)
    raise TypeError(f"{param.name}: unsupported domain {domain!r}")


def param_space(study: Study, base: Mapping[str, Any], seeds: Sequence[int] = ()) -> dict[str, Any]:
    """The Tune param space: every config field fixed at `base`, grid keys as choices (their points are given
    to the searcher), searched keys left to Optuna."""
    from ray import tune  # heavy: ray; planning and --dry-run run without it

    space = dict(base)
    if study.grid:
        for key, values in _grid_values(study.grid_points(seeds)).items():
            space[key] = tune.choice(values)
    return space


def searcher(study: Study, profile: str, num_samples: int, seeds: Sequence[int] = ()):
    """The Tune search algorithm: OptunaSearch (seeded TPE) for searched studies, the exact grid otherwise."""
    if study.grid:
        from ray.tune.search.basic_variant import BasicVariantGenerator  # heavy: ray

        return BasicVariantGenerator(points_to_evaluate=study.grid_points(seeds))
    from study.launch.resumable_optuna import ResumableOptunaSearch  # heavy: ray

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # `group` is "experimental"

    points = [dict(p) for p in study.points_to_evaluate]
    startup = max(len(points) + 1, min(10, num_samples // 2))
    sampler = optuna.samplers.TPESampler(
        seed=study.searcher_seed, multivariate=True, group=True, n_startup_trials=startup
    )
    return ResumableOptunaSearch(
        space=DefineByRun(study.search_for(profile)),
        metric=study.metric,
        mode=study.mode,
        points_to_evaluate=points or None,
        sampler=sampler,
    )


def scheduler(study: Study, profile: str, max_epochs: int):
    """ASHA on the study metric with `epoch` as its clock, or None (FIFO) when the study has no early stopping."""
    asha = study.early_stopping_for(profile)
    if asha is None:
        return None
    from ray.tune.schedulers import ASHAScheduler  # heavy: ray

    return ASHAScheduler(
        time_attr="epoch", max_t=max_epochs, grace_period=asha.grace_period, reduction_factor=asha.reduction_factor
    )


def _grid_values(points: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {}
    for point in points:
        for key, value in point.items():
            if value not in values.setdefault(key, []):
                values[key].append(value)
    return values
