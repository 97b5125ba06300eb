"""One Tune trial = one Ray Train run (the driver pattern of Ray Train V2).

`train_driver` is the Tune function trainable: it hands the trial's flat config, untouched, to a `TorchTrainer`
whose workers run the trainer's loop under DDP (gloo on CPU, NCCL on GPU) with Ray Train + MLflow hooks. The
Train run is named after the Tune trial id, so a restarted trial resumes its own checkpoints. Evaluated epochs
are forwarded to Tune (the search and ASHA see EER); rank 0 logs every epoch to the trial's MLflow child run.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import ray
import ray.train
import ray.train.torch
import ray.tune
import torch
import torch.distributed as dist
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from search_spaces import describe_config
from study.launch.worker_hooks import RayTrainHooks
from study.tracking.runs import close_trial_run, finished_trial_metrics, log_checkpoint_reference
from study.tracking.settings import TrackingSettings, TrialTracking
from trainables.config import TrainConfig
from trainables.loop import Runtime, train


@dataclass(frozen=True)
class DriverPlan:
    """What every trial of a launch shares (plain data: it is pickled to the trial and saved with the launch)."""

    study: str
    metric: str
    mode: str
    searched: tuple[str, ...]
    conditions: Mapping[str, Mapping[str, Any]]
    workers_per_trial: int
    cpus_per_worker: float
    gpus_per_worker: int
    train_storage: str
    tracking: TrackingSettings | None = None
    """None = the trials are not tracked in MLflow."""
    max_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DriverPlan":
        tracking = values.get("tracking")
        return cls(**{**values, "searched": tuple(values["searched"]),
                      "tracking": TrackingSettings.from_dict(tracking) if tracking else None,
                      "conditions": {k: dict(v) for k, v in values["conditions"].items()}})


def train_driver(config: dict[str, Any], plan: dict[str, Any]) -> None:
    """Tune function trainable: run the trial's config with Ray Train, unless its MLflow run already finished."""
    driver = DriverPlan.from_dict(plan)
    trial_id = ray.tune.get_context().get_trial_id()
    done = finished_trial_metrics(driver.tracking, trial_id)
    if done is not None and driver.metric in done:
        ray.tune.report(done)  # finished before the launch was interrupted: not rerun
        return
    TrainConfig.from_dict(config)  # refuse an invalid combination before any worker starts
    tracking = None
    if driver.tracking is not None:
        tracking = driver.tracking.for_trial(trial_id, run_name(trial_id, config, driver.searched, driver.conditions))
    trainer = torch_trainer(train_fn_per_worker, {"config": config, "tracking": tracking}, driver, f"train_{trial_id}",
                            [ReportEvaluatedEpochs(driver.metric)])
    try:
        result = trainer.fit()
    except Exception:
        if driver.tracking is not None:
            close_trial_run(driver.tracking, trial_id, "FAILED")
        raise
    if driver.tracking is not None:
        checkpoint = result.checkpoint.path if result.checkpoint else None
        log_checkpoint_reference(driver.tracking, trial_id, {"checkpoint": checkpoint, "train_run": result.path})


def torch_trainer(train_fn, train_loop_config: dict[str, Any], driver: DriverPlan, name: str, callbacks: Sequence[Any] = ()):
    """The Ray Train run of one trial: `driver.workers_per_trial` DDP workers (gloo on CPU, NCCL on GPU), its
    checkpoints under driver.train_storage/name (a rerun with the same name resumes from them)."""
    gpus = driver.gpus_per_worker
    return TorchTrainer(
        train_fn,
        train_loop_config=train_loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=driver.workers_per_trial,
            use_gpu=gpus > 0,
            resources_per_worker={"CPU": driver.cpus_per_worker, **({"GPU": gpus} if gpus else {})},
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=driver.train_storage,
            callbacks=list(callbacks),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=driver.max_failures),
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),
    )


def train_fn_per_worker(loop_config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: the trainer's loop on {"config": the trial's flat config, "tracking":
    its TrialTracking or None, "verbose": progress lines (default true)}, with Ray Train + MLflow hooks."""
    _quiet_ray_train_reports()
    tracking: TrialTracking | None = loop_config.get("tracking")
    if tracking is not None:
        tracking = tracking.on_workers(worker_nodes())
    runtime = Runtime(verbose=loop_config.get("verbose", True))
    train(TrainConfig.from_dict(loop_config["config"]), runtime, RayTrainHooks(tracking))


def _quiet_ray_train_reports() -> None:
    """Drop Ray Train's per-report INFO line (the whole metrics dict, every epoch, every rank): its logger is
    named by file path, outside `ray.train`, so RunConfig's LoggingConfig does not reach it."""
    try:
        from ray.train.v2._internal.execution import context  # optional: a private module of Ray Train V2
    except ImportError:
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def worker_nodes() -> list[str]:
    """The node IP of every rank of the trial (all-gathered over the trial's process group)."""
    ip = ray.util.get_node_ip_address()
    if not (dist.is_available() and dist.is_initialized()):
        return [ip]
    if dist.get_backend() == "nccl":
        torch.cuda.set_device(ray.train.torch.get_device())
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, ip)
    return [str(g) for g in gathered]


def run_name(trial_id: str, config: Mapping[str, Any], searched: Sequence[str],
             conditions: Mapping[str, Mapping[str, Any]]) -> str:
    """A readable MLflow run name: the trial id and its searched values."""
    return f"{trial_id} {describe_config(config, searched, conditions)}".replace(",", "")


class ReportEvaluatedEpochs(TuneReportCallback):
    """A Train callback forwarding rank 0's evaluated epochs (those carrying `metric`) to the Tune trial."""

    def __init__(self, metric: str):
        super().__init__()
        self.metric = metric

    def after_report(self, run_context, metrics, checkpoint):
        if metrics and self.metric in metrics[0]:
            super().after_report(run_context, [{**metrics[0], "world_size": len(metrics)}], checkpoint)
