"""The training loop every Ray Train worker runs, and that also runs in-process without Ray.

`train_loop_per_worker(config)` takes one flat dict: the `TrainConfig` fields plus an optional `runtime`
entry (see `Runtime`). Ray is touched only in the functions in the section marked "Ray" below; MLflow only in
the section marked "MLflow". Everything else is plain PyTorch.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from trainables.augment import Augmenter, NoiseBank, RirBank
from trainables.checkpoint import latest_checkpoint, prune_checkpoints, read_checkpoint, rng_state, set_rng_state, write_checkpoint
from trainables.config import TrainConfig
from trainables.dataset import BatchedViews, TwoViewDataset
from trainables.distributed import all_reduce_mean, world
from trainables.encoders import build_encoder
from trainables.evaluation import TrialSet, evaluate
from trainables.features import LogMel
from trainables.frameworks import MoCo, Projector, SimCLR
from trainables.manifest import read_train_manifest, resolve
from trainables.sampler import BatchSampler


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names epoch, step, value and the last good checkpoint."""


@dataclass
class Runtime:
    """How a run is executed (not a hyperparameter: never logged as one)."""

    output_dir: str = ""
    """In-process runs: checkpoints go to output_dir/checkpoints (empty = no checkpoints)."""
    resume: bool = True
    """Continue from the newest checkpoint when one exists."""
    use_ray: bool = False
    """Running inside a Ray Train worker: report metrics and checkpoints to Ray."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'."""
    verbose: bool = True
    """Print progress lines (rank 0 only)."""
    stop_after_epochs: int = 0
    """Stop (as if interrupted) after this many epochs of this call (0 = run to the end); for tests."""
    tracking: dict = field(default_factory=dict)
    """MLflow settings from the study driver: tracking_uri, experiment, run_id (empty = no MLflow)."""


@dataclass
class DataPaths:
    """Absolute paths of everything a run reads."""

    data_root: str
    train_manifest: str
    trials: str
    noise_dir: str
    rir_dir: str
    embedded: bool


def resolve_data(cfg: TrainConfig, log: Callable[[str], None] = print) -> DataPaths:
    """Paths from the config; with no data_root, the embedded corpus (generated once, cached)."""
    if not cfg.data_root:
        from trainables.corpus import NOISE_DIR, RIR_DIR, TRAIN_MANIFEST, TRIALS, ensure_embedded_corpus

        root = str(ensure_embedded_corpus(log=log))
        return DataPaths(
            data_root=root,
            train_manifest=resolve(root, cfg.train_manifest or TRAIN_MANIFEST),
            trials=resolve(root, cfg.trials or TRIALS),
            noise_dir=resolve(root, cfg.noise_dir or NOISE_DIR),
            rir_dir=resolve(root, cfg.rir_dir or RIR_DIR),
            embedded=True,
        )
    root = str(Path(cfg.data_root).expanduser().resolve())
    if not Path(root).is_dir():
        raise FileNotFoundError(f"data_root {root!r} is not a folder")
    return DataPaths(
        data_root=root,
        train_manifest=resolve(root, cfg.train_manifest or "train.csv"),
        trials=resolve(root, cfg.trials) if cfg.trials else "",
        noise_dir=resolve(root, cfg.noise_dir) if cfg.noise_dir else "",
        rir_dir=resolve(root, cfg.rir_dir) if cfg.rir_dir else "",
        embedded=False,
    )


def build_framework(cfg: TrainConfig) -> nn.Module:
    """The SimCLR or MoCo module the config describes (weights initialised from the config's seed)."""
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.encoder, cfg.n_mels, cfg.embedding_dim)
    projector = Projector(cfg.embedding_dim, cfg.projector_hidden_dim, cfg.projector_dim) if cfg.projector else None
    loss_dim = cfg.projector_dim if cfg.projector else cfg.embedding_dim
    if cfg.framework == "moco":
        return MoCo(encoder, cfg.queue_size, cfg.momentum, loss_dim, projector)
    return SimCLR(encoder, projector, cfg.symmetric)


def step_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, epoch, step, rank)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> 1)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Entry point for Ray Train workers and in-process runs; returns the last epoch's metrics."""
    config = dict(config)
    runtime = Runtime(**config.pop("runtime", {}))
    return train(TrainConfig.from_dict(config), runtime)


def train(cfg: TrainConfig, runtime: Runtime) -> dict[str, Any]:
    """Train `cfg` for its epochs, evaluating every `eval_every` epochs and checkpointing each epoch."""
    rank, world_size = world()
    log = print if (runtime.verbose and rank == 0) else (lambda *_: None)
    device = _device(runtime)
    started = time.perf_counter()

    paths = resolve_data(cfg, log)
    if paths.embedded:
        log(f"no dataset given: using the embedded corpus at {paths.data_root}")
    utterances = read_train_manifest(paths.train_manifest, paths.data_root)
    if cfg.max_utterances:
        utterances = utterances[: cfg.max_utterances]
    trial_set = TrialSet.load(paths.trials, paths.data_root, cfg.sample_rate) if (paths.trials and rank == 0) else None
    dataset = TwoViewDataset(
        utterances,
        sample_rate=cfg.sample_rate,
        crop=cfg.crop_samples,
        seed=cfg.seed,
        preload=cfg.preload,
        preload_max_bytes=int(cfg.preload_max_gb * (1 << 30)),
        max_bad_fraction=cfg.max_bad_files,
        log=log,
    )
    sampler = BatchSampler(
        dataset.speakers,
        cfg.batch_size,
        cfg.seed,
        prevent_class_collisions=cfg.prevent_class_collisions,
        max_utterances_per_speaker=cfg.max_utterances_per_speaker,
        rank=rank,
        world_size=world_size,
    )
    loader = torch.utils.data.DataLoader(
        BatchedViews(dataset), sampler=sampler, batch_size=None, num_workers=cfg.loader_workers, pin_memory=device.type == "cuda"
    )
    augmenter = Augmenter(
        NoiseBank.from_dir(paths.noise_dir, cfg.sample_rate, device=device) if paths.noise_dir else None,
        RirBank.from_dir(paths.rir_dir, cfg.sample_rate, device=device) if paths.rir_dir else None,
        noise_prob=cfg.noise_prob,
        reverb_prob=cfg.reverb_prob,
    )
    frontend = LogMel(cfg.sample_rate, cfg.n_mels, cfg.mel_window).to(device)
    model = build_framework(cfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_epochs, gamma=cfg.lr_decay)
    autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None

    checkpoint_root = Path(runtime.output_dir) / "checkpoints" if runtime.output_dir else None
    start_epoch, history = 0, []
    restored = _restore_state(checkpoint_root, runtime)
    if restored is not None:
        model.load_state_dict(restored["model"])
        optimizer.load_state_dict(restored["optimizer"])
        scheduler.load_state_dict(restored["scheduler"])
        set_rng_state(restored["rng"])
        start_epoch, history = restored["epoch"], restored["history"]
        log(f"resumed from epoch {start_epoch}")
    trained = _wrap_distributed(model, device)
    tracker = _start_tracking(runtime, cfg, paths, rank)

    log(
        f"training {cfg.framework} (symmetric={cfg.symmetric}, margin={cfg.margin}, temperature={cfg.temperature:.4g}) "
        f"on {len(dataset)} utterances, {len(sampler)} steps/epoch, batch {cfg.batch_size}, {world_size} worker(s), {device}"
    )
    last_checkpoint = None
    metrics: dict[str, Any] = history[-1] if history else {}
    for epoch in range(start_epoch, cfg.epochs):
        if runtime.stop_after_epochs and epoch - start_epoch >= runtime.stop_after_epochs:
            break
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        epoch_start = time.perf_counter()
        losses = []
        for step, batch in enumerate(loader):
            # batch: (n, 2, crop) -> (2n, crop), view 1 of every utterance then view 2
            waves = batch.to(device, non_blocking=True).transpose(0, 1).reshape(-1, batch.shape[-1])
            generator = torch.Generator().manual_seed(step_seed(cfg.seed, epoch, step, rank))
            features = frontend(augmenter(waves, generator))  # (2n, n_mels, frames)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
                loss = trained(features, cfg.margin, cfg.temperature)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"loss is {value} at epoch {epoch + 1}, step {step + 1} (margin={cfg.margin}, "
                    f"temperature={cfg.temperature}, lr={lr:.3g}); training stopped; last good checkpoint: "
                    f"{last_checkpoint or 'none written by this call'}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            model.after_step()
            losses.append(value)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - epoch_start
        scheduler.step()
        metrics = {
            "epoch": epoch + 1,
            "loss": all_reduce_mean(float(np.mean(losses)), device),
            "lr": lr,
            "margin": cfg.margin,
            "samples_per_s": len(losses) * cfg.batch_size / max(train_seconds, 1e-9),
            "step_s": train_seconds / max(len(losses), 1),
        }
        scores = None
        due = epoch + 1 == cfg.epochs or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)
        if due and trial_set is not None:
            eval_start = time.perf_counter()
            result = evaluate(
                trial_set, frontend, model.encoder, device, cfg.eval_mode, cfg.eval_segment_samples, cfg.eval_segments, autocast_dtype
            )
            metrics.update(eer=result["eer"], min_dcf=result["min_dcf"], eval_s=time.perf_counter() - eval_start)
            scores = {"scores": result["scores"], "labels": result["labels"]}
        metrics["seconds"] = time.perf_counter() - started
        history.append(metrics)
        log(_progress_line(metrics, cfg.epochs))
        state = {
            "epoch": epoch + 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "history": history,
            "config": cfg.to_dict(),
        }
        last_checkpoint = _save_and_report(state, scores, metrics, checkpoint_root, runtime, rank)
        _track_epoch(tracker, metrics, scores)
    _end_tracking(tracker)
    return metrics


def _progress_line(metrics: dict[str, Any], epochs: int) -> str:
    text = (
        f"epoch {metrics['epoch']:>3}/{epochs}  loss {metrics['loss']:.4f}  lr {metrics['lr']:.2e}  "
        f"{metrics['samples_per_s']:.1f} utt/s  {metrics['seconds']:.0f}s"
    )
    if "eer" in metrics:
        text += f"  EER {metrics['eer']:.2f}%  minDCF {metrics['min_dcf']:.4f}"
    return text


def _device(runtime: Runtime) -> torch.device:
    if runtime.use_ray:
        return _ray_device()
    if runtime.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(runtime.device)


def _restore_state(checkpoint_root: Path | None, runtime: Runtime) -> dict[str, Any] | None:
    if not runtime.resume:
        return None
    if runtime.use_ray:
        return _ray_restore()
    found = latest_checkpoint(checkpoint_root) if checkpoint_root else None
    return read_checkpoint(found) if found else None


def _save_and_report(
    state: dict[str, Any],
    scores: dict[str, np.ndarray] | None,
    metrics: dict[str, Any],
    checkpoint_root: Path | None,
    runtime: Runtime,
    rank: int,
) -> str | None:
    if runtime.use_ray:
        return _ray_report(state, scores, metrics, rank)
    if checkpoint_root is None or rank != 0:
        return None
    folder = write_checkpoint(checkpoint_root / f"epoch_{state['epoch']:04d}", state, scores)
    prune_checkpoints(checkpoint_root, keep=2)
    return str(folder)


def _wrap_distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around the framework when a process group exists (set up by Ray Train's TorchTrainer)."""
    _, world_size = world()
    if world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    # The MoCo queues are identical on every rank (they enqueue all-gathered keys): no buffer broadcast.
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


# --- Ray: the only Ray calls of the worker loop -------------------------------------------------------------


def _ray_device() -> torch.device:
    import ray.train.torch

    return ray.train.torch.get_device()


def _ray_restore() -> dict[str, Any] | None:
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return read_checkpoint(folder)


def _ray_report(state: dict[str, Any], scores: dict[str, np.ndarray] | None, metrics: dict[str, Any], rank: int) -> str | None:
    import ray.train

    if rank != 0:
        ray.train.report(metrics)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_checkpoint(Path(tmp) / "checkpoint", state, scores)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))
    return f"Ray checkpoint of epoch {state['epoch']}"


# --- MLflow: the only MLflow calls of the worker loop (rank 0 writes) ----------------------------------------


def _start_tracking(runtime: Runtime, cfg: TrainConfig, paths: DataPaths, rank: int) -> Any:
    if rank != 0 or not runtime.tracking:
        return None
    from study.tracking.runs import start_trial_run

    return start_trial_run(runtime.tracking, cfg, asdict(paths))


def _track_epoch(tracker: Any, metrics: dict[str, Any], scores: dict[str, np.ndarray] | None) -> None:
    if tracker is not None:
        tracker.log_epoch(metrics, scores)


def _end_tracking(tracker: Any) -> None:
    if tracker is not None:
        tracker.finish()
