"""Where a launch's runs go in MLflow, and which child run one trial writes: plain frozen data, pickled to each
trial's driver and workers and saved in the launch record (launch.json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class TrackingSettings:
    """The MLflow store, experiment and parent run of one launch of a study."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    study: str
    git_commit: str = "unknown"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrackingSettings":
        return cls(**values)

    def for_trial(self, trial_id: str, run_name: str) -> "TrialTracking":
        """The settings of one trial's child run (on one worker until `on_workers` says where they all are)."""
        return TrialTracking(self, trial_id, run_name)


@dataclass(frozen=True)
class TrialTracking:
    """The child run of one trial: its launch, its trial id and run name, and the workers that train it."""

    launch: TrackingSettings
    trial_id: str
    run_name: str
    world_size: int = 1
    worker_nodes: tuple[str, ...] = ()
    """Distinct node IPs of the trial's workers, sorted."""

    def on_workers(self, nodes: Sequence[str]) -> "TrialTracking":
        """These settings for a trial whose ranks run on `nodes` (one IP per rank)."""
        return replace(self, world_size=len(nodes), worker_nodes=tuple(sorted(set(nodes))))
