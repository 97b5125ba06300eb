"""The training loop, plain PyTorch: `train(cfg, runtime, hooks)` and the named steps it is made of.

Its side effects (the device, the state to resume from, where checkpoints, reports and tracking go) come from
its `hooks` (see `trainables.hooks`), so the same loop runs in each Ray Train worker of a trial and in-process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from trainables.checkpoint import rng_state, set_rng_state
from trainables.config import TrainConfig
from trainables.data_paths import DataPaths, resolve_data
from trainables.distributed import all_reduce_mean, world
from trainables.evaluation import TrialSet, evaluate
from trainables.floors import trial_floors
from trainables.hooks import Hooks, LocalCheckpoints
from trainables.parts import RunParts, StepParts, build_parts


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names epoch, step, value and the last good checkpoint."""


@dataclass
class Runtime:
    """How a run is executed (not a hyperparameter: never logged as one)."""

    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'; used when the hooks name no device."""
    verbose: bool = True
    """Print progress lines (rank 0 only)."""


def train(cfg: TrainConfig, runtime: Runtime | None = None, hooks: Hooks | None = None) -> dict[str, Any]:
    """Train `cfg` for its epochs, evaluating every `eval_every` epochs and handing each epoch to the hooks
    (default: no checkpoints); returns the last epoch's metrics."""
    runtime = runtime or Runtime()
    hooks = hooks if hooks is not None else LocalCheckpoints()
    rank, world_size = world()
    log = print if (runtime.verbose and rank == 0) else _silent
    device = hooks.device()
    if device is None:
        device = local_device(runtime.device)
    started = time.perf_counter()
    paths = resolve_data(cfg, log)
    if paths.embedded:
        log(f"no dataset given: using the embedded corpus at {paths.data_root}")
    parts = build_parts(cfg, paths, device, log)
    start_epoch, history = 0, []
    restored = hooks.restore()
    if restored is not None:
        start_epoch, history = restore_state(parts.step, restored)
        log(f"resumed from epoch {start_epoch}")
    hooks.start(cfg, paths)
    log(
        f"training {cfg.framework} (symmetric={cfg.symmetric}, margin={cfg.margin}, temperature={cfg.temperature:.4g}) "
        f"on {len(parts.data.dataset)} utterances, {len(parts.data.sampler)} steps/epoch, batch {cfg.batch_size}, "
        f"{world_size} worker(s), {device}"
    )
    metrics: dict[str, Any] = history[-1] if history else {}
    checkpoint = None
    floors = floors_once(parts, paths, log)
    for epoch in range(start_epoch, cfg.epochs):
        metrics, scores = run_epoch(parts, epoch, checkpoint, floors, hooks.step_end)
        metrics["seconds"] = time.perf_counter() - started
        history.append(metrics)
        log(progress_line(metrics, cfg.epochs))
        checkpoint = hooks.epoch_end(checkpoint_state(parts.step, epoch + 1, history), scores, metrics)
    hooks.end()
    return metrics


def run_epoch(parts: RunParts, epoch: int, last_checkpoint: str | None, floors: Callable[[], dict[str, float]] = dict,
              on_step: Callable[[int, int, int, float], None] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Train 0-based `epoch` (`on_step` as in `train_epoch`), then evaluate when due: (metrics, trial scores and
    labels or None); an evaluated epoch's metrics include `floors()` (the trial list's floors, `floors_once`)."""
    metrics = train_epoch(parts, epoch, last_checkpoint, on_step)
    trial_set = parts.data.trial_set
    if not evaluation_due(parts.step.cfg, epoch) or trial_set is None:
        return metrics, None
    result, scores = run_evaluation(parts.step, trial_set)
    return {**metrics, **result, **floors()}, scores


def floors_once(parts: RunParts, paths: DataPaths, log: Callable[[str], None]) -> Callable[[], dict[str, float]]:
    """The floors of the run's trial list (`trainables.floors`), computed or read from the cache on the first
    call only (the first evaluation, on the rank that evaluates), logged in one line."""
    found: dict[str, float] = {}

    def floors() -> dict[str, float]:
        trial_set, step = parts.data.trial_set, parts.step
        if not found and trial_set is not None:
            found.update(trial_floors(trial_set, paths.trials, paths.data_root, step.cfg, step.device,
                                      frontend=step.frontend, log=log))
        return found

    return floors


def train_epoch(parts: RunParts, epoch: int, last_checkpoint: str | None,
                on_step: Callable[[int, int, int, float], None] | None = None) -> dict[str, Any]:
    """One pass over this rank's batches and the learning-rate decay; the epoch's metrics (loss averaged over
    ranks, `epoch_lr` = the rate in force). A non-finite loss raises NonFiniteLossError naming `last_checkpoint`.
    `on_step(epoch, step, steps, loss)` follows each step (1-based `step` of the epoch's `steps`)."""
    data, step = parts.data, parts.step
    cfg, device = step.cfg, step.device
    rank, _ = world()
    data.sampler.set_epoch(epoch)
    data.dataset.set_epoch(epoch)
    lr = step.optimizer.param_groups[0]["lr"]
    step.model.train()
    started = time.perf_counter()
    losses = []
    steps = len(data.loader)
    for index, batch in enumerate(data.loader):
        value = train_step(step, batch, torch.Generator().manual_seed(step_seed(cfg.seed, epoch, index, rank)))
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss is {value} at epoch {epoch + 1}, step {index + 1} (margin={cfg.margin}, "
                f"temperature={cfg.temperature}, lr={lr:.3g}); training stopped; last good checkpoint: "
                f"{last_checkpoint or 'none written by this call'}"
            )
        losses.append(value)
        if on_step is not None:
            on_step(epoch, index + 1, steps, value)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    step.scheduler.step()
    return {
        "epoch": epoch + 1,
        "loss": all_reduce_mean(float(np.mean(losses)), device),
        "epoch_lr": lr,
        "samples_per_s": len(losses) * cfg.batch_size / max(seconds, 1e-9),
        "step_s": seconds / max(len(losses), 1),
    }


def train_step(parts: StepParts, batch: torch.Tensor, generator: torch.Generator) -> float:
    """One optimiser step on a batch (n, 2, crop) of two views, augmented with draws from `generator`; returns
    the loss value (when it is not finite, the weights are left untouched)."""
    waves = stack_views(batch, parts.device)  # (2n, crop)
    features = parts.frontend(parts.augmenter(waves, generator))  # (2n, n_mels, frames)
    dtype = parts.autocast_dtype
    with torch.autocast(parts.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss = parts.trained(features, parts.cfg.margin, parts.cfg.temperature)
    value = float(loss.detach())
    if not math.isfinite(value):
        return value
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    parts.model.after_step()
    return value


def stack_views(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A loader batch (n, 2, crop) on `device` as (2n, crop): view 1 of every utterance, then view 2."""
    return batch.to(device, non_blocking=True).transpose(0, 1).reshape(-1, batch.shape[-1])


def evaluation_due(cfg: TrainConfig, epoch: int) -> bool:
    """Whether 0-based `epoch` ends with an evaluation: every `eval_every` epochs, and always the last."""
    return epoch + 1 == cfg.epochs or bool(cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)


def run_evaluation(parts: StepParts, trial_set: TrialSet) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """({eer, min_dcf, eval_s}, {scores, labels}) of the framework's encoder on the trial list."""
    cfg = parts.cfg
    started = time.perf_counter()
    result = evaluate(trial_set, parts.frontend, parts.model.encoder, parts.device, cfg.eval_mode,
                      cfg.eval_segment_samples, cfg.eval_segments, parts.autocast_dtype)
    metrics = {"eer": result["eer"], "min_dcf": result["min_dcf"], "eval_s": time.perf_counter() - started}
    return metrics, {"scores": result["scores"], "labels": result["labels"]}


def checkpoint_state(parts: StepParts, epoch: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything a resume needs after `epoch` epochs: weights (MoCo queues included), optimiser, scheduler, RNGs."""
    return {
        "epoch": epoch,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "rng": rng_state(),
        "history": history,
        "config": parts.cfg.to_dict(),
    }


def restore_state(parts: StepParts, state: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Load a `checkpoint_state` into the parts and the RNGs; (epochs done, their metrics)."""
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["epoch"], state["history"]


def step_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, epoch, step, rank)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> 1)


def local_device(name: str) -> torch.device:
    """'auto' = CUDA when available, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def progress_line(metrics: dict[str, Any], epochs: int) -> str:
    """The console line of one epoch (rank 0)."""
    text = (
        f"epoch {metrics['epoch']:>3}/{epochs}  loss {metrics['loss']:.4f}  lr {metrics['epoch_lr']:.2e}  "
        f"{metrics['samples_per_s']:.1f} utt/s  {metrics['seconds']:.0f}s"
    )
    if "eer" in metrics:
        text += f"  EER {metrics['eer']:.2f}%  minDCF {metrics['min_dcf']:.4f}"
    return text


def _silent(*_: Any) -> None:
    pass
