"""Where a run's data is: the config's paths made absolute, or the embedded corpus when no data_root is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trainables.config import TrainConfig
from trainables.corpus import (CACHE_ENV, NOISE_DIR, RIR_DIR, TRAIN_MANIFEST, TRIALS, default_cache_dir,
                               ensure_embedded_corpus)
from trainables.dataset import DataError
from trainables.manifest import resolve


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
    """Paths from the config; with no data_root, the embedded corpus (generated once, cached). Raises
    FileNotFoundError for a data_root that is not a folder, DataError for a cache the corpus cannot be written to."""
    if not cfg.data_root:
        try:
            root = str(ensure_embedded_corpus(log=log))
        except OSError as exc:
            reason = exc.strerror or exc
            raise DataError(f"the embedded corpus cannot be generated in {default_cache_dir()} ({reason}): "
                            f"set {CACHE_ENV} to a writable folder, or give a data_root") from None
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
