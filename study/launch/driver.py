"""One Tune trial = one Ray Train run (the driver pattern of Ray Train V2), or for a single-worker trial the
trainer's loop run in the Tune trial itself.

`train_driver` is the Tune function trainable. For DDP trials it hands the trial's flat config, untouched, to a
`TorchTrainer` whose workers run the trainer's loop under DDP (gloo on CPU, NCCL on GPU) with Ray Train + MLflow
hooks. A single-worker trial skips the Train controller (12-16 s of fixed cost per trial measured here, against
about 1.3 s in the Tune trial, whose process Tune reuses for the next trial) and runs the loop in the trial
process with the resources Ray gave it, a GPU share when trials are packed (`--trials-per-gpu`). Either way
checkpoints live under the trial's own folder, so a restarted trial resumes them. Evaluated epochs are
forwarded to Tune (the search and ASHA see EER); rank 0 logs every epoch to the trial's MLflow child run.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import ray
import ray.train
import ray.train.torch
import ray.tune
import torch
import torch.distributed as dist
from ray.train import UserCallback
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from search_spaces import describe_config
from study.launch.errors import one_line
from study.launch.rendezvous import NodeBoundTorchConfig
from study.launch.worker_hooks import InTrialHooks, RayTrainHooks
from study.tracking.background import send_until_done
from study.tracking.models import log_trial_encoder
from study.tracking.runs import finished_trial_metrics, log_checkpoint_reference, start_trial_run
from study.tracking.settings import TrackingSettings, TrialTracking
from trainables.checkpoint import read_checkpoint, read_scores
from trainables.config import TrainConfig
from trainables.data_paths import resolve_data
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
    """Restarts of a trial's workers from its last checkpoint after a worker or node dies (or a worker raises)."""
    trials_per_gpu: int = 1
    """Single-worker trials sharing a GPU."""
    ray_train: bool = False
    """Run single-worker trials under a Ray Train controller too (the benchmark's baseline)."""
    board: str = ""
    """The name of the launch's live-view board actor (`study.launch.live_board`); "" = none."""
    verbose: bool = False
    """Workers print their progress lines (the console's --verbose); the live view shows where trials are."""

    @property
    def in_trial(self) -> bool:
        """Whether trials run the loop in the Tune trial process (single worker, results on a file system)."""
        return not self.ray_train and self.workers_per_trial == 1 and "://" not in self.train_storage

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
    done = _finished_metrics(driver.tracking, trial_id)
    if done is not None and driver.metric in done:
        ray.tune.report(done)  # finished before the launch was interrupted: not rerun
        return
    TrainConfig.from_dict(config)  # refuse an invalid combination before any worker starts
    tracking = None
    if driver.tracking is not None:
        tracking = driver.tracking.for_trial(trial_id, run_name(trial_id, config, driver.searched, driver.conditions))
    if driver.in_trial:
        train_in_trial(config, tracking, driver, trial_id)
        return
    loop_config = {"config": config, "tracking": tracking, "verbose": driver.verbose, "board": driver.board,
                   "trial_id": trial_id}
    trainer = torch_trainer(train_fn_per_worker, loop_config, driver, f"train_{trial_id}",
                            [ReportEvaluatedEpochs(driver.metric), ReportFailures(trial_id, driver.max_failures)])
    try:
        result = trainer.fit()
    except Exception as error:  # the launch's driver closes the run: FAILED, or interrupted when it stopped the trial
        raise TrialFailed(one_line(error)) from None
    if tracking is not None:
        if result.checkpoint is None:
            finish_run(tracking, TrainConfig.from_dict(config), None, result.path)
        else:
            with result.checkpoint.as_directory() as folder:
                finish_run(tracking, TrainConfig.from_dict(config), Path(folder), result.path, result.checkpoint.path)


def train_in_trial(config: dict[str, Any], tracking: TrialTracking | None, driver: DriverPlan, trial_id: str) -> None:
    """Run the trainer's loop in this Tune trial process (a single-worker trial): checkpoints in the trial's
    folder under the launch's results; a failure is one line, and Tune retries the trial (`--max-failures`)."""
    _quiet_exit_in_callbacks()
    folder = Path(driver.train_storage) / f"train_{trial_id}"
    hooks = InTrialHooks(tracking, folder, driver.metric, driver.board, trial_id)
    cfg = TrainConfig.from_dict(config)
    try:
        train(cfg, Runtime(verbose=driver.verbose), hooks)
    except Exception as error:  # the launch's driver closes the run: FAILED, or interrupted when it stopped the trial
        raise TrialFailed(one_line(error)) from None
    if tracking is not None:
        finish_run(tracking, cfg, hooks.latest(), str(folder))


def _quiet_exit_in_callbacks() -> None:
    """When Tune stops a trial (a scheduler, an interrupted launch), Ray ends the trial process by raising an
    exit in its main thread; landing in a garbage-collection callback, Python would print it as an "ignored"
    traceback. Drop those (exits only: any other unraisable error is still printed)."""
    if getattr(sys.unraisablehook, "quiet_exit", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if not isinstance(unraisable.exc_value, (SystemExit, KeyboardInterrupt)):
            previous(unraisable)

    hook.quiet_exit = True
    sys.unraisablehook = hook


def finish_run(tracking: TrialTracking, cfg: TrainConfig, checkpoint: Path | None, train_path: str,
               checkpoint_path: str | None = None) -> None:
    """Complete the trial's child run from its final checkpoint folder where the workers could not (a tracking
    outage), then attach where that checkpoint is (`checkpoint_path`, default the folder) and the trial's run."""
    launch, trial_id = tracking.launch, tracking.trial_id
    if _finished_metrics(launch, trial_id) is None and checkpoint is not None:
        history, scores = read_checkpoint(checkpoint)["history"], read_scores(checkpoint)
        send_until_done(lambda: start_trial_run(tracking, cfg, asdict(resolve_data(cfg))), history, scores)
    where = checkpoint_path or (str(checkpoint) if checkpoint is not None else None)
    log_checkpoint_reference(launch, trial_id, {"checkpoint": where, "train_run": train_path})
    if checkpoint is not None:
        try:
            log_trial_encoder(launch, trial_id, checkpoint)
        except Exception as error:  # the trial's result stands; its checkpoint holds the encoder
            print(f"trial {trial_id}: its encoder model was not logged to MLflow ({one_line(error)}); "
                  f"`python -m study.embed {where}` uses the checkpoint", flush=True)


def _finished_metrics(launch: TrackingSettings | None, trial_id: str) -> dict[str, float] | None:
    """The trial's final metrics when its run finished; None when not, or when the store cannot say (the trial
    then runs: resumed from its last checkpoint, a finished one ends at once)."""
    try:
        return finished_trial_metrics(launch, trial_id)
    except Exception:  # e.g. the tracking server is down (the launch's driver says so)
        return None


class TrialFailed(RuntimeError):
    """A trial's Ray Train run failed for good (retries spent); the message is one readable line."""


def torch_trainer(train_fn, train_loop_config: dict[str, Any], driver: DriverPlan, name: str, callbacks: Sequence[Any] = ()):
    """The Ray Train run of one trial: `driver.workers_per_trial` DDP workers (gloo on CPU, NCCL on GPU), its
    checkpoints under driver.train_storage/name (a rerun with the same name resumes from them)."""
    gpus = driver.gpus_per_worker
    return TorchTrainer(
        train_fn,
        train_loop_config=train_loop_config,
        torch_config=NodeBoundTorchConfig(),
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
    its TrialTracking or None, "verbose": progress lines (default true), "board" and "trial_id": where rank 0
    posts its position for the live view (optional)}, with Ray Train + MLflow hooks."""
    _quiet_ray_train_reports()
    tracking: TrialTracking | None = loop_config.get("tracking")
    if tracking is not None:
        tracking = tracking.on_workers(worker_nodes())
    runtime = Runtime(verbose=loop_config.get("verbose", True))
    hooks = RayTrainHooks(tracking, loop_config.get("board", ""), loop_config.get("trial_id", ""))
    train(TrainConfig.from_dict(loop_config["config"]), runtime, hooks)


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


class ReportFailures(UserCallback):
    """A Train callback printing one line per worker failure of the trial: which rank, why, and whether the
    workers restart from the last checkpoint."""

    def __init__(self, trial_id: str, max_failures: int):
        self.trial_id = trial_id
        self.max_failures = max_failures
        self.failures = 0

    def after_exception(self, run_context, worker_exceptions):
        self.failures += 1
        ranks = ", ".join(f"rank {rank}: {one_line(error)}" for rank, error in sorted(worker_exceptions.items()))
        if self.failures <= self.max_failures:
            then = f"restarting from its last checkpoint (retry {self.failures} of {self.max_failures})"
        else:
            then = f"no retry left (--max-failures {self.max_failures})"
        print(f"trial {self.trial_id}: worker failed ({ranks}); {then}", flush=True)
