"""Floors: what a trial list gives without learning, so a run's EER can be read against it.

- **Trivial statistic**: each utterance as the mean and standard deviation over its frames of the run's log-mel
  band energies (`LogMel.log_energies`, before the per-utterance normalisation), concatenated (2 x n_mels),
  z-scored per dimension over the list's utterances and L2-normalised; a trial's score is the cosine. On
  speechocean762 it gives 13.3 % / 15.1 % EER on trials_dev / trials_dev_hard with the Hamming front end (12.9 % /
  15.1 % with Hann, the data README's figures): one recording session per speaker, so channel statistics alone
  separate speakers.
- **Untrained encoder**: the run's encoder as `build_framework` initialises it, from the fixed seed
  `FLOOR_SEED` (not the run's seed: one floor per trial list and protocol), evaluated exactly as the run is
  (`evaluate` with its eval_mode, segments and precision).

Both are computed once per trial list and protocol and kept as a small JSON file in
`default_cache_dir()/floors/<key>.json`, key = sha256 over a format version, the resolved data root, the trial
list's bytes, every config field the floors depend on (`FLOOR_FIELDS`) and the floor seed (the fingerprint of
`trainables.check_record`). The device is left out (CPU and GPU numerics differ in the last digits only), so is
channels_last (a memory layout). A damaged or foreign file is recomputed and replaced, never trusted; a cache that
cannot be written only costs the next run the same computation.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainables.check_record import atomic_file, fingerprint
from trainables.config import TrainConfig
from trainables.corpus import default_cache_dir
from trainables.evaluation import TrialSet, evaluate, score_trials
from trainables.features import LogMel
from trainables.metrics import FLOOR_METRICS, verification_metrics
from trainables.parts import build_framework

FORMAT = 1
FLOOR_SEED = 0
"""Seed of the untrained encoder's initialisation: a constant, so every run on a list shares its floor."""
FLOOR_FIELDS = ("sample_rate", "n_mels", "mel_window", "encoder", "embedding_dim", "eval_mode", "eval_segments",
                "eval_segment_seconds", "precision")
"""The config fields the floors depend on (the front end, the encoder, the evaluation protocol)."""


@torch.no_grad()
def trivial_vectors(waves: list[np.ndarray], frontend: LogMel) -> torch.Tensor:
    """(U, 2 * n_mels) float64 on the CPU: per utterance (int16 audio) the mean and the standard deviation (over
    frames, population) of its log-mel band energies, z-scored per dimension over the U utterances (a constant
    dimension is only centred), L2-normalised."""
    device = next(frontend.buffers()).device
    rows = []
    for wave in waves:
        x = torch.from_numpy(wave.astype(np.float32) / 32768.0).to(device)[None]  # (1, T)
        energies = frontend.log_energies(x)[0].double()  # (n_mels, frames)
        rows.append(torch.cat([energies.mean(dim=1), energies.std(dim=1, correction=0)]).cpu())  # (2 n_mels,)
    stats = torch.stack(rows)  # (U, 2 n_mels)
    spread = stats.std(dim=0, correction=0)  # (2 n_mels,)
    z = (stats - stats.mean(dim=0)) / torch.where(spread > 0, spread, torch.ones_like(spread))
    return torch.nn.functional.normalize(z, dim=1)


def trivial_floor(trial_set: TrialSet, frontend: LogMel) -> dict[str, float]:
    """{'eer' (%), 'min_dcf'} of the trivial statistic's cosine on the trial list."""
    scores = score_trials(trivial_vectors(trial_set.waves, frontend), trial_set.enrol_index, trial_set.test_index)
    return verification_metrics(scores, trial_set.labels)


def untrained_floor(trial_set: TrialSet, frontend: LogMel, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """{'eer' (%), 'min_dcf'} of the config's encoder initialised from FLOOR_SEED, evaluated with the config's
    protocol. The caller's random number generators are left as they were."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        encoder = build_framework(cfg.replace(seed=FLOOR_SEED, framework="simclr", projector=False)).encoder
    encoder = encoder.to(device)
    autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
    result = evaluate(trial_set, frontend, encoder, device, cfg.eval_mode, cfg.eval_segment_samples,
                      cfg.eval_segments, autocast_dtype)
    return {"eer": result["eer"], "min_dcf": result["min_dcf"]}


def floor_key(trials_path: str | os.PathLike, data_root: str | os.PathLike, cfg: TrainConfig) -> str:
    """The cache key of the floors of `cfg` on the trial list (sha256, hex)."""
    settings = json.dumps({**{name: getattr(cfg, name) for name in FLOOR_FIELDS}, "floor_seed": FLOOR_SEED},
                          sort_keys=True)
    return fingerprint(trials_path, data_root, f"floors v{FORMAT}\0{settings}")


def floors_path(key: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the floors of `key` are kept."""
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "floors" / f"{key}.json"


def load_floors(path: Path) -> dict[str, float] | None:
    """The floors recorded at `path`, or None when there is no file or it is not a complete record of this format."""
    try:
        record = json.loads(path.read_text())
        floors = {name: float(record["floors"][name]) for name in FLOOR_METRICS}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if record.get("format") != FORMAT or not all(math.isfinite(v) for v in floors.values()):
        return None
    return floors


def trial_floors(trial_set: TrialSet, trials_path: str, data_root: str, cfg: TrainConfig, device: torch.device,
                 cache_dir: str | os.PathLike | None = None, frontend: LogMel | None = None,
                 log: Callable[[str], object] | None = None) -> dict[str, float]:
    """The four floors (`FLOOR_METRICS`; EER in % as the run's `eer`) of `cfg` on `trial_set` (read from
    `trials_path` under `data_root`): from the cache when it holds them, else computed and cached. `frontend`:
    the run's front end (default: built from `cfg` on `device`); `log` gets one line saying which and where."""
    path = floors_path(floor_key(trials_path, data_root, cfg), cache_dir)
    floors = load_floors(path)
    source = "cached"
    if floors is None:
        started = time.perf_counter()
        frontend = frontend if frontend is not None else LogMel(cfg.sample_rate, cfg.n_mels, cfg.mel_window).to(device)
        trivial, untrained = trivial_floor(trial_set, frontend), untrained_floor(trial_set, frontend, cfg, device)
        floors = {"floor_trivial_eer": trivial["eer"], "floor_trivial_min_dcf": trivial["min_dcf"],
                  "floor_untrained_eer": untrained["eer"], "floor_untrained_min_dcf": untrained["min_dcf"]}
        seconds = time.perf_counter() - started
        try:
            save_floors(path, floors, trials_path, data_root, cfg, seconds)
            source = f"computed in {seconds:.1f} s, cached in {path}"
        except OSError as exc:
            source = f"computed in {seconds:.1f} s, not cached ({exc})"
    if log is not None:
        log(f"floors on {Path(trials_path).name}: trivial statistic {floors['floor_trivial_eer']:.1f} % EER, "
            f"untrained encoder {floors['floor_untrained_eer']:.1f} % ({source})")
    return floors


def save_floors(path: Path, floors: dict[str, float], trials_path: str, data_root: str, cfg: TrainConfig,
                seconds: float) -> None:
    """Write the floors with what they were computed from (for a reader of the file), atomically."""
    record = {"format": FORMAT, "floors": floors, "trials": str(trials_path), "data_root": str(Path(data_root).resolve()),
              "config": {name: getattr(cfg, name) for name in FLOOR_FIELDS}, "floor_seed": FLOOR_SEED,
              "seconds": round(seconds, 3), "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    with atomic_file(path) as f:
        f.write(json.dumps(record, indent=1).encode())
