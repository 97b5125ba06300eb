"""The plan of one launch: which study, the base config of every trial, how many trials, resources, where
results and runs go. Built from the command line and the cluster's resources; printed by `--dry-run`."""

from __future__ import annotations

import dataclasses
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from search_spaces import Choice, Study
from trainables.config import ConfigError, build_config


class PlanError(ValueError):
    """The requested launch cannot run; the message says why."""


@dataclass
class Resources:
    """Per-trial resources and how many trials run at once."""

    workers_per_trial: int
    cpus_per_worker: float
    gpus_per_worker: int
    max_concurrent: int
    trials_per_gpu: int = 1
    """Single-worker trials sharing one GPU (each gets 1/trials_per_gpu of it); 1 for DDP trials."""

    @property
    def gpus_per_trial_worker(self) -> float:
        """The GPU share each worker asks Ray for: whole GPUs, or a fraction of one for packed trials."""
        return self.gpus_per_worker / self.trials_per_gpu

    def per_trial(self) -> str:
        share = f"1/{self.trials_per_gpu} of a GPU" if self.trials_per_gpu > 1 else f"{self.gpus_per_worker} GPU"
        gpu = f" + {share}" if self.gpus_per_worker else ""
        return f"{self.workers_per_trial} worker(s) x ({self.cpus_per_worker:g} CPU{gpu})"


@dataclass
class Plan:
    """Everything a launch needs before it starts."""

    study: Study
    profile: str
    base: dict[str, Any]
    num_samples: int
    seeds: tuple[int, ...] = ()
    rows: tuple[int, ...] = ()
    """The grid rows launched (1-based, the study's order); empty: all of them."""
    overrides: dict[str, Any] = field(default_factory=dict)
    resources: Resources | None = None
    storage: str = ""
    experiment: str = ""
    tracking_uri: str = ""
    address: str | None = None

    @property
    def embedded(self) -> bool:
        return not self.base.get("data_root")

    @property
    def searched(self) -> tuple[str, ...]:
        """The config keys that differ between trials (`Study.searched_keys`)."""
        return self.study.searched_keys(self.profile, self.seeds)

    @property
    def conditions(self) -> dict[str, dict[str, Any]]:
        """For conditional searched keys: the values of other keys under which they apply."""
        return self.study.conditions(self.profile)

    def describe(self) -> str:
        """The plan as text (`--dry-run`)."""
        study, res = self.study, self.resources
        lines = [
            f"study       {study.name}: {study.description}",
            f"data        {'embedded corpus (no dataset given)' if self.embedded else self.base['data_root']}",
            f"profile     {self.profile}" + (f", overrides {self.overrides}" if self.overrides else ""),
            f"metric      {study.metric} ({'minimised' if study.mode == 'min' else 'maximised'})",
        ]
        if study.grid:
            which = f"rows {', '.join(map(str, self.rows))} of the grid" if self.rows else "the exact grid"
            lines.append(f"trials      {self.num_samples}: {which}")
            lines += [f"  - {point}" for point in study.grid_points(self.seeds)]
        else:
            lines.append(f"trials      {self.num_samples}, Optuna TPE (seed {study.searcher_seed})")
            for param in study.search_for(self.profile):
                when = f"  only when {dict(param.when)}" if param.when else ""
                lines.append(f"  search {param.name}: {_domain(param.domain)}{when}")
            lines += [f"  first   {dict(p)}" for p in study.points_to_evaluate]
        asha = study.early_stopping_for(self.profile)
        if asha:
            lines.append(f"stopping    ASHA on {study.metric} by epoch, grace {asha.grace_period}, reduction {asha.reduction_factor}")
        fixed = ", ".join(f"{k}={v}" for k, v in sorted(self.base.items()) if k not in self.searched and v != "")
        lines += textwrap.wrap(fixed, 110, initial_indent="fixed       ", subsequent_indent=" " * 12)
        if res:
            lines.append(f"resources   {res.per_trial()} per trial, up to {res.max_concurrent} trial(s) at once")
        lines.append(f"cluster     {self.address or 'a local Ray instance on 127.0.0.1'}")
        lines.append(f"results     {self.storage}/{self.experiment}")
        lines.append(f"mlflow      {self.tracking_uri} (experiment '{study.name}')")
        return "\n".join(lines)


def build_plan(
    study: Study,
    profile: str,
    data: Mapping[str, Any],
    overrides: Mapping[str, Any],
    num_samples: int | None = None,
    seeds: Sequence[int] = (),
    rows: Sequence[int] = (),
) -> Plan:
    """Validate the launch's configuration (no Ray needed): the base config, overrides, grid rows and trial count."""
    study = select_rows(study, rows)
    clash = sorted(set(overrides) & set(study.searched_keys(profile)))
    if clash:
        raise PlanError(f"{', '.join(clash)} is searched by study {study.name}; --set can only change fixed values")
    if seeds and not study.grid:
        raise PlanError(f"--seeds applies to grid studies; {study.name} is an Optuna search (use --set seed=N)")
    if seeds and "seed" in overrides:
        raise PlanError("--seeds and --set seed=... contradict each other")
    if num_samples is not None and study.grid:
        raise PlanError(f"{study.name} is an exact grid of {study.samples_for(profile)} trials; use --seeds to repeat it")
    try:
        base = build_config(profile, {**study.fixed_for(profile), **data, **overrides})
    except ConfigError as error:
        raise PlanError(str(error)) from None
    count = num_samples if num_samples is not None else study.samples_for(profile, seeds)
    if count < 1:
        raise PlanError("--num-samples must be at least 1")
    return Plan(study=study, profile=profile, base=base.to_dict(), num_samples=count, seeds=tuple(seeds),
                rows=tuple(rows), overrides=dict(overrides))


def select_rows(study: Study, rows: Sequence[int]) -> Study:
    """The study with only grid rows `rows` (1-based, in the study's order, as `--dry-run` lists them); the
    study itself when `rows` is empty."""
    if not rows:
        return study
    if not study.grid:
        raise PlanError(f"--rows applies to grid studies; {study.name} is an Optuna search")
    outside = [row for row in rows if not 1 <= row <= len(study.grid)]
    if outside:
        raise PlanError(f"--rows {','.join(map(str, rows))}: {study.name} has rows 1 to {len(study.grid)}, "
                        f"not {', '.join(map(str, outside))}")
    if len(set(rows)) != len(rows):
        raise PlanError(f"--rows {','.join(map(str, rows))} names a row twice")
    return dataclasses.replace(study, grid=tuple(study.grid[row - 1] for row in sorted(rows)))


def plan_resources(
    cpus: float,
    gpus: float,
    num_samples: int,
    workers_per_trial: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: int | None = None,
    max_concurrent: int | None = None,
    trials_per_gpu: int = 1,
) -> Resources:
    """Per-trial resources and concurrency that never oversubscribe the cluster (GPUs bound it when used).
    `trials_per_gpu` > 1 packs single-worker trials onto one GPU each (fractional GPU resources)."""
    if gpus_per_worker is None:
        gpus_per_worker = 1 if gpus >= 1 else 0
    if workers_per_trial < 1 or cpus_per_worker <= 0 or gpus_per_worker < 0:
        raise PlanError("--workers-per-trial must be >= 1, --cpus-per-worker > 0 and --gpus-per-worker >= 0")
    if trials_per_gpu < 1:
        raise PlanError(f"--trials-per-gpu must be >= 1, got {trials_per_gpu}")
    if trials_per_gpu > 1 and gpus_per_worker == 0:
        raise PlanError(f"--trials-per-gpu {trials_per_gpu} packs trials onto GPUs, and this launch uses none "
                        f"(the cluster has {gpus:g} GPU(s); --gpus-per-worker {gpus_per_worker})")
    if trials_per_gpu > 1 and (workers_per_trial > 1 or gpus_per_worker != 1):
        raise PlanError(f"--trials-per-gpu {trials_per_gpu} packs single-worker trials onto one GPU; this launch has "
                        f"{workers_per_trial} worker(s) x {gpus_per_worker} GPU(s) per trial (DDP trials keep whole "
                        "GPUs, as NCCL needs): use --workers-per-trial 1 on a cluster with GPUs, or --trials-per-gpu 1")
    need_cpus = workers_per_trial * cpus_per_worker
    need_gpus = workers_per_trial * gpus_per_worker / trials_per_gpu
    fit = math.floor(cpus / need_cpus + 1e-9)
    if need_gpus:
        fit = min(fit, math.floor(gpus / need_gpus + 1e-9))
    if fit < 1:
        raise PlanError(
            f"a trial needs {need_cpus:g} CPU(s) and {need_gpus} GPU(s) ({workers_per_trial} worker(s)); "
            f"the cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s)"
        )
    concurrent = min(fit, num_samples, max_concurrent or fit)
    if concurrent < 1:
        raise PlanError("--max-concurrent must be at least 1")
    return Resources(workers_per_trial, cpus_per_worker, gpus_per_worker, concurrent, trials_per_gpu)


def _domain(domain) -> str:
    if isinstance(domain, Choice):
        return "one of " + ", ".join(map(str, domain.values))
    return f"[{domain.low:g}, {domain.high:g}]" + (" log scale" if domain.log else "")
