"""One Tune trial = one Ray Train run (the driver pattern of Ray Train V2).

`train_driver` is the Tune function trainable: it hands the trial's flat config, untouched, to a `TorchTrainer`
whose workers run the trainer's worker loop under DDP (gloo on CPU, NCCL on GPU). The Train run is named after
the Tune trial id, so a restarted trial resumes its own checkpoints. Evaluated epochs are forwarded to Tune
(the search and ASHA see EER); rank 0 logs every epoch to the trial's MLflow child run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from trainables.config import TrainConfig


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
    tracking: Mapping[str, Any] = field(default_factory=dict)
    max_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DriverPlan":
        return cls(**{**values, "searched": tuple(values["searched"]), "tracking": dict(values["tracking"]),
                      "conditions": {k: dict(v) for k, v in values["conditions"].items()}})


def train_driver(config: dict[str, Any], plan: dict[str, Any]) -> None:
    """Tune function trainable: run the trial's config with Ray Train, unless its MLflow run already finished."""
    import ray.tune

    from study.tracking.runs import close_trial_run, finished_trial_metrics, log_checkpoint_reference

    driver = DriverPlan.from_dict(plan)
    trial_id = ray.tune.get_context().get_trial_id()
    done = finished_trial_metrics(driver.tracking, trial_id)
    if done is not None and driver.metric in done:
        ray.tune.report(done)  # finished before the launch was interrupted: not rerun
        return
    TrainConfig.from_dict(config)  # refuse an invalid combination before any worker starts
    tracking = dict(driver.tracking)
    if tracking:
        tracking.update(trial_id=trial_id, run_name=run_name(trial_id, config, driver.searched, driver.conditions))
    runtime = {"use_ray": True, "tracking": tracking}
    trainer = torch_trainer(train_fn_per_worker, {**config, "runtime": runtime}, driver, f"train_{trial_id}",
                            [_report_to_tune(driver.metric)])
    try:
        result = trainer.fit()
    except Exception:
        if tracking:
            close_trial_run(tracking, trial_id, "FAILED")
        raise
    if tracking:
        checkpoint = result.checkpoint.path if result.checkpoint else None
        log_checkpoint_reference(tracking, trial_id, {"checkpoint": checkpoint, "train_run": result.path})


def torch_trainer(train_fn, train_loop_config: dict[str, Any], driver: DriverPlan, name: str, callbacks: Sequence[Any] = ()):
    """The Ray Train run of one trial: `driver.workers_per_trial` DDP workers (gloo on CPU, NCCL on GPU), its
    checkpoints under driver.train_storage/name (a rerun with the same name resumes from them)."""
    import ray.train
    from ray.train.torch import TorchTrainer

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


def train_fn_per_worker(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: the trainer's worker loop, told where the trial's workers are."""
    from trainables.worker import train_loop_per_worker

    _quiet_ray_train_reports()
    config = dict(config)
    runtime = dict(config.pop("runtime", {}))
    if runtime.get("tracking"):
        nodes = worker_nodes()
        runtime["tracking"] = {**runtime["tracking"], "world_size": len(nodes), "worker_nodes": sorted(set(nodes))}
    train_loop_per_worker({**config, "runtime": runtime})


def _quiet_ray_train_reports() -> None:
    """Drop Ray Train's per-report INFO line (the whole metrics dict, every epoch, every rank): its logger is
    named by file path, outside `ray.train`, so RunConfig's LoggingConfig does not reach it."""
    import logging

    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def worker_nodes() -> list[str]:
    """The node IP of every rank of the trial (all-gathered over the trial's process group)."""
    import ray
    import torch
    import torch.distributed as dist

    ip = ray.util.get_node_ip_address()
    if not (dist.is_available() and dist.is_initialized()):
        return [ip]
    if dist.get_backend() == "nccl":
        import ray.train.torch

        torch.cuda.set_device(ray.train.torch.get_device())
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, ip)
    return [str(g) for g in gathered]


def run_name(trial_id: str, config: Mapping[str, Any], searched: Sequence[str],
             conditions: Mapping[str, Mapping[str, Any]]) -> str:
    """A readable MLflow run name: the trial id and its searched values."""
    from study.launch.progress import describe_config

    return f"{trial_id} {describe_config(config, searched, conditions)}".replace(",", "")


def _report_to_tune(metric: str):
    """A Train callback forwarding rank 0's evaluated epochs (those carrying `metric`) to the Tune trial."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class ReportEvaluatedEpochs(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            if metrics and metric in metrics[0]:
                super().after_report(run_context, [{**metrics[0], "world_size": len(metrics)}], checkpoint)

    return ReportEvaluatedEpochs()
