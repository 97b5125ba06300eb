"""The parts of one training run, built from its config: the data it reads and what one optimiser step uses.

Only here (and in the loop) does a config become objects; the math modules take numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import soundfile as sf
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainables.augment import Augmenter, NoiseBank, RirBank
from trainables.config import TrainConfig
from trainables.data_paths import DataPaths
from trainables.check_record import load_or_check
from trainables.dataset import DataError, TwoViewDataset
from trainables.distributed import world
from trainables.encoders import build_encoder
from trainables.evaluation import TrialSet
from trainables.features import LogMel
from trainables.frameworks import MoCo, Projector, SimCLR
from trainables.loader import CheckedLoader, build_loader
from trainables.manifest import read_train_list
from trainables.sampler import BatchSampler


@dataclass
class DataParts:
    """What a run reads: the training utterances as batches of two views, and the trial list (rank 0)."""

    dataset: TwoViewDataset
    sampler: BatchSampler
    loader: CheckedLoader
    trial_set: TrialSet | None


@dataclass
class StepParts:
    """What one optimiser step uses."""

    cfg: TrainConfig
    device: torch.device
    augmenter: Augmenter
    frontend: LogMel
    model: nn.Module
    """The framework (SimCLR or MoCo): its state is the checkpoint's, its encoder is evaluated."""
    trained: nn.Module
    """What the step calls: `model`, wrapped in DDP when a process group exists."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    autocast_dtype: torch.dtype | None


@dataclass
class RunParts:
    data: DataParts
    step: StepParts


def build_parts(cfg: TrainConfig, paths: DataPaths, device: torch.device, log: Callable[[str], None]) -> RunParts:
    """Every part of a run, freshly initialised (the data first: a bad list fails before any model is built)."""
    check_augmentation_folders(cfg, paths)
    return RunParts(build_data(cfg, paths, device, log), build_step(cfg, paths, device))


def build_data(cfg: TrainConfig, paths: DataPaths, device: torch.device, log: Callable[[str], None]) -> DataParts:
    """The training set of this rank's share of each batch, its loader, and (rank 0) the decoded trial list.
    The files are checked once per data fingerprint and recorded (`trainables.check_record`)."""
    rank, world_size = world()
    files = read_train_list(paths.train_manifest, paths.data_root)
    if cfg.max_utterances:
        files = files.head(cfg.max_utterances)
    trial_set = TrialSet.load(paths.trials, paths.data_root, cfg.sample_rate) if (paths.trials and rank == 0) else None
    checks = load_or_check(files, paths.train_manifest, paths.data_root, cfg.max_bad_files, log, cfg.seed)
    dataset = TwoViewDataset(
        files,
        sample_rate=cfg.sample_rate,
        crop=cfg.crop_samples,
        seed=cfg.seed,
        preload=cfg.preload,
        preload_max_bytes=int(cfg.preload_max_gb * (1 << 30)),
        max_bad_fraction=cfg.max_bad_files,
        log=log,
        checks=checks,
    )
    try:
        sampler = BatchSampler(
            dataset.speaker_ids,
            cfg.batch_size,
            cfg.seed,
            prevent_class_collisions=cfg.prevent_class_collisions,
            max_utterances_per_speaker=cfg.max_utterances_per_speaker,
            rank=rank,
            world_size=world_size,
        )
    except ValueError as exc:  # too few (usable or labelled) utterances for the config's batches
        raise DataError(f"training list {paths.train_manifest}: {exc}") from None
    loader = build_loader(dataset, sampler, cfg.loader_workers, device)
    if loader.num_workers:
        log(f"reading training audio in {loader.num_workers} loader worker(s)")
    return DataParts(dataset, sampler, loader, trial_set)


def build_step(cfg: TrainConfig, paths: DataPaths, device: torch.device) -> StepParts:
    """Augmenter, front end, framework (DDP-wrapped when distributed), Adam and its step decay."""
    augmenter = build_augmenter(cfg, paths)
    frontend = LogMel(cfg.sample_rate, cfg.n_mels, cfg.mel_window).to(device)
    model = build_framework(cfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_epochs, gamma=cfg.lr_decay)
    autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
    return StepParts(cfg, device, augmenter, frontend, model, wrap_distributed(model, device), optimizer, scheduler,
                     autocast_dtype)


def check_augmentation_folders(cfg: TrainConfig, paths: DataPaths) -> None:
    """Refuse, before anything loads, an augmentation probability above 0 without its folder, and a folder given
    that is not one."""
    folders = (("noise_prob", cfg.noise_prob, paths.noise_dir, "noise_dir", "--noise"),
               ("reverb_prob", cfg.reverb_prob, paths.rir_dir, "rir_dir", "--rir"))
    for key, probability, folder, field, flag in folders:
        if probability > 0 and not folder:
            raise DataError(f"{key}={probability:g} needs a folder: give {field} ({flag} DIR), or set {key}=0")
        if folder and not os.path.isdir(folder):
            raise DataError(f"{field} ({flag}) {folder} is not a folder")


def build_augmenter(cfg: TrainConfig, paths: DataPaths) -> Augmenter:
    """Additive noise and reverberation from the run's folders (a folder may be absent when its probability is 0).
    The banks stay on the host, mapped from one int16 file per node; each step moves its crops to the waves'
    device."""
    return Augmenter(
        _bank(NoiseBank, paths.noise_dir, cfg.sample_rate),
        _bank(RirBank, paths.rir_dir, cfg.sample_rate),
        noise_prob=cfg.noise_prob,
        reverb_prob=cfg.reverb_prob,
    )


def _bank(kind: type[NoiseBank] | type[RirBank], folder: str, sample_rate: int) -> NoiseBank | RirBank | None:
    """The bank of one augmentation folder (None without one), from the node's bank file (built once per node
    under the cache folder); a folder or file it cannot load, or a cache it cannot write, is a DataError."""
    if not folder:
        return None
    try:
        return kind.from_dir(folder, sample_rate)
    except ValueError as exc:  # names the folder, (AudioError) the file, or (BankFileError) the cache file
        raise DataError(str(exc)) from None
    except sf.LibsndfileError as exc:  # names the file
        raise DataError(f"{'noise' if kind is NoiseBank else 'RIR'} folder {folder}: {exc}") from None


def build_framework(cfg: TrainConfig) -> nn.Module:
    """The SimCLR or MoCo module the config describes (weights initialised from the config's seed)."""
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.encoder, cfg.n_mels, cfg.embedding_dim)
    projector = Projector(cfg.embedding_dim, cfg.projector_hidden_dim, cfg.projector_dim) if cfg.projector else None
    loss_dim = cfg.projector_dim if cfg.projector else cfg.embedding_dim
    if cfg.framework == "moco":
        return MoCo(encoder, cfg.queue_size, cfg.momentum, loss_dim, projector)
    return SimCLR(encoder, projector, cfg.symmetric)


def wrap_distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around the framework when a process group exists (set up by the caller, e.g. Ray Train)."""
    _, world_size = world()
    if world_size == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    # The MoCo queues are identical on every rank (they enqueue all-gathered keys): no buffer broadcast.
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
