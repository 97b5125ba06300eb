"""The vocabulary a study module is written in: what is searched, what is fixed, the metric, the paper's numbers.

Plain data, no Ray or Optuna: `study/` turns a `Study` into a Tune search. Every key is a `TrainConfig` field,
spelled the same way everywhere. A `Study` is also the one home of its metadata, read by the planner, the
progress view and the analysis alike: the searched keys, their conditions, and the paper row a config reproduces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

from trainables.config import PROFILES, ConfigError, TrainConfig, build_config


def native(value: Any) -> Any:
    """A NumPy scalar (as pandas hands them out) as the plain Python value; anything else unchanged."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def same_value(a: Any, b: Any) -> bool:
    """Config values equal: NumPy scalars as native values; a bool only equals a bool; numbers where either is a
    float to 1e-9 relative (they travel through text); anything else with ==. MLflow's text params are typed
    where they are read (`analysis.runs.cast_params`), not here."""
    a, b = native(a), native(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and (isinstance(a, float) or isinstance(b, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def meets(config: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """Every value of `condition` equals the config's (`same_value`); a key the config lacks never does."""
    return all(key in config and same_value(config[key], value) for key, value in condition.items())


def describe_config(config: Mapping[str, Any], keys: Sequence[str],
                    conditions: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """`key=value` for the searched keys of a trial, leaving out conditional ones that do not apply to it."""
    shown = [k for k in keys if meets(config, (conditions or {}).get(k, {}))]
    return ", ".join(f"{k}={config[k]:.4g}" if isinstance(config.get(k), float) else f"{k}={config.get(k)}" for k in shown)


def matching_reference(config: Mapping[str, Any], references: Sequence[Reference]) -> Reference | None:
    """The first paper row whose defining values the (full) config all has (`meets`)."""
    return next((ref for ref in references if meets(config, ref.config)), None)


@dataclass(frozen=True)
class Float:
    """A real interval [low, high]; `log=True` samples it on a log scale."""

    low: float
    high: float
    log: bool = False

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Int:
    """An integer interval [low, high]; `log=True` samples it on a log scale."""

    low: int
    high: int
    log: bool = False

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """One of a few values."""

    values: tuple

    def contains(self, value: Any) -> bool:
        return value in self.values


Domain = Union[Float, Int, Choice]


@dataclass(frozen=True)
class Param:
    """One searched config field. `when` makes it conditional: it is only sampled when the (earlier) searched
    fields named there have those values; otherwise the fixed value applies (e.g. `queue_size` only for MoCo)."""

    name: str
    domain: Domain
    when: Mapping[str, Any] = field(default_factory=dict)

    def applies(self, values: Mapping[str, Any]) -> bool:
        return meets(values, self.when)


@dataclass(frozen=True)
class Asha:
    """ASHA early stopping on the study metric, measured in epochs (rungs at grace_period * reduction_factor^k)."""

    grace_period: int
    reduction_factor: int = 3


@dataclass(frozen=True)
class Budget:
    """How a study is sized for one profile: extra fixed values, trial count, replaced searched params, early
    stopping (None = the study's)."""

    fixed: Mapping[str, Any] = field(default_factory=dict)
    num_samples: int = 0
    search: tuple[Param, ...] = ()
    early_stopping: Asha | None = None


@dataclass(frozen=True)
class Reference:
    """A result the paper reports: the config values that define its row, and its numbers (EER in %)."""

    source: str
    config: Mapping[str, Any]
    eer: float
    min_dcf: float | None = None


@dataclass(frozen=True)
class Study:
    """A named hyperparameter study.

    Either `search` (Optuna over the params, `num_samples` trials, starting with `points_to_evaluate`) or `grid`
    (exactly these partial configs, each once per seed in `seeds`). `fixed` holds the values every trial shares,
    on top of the profile; `budgets[profile]` resizes the study for a profile (e.g. few short trials on a CPU).
    Methods taking a profile read the study as declared for profile None (no budget).
    """

    name: str
    description: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    search: tuple[Param, ...] = ()
    num_samples: int = 0
    points_to_evaluate: tuple[Mapping[str, Any], ...] = ()
    grid: tuple[Mapping[str, Any], ...] = ()
    seeds: tuple[int, ...] = ()
    metric: str = "eer"
    mode: str = "min"
    searcher_seed: int = 0
    early_stopping: Asha | None = None
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    references: tuple[Reference, ...] = ()

    def budget(self, profile: str | None) -> Budget:
        """The profile's budget (an empty one when the study has none for it, or for profile None)."""
        return self.budgets.get(profile, Budget())

    def fixed_for(self, profile: str | None) -> dict[str, Any]:
        """Fixed values for a profile: the study's, then the budget's."""
        return {**self.fixed, **self.budget(profile).fixed}

    def search_for(self, profile: str | None) -> tuple[Param, ...]:
        """Searched params for a profile: the study's, with the budget's replacing those of the same name."""
        replaced = {p.name: p for p in self.budget(profile).search}
        return tuple(replaced.get(p.name, p) for p in self.search)

    def samples_for(self, profile: str | None, seeds: Sequence[int] = ()) -> int:
        """Number of trials for a profile (a grid: its points times `seeds`, else times the study's seeds)."""
        if self.grid:
            return len(self.grid) * max(1, len(seeds or self.seeds))
        return self.budget(profile).num_samples or self.num_samples

    def early_stopping_for(self, profile: str | None) -> Asha | None:
        """Early stopping for a profile."""
        return self.budget(profile).early_stopping or self.early_stopping

    def searched_keys(self, profile: str | None = None, seeds: Sequence[int] = ()) -> tuple[str, ...]:
        """The config keys that differ between a launch's trials. The one rule: an Optuna study searches its
        params (the profile's, in declared order); a grid study its grid keys (sorted), plus `seed` when the
        launch is given `seeds` or the study declares them. Every other key, `seed` included, is the same in
        every trial."""
        if self.grid:
            keys = {key for point in self.grid for key in point}
            return tuple(sorted(keys | ({"seed"} if seeds or self.seeds else set())))
        return tuple(p.name for p in self.search_for(profile))

    def conditions(self, profile: str | None = None) -> dict[str, dict[str, Any]]:
        """For each conditional searched key, the values of earlier searched keys under which it applies
        (e.g. `queue_size`: {"framework": "moco"}); grid keys are never conditional."""
        return {p.name: dict(p.when) for p in self.search_for(profile) if p.when}

    def full_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A partial config (e.g. a paper row) on top of the study's fixed values and the config defaults."""
        return {**TrainConfig().to_dict(), **self.fixed, **config}

    def matching_reference(self, config: Mapping[str, Any]) -> Reference | None:
        """The paper row a (partial or full) config reproduces: every value defining the row equals the
        config's, completed by `full_config` (`same_value`: floats to 1e-9 relative, NumPy scalars as native)."""
        return matching_reference(self.full_config(config), self.references)

    def grid_points(self, seeds: Sequence[int] = ()) -> list[dict[str, Any]]:
        """The grid crossed with `seeds` (else the study's own seeds); every point must set the same keys."""
        seeds = tuple(seeds or self.seeds)
        keys = sorted({key for point in self.grid for key in point} | ({"seed"} if seeds else set()))
        points = []
        for point in self.grid:
            for seed in seeds or (None,):
                full = dict(point) if seed is None else {**point, "seed": seed}
                points.append(full)
        missing = {key for key in keys if any(key not in p for p in points)}
        if missing:
            raise ConfigError(f"study {self.name}: grid points must all set the same keys; some lack {sorted(missing)}")
        return points

    def validate(self) -> None:
        """Raise ConfigError unless every key is a TrainConfig field and every trial's config is valid."""
        known = {f for f in TrainConfig.__dataclass_fields__}
        if self.mode not in ("min", "max"):
            raise ConfigError(f"study {self.name}: mode must be 'min' or 'max', got {self.mode!r}")
        if bool(self.search) == bool(self.grid):
            raise ConfigError(f"study {self.name}: declare either `search` or `grid`, not both or neither")
        for profile in PROFILES:
            search = self.search_for(profile)
            names = [p.name for p in search]
            keys = set(self.fixed_for(profile)) | set(names) | {k for point in self.grid for k in point}
            keys |= {k for point in self.points_to_evaluate for k in point}
            unknown = sorted(keys - known)
            if unknown:
                raise ConfigError(f"study {self.name}: unknown config key(s) {unknown}")
            if len(set(names)) != len(names):
                raise ConfigError(f"study {self.name}: a param is searched twice in {names}")
            for i, param in enumerate(search):
                earlier = {p.name: p for p in search[:i]}
                for key, value in param.when.items():
                    if key not in earlier or not earlier[key].domain.contains(value):
                        raise ConfigError(f"study {self.name}: {param.name} depends on {key}={value!r}, "
                                          "which is not an earlier searched value")
            if self.search and self.samples_for(profile) < 1:
                raise ConfigError(f"study {self.name}: num_samples must be >= 1")
            for config in self.example_configs(profile):
                build_config(profile, config)
            for point in self.points_to_evaluate:
                for param in search:
                    if param.name in point and not param.domain.contains(point[param.name]):
                        raise ConfigError(f"study {self.name}: point {dict(point)} is outside {param}")

    def example_configs(self, profile: str) -> list[dict[str, Any]]:
        """Overrides that cover every grid point, and each searched domain's ends and choices."""
        fixed = self.fixed_for(profile)
        if self.grid:
            return [{**fixed, **point} for point in self.grid_points()]
        configs = [{**fixed, **point} for point in self.points_to_evaluate] or [dict(fixed)]
        for param in self.search_for(profile):
            values = param.domain.values if isinstance(param.domain, Choice) else (param.domain.low, param.domain.high)
            for value in values:
                configs.append({**fixed, **param.when, param.name: value})
        return configs
