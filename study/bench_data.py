"""Speed figures of the training-data side: loader throughput by worker count, trial start-up on a big list.

Both build a large training list from the real files of a data root (its train.csv rows repeated) in a
temporary folder, with the check records in a temporary cache, and time the run's own builders
(`trainables.parts.build_data`). Each function returns a dict of JSON figures, each beside its baseline
measured in the same call.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from trainables.audio import AudioError, audio_info
from trainables.check_record import load_or_check
from trainables.config import TrainConfig
from trainables.corpus import CACHE_ENV
from trainables.data_paths import DataPaths
from trainables.dataset import TwoViewDataset
from trainables.loader import available_cpus, build_loader
from trainables.manifest import read_train_list, read_train_manifest
from trainables.parts import build_data
from trainables.sampler import BatchSampler

def _silent(*_) -> None:
    pass


@contextlib.contextmanager
def _big_list(root: Path, rows: int, train: str = "train.csv") -> Iterator[DataPaths]:
    """A `rows`-row training list repeating the rows of `root`/`train` (a `File,Speaker` list), in a temporary
    folder that also holds the check-record cache ($MARGIN_STUDY_CACHE set for the duration)."""
    root = Path(root)
    body = (root / train).read_text().splitlines()[1:]
    old_cache = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        manifest = Path(tmp) / "train.csv"
        manifest.write_text("File,Speaker\n" + "\n".join(body[i % len(body)] for i in range(rows)) + "\n")
        os.environ[CACHE_ENV] = str(Path(tmp) / "cache")
        try:
            yield DataPaths(data_root=str(root), train_manifest=str(manifest), trials="", noise_dir="", rir_dir="",
                            embedded=False)
        finally:
            if old_cache is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = old_cache


def _config(batch: int, workers: int, preload: bool) -> TrainConfig:
    return TrainConfig.from_dict({"batch_size": batch, "loader_workers": workers, "preload": preload,
                                  "noise_prob": 0.0, "reverb_prob": 0.0})


def bench_loader_workers(root: Path, rows: int = 20_000, workers: tuple[int, ...] = (0, 1, 2),
                         batches: int = 20, batch: int = 64) -> dict:
    """Utterances/s through the run's loader reading on demand (not preloaded), for each worker count; the
    first batch (worker start-up) is timed apart. Baseline: 0 workers (reads in the training process)."""
    out: dict = {"loader_rows": rows, "loader_batch": batch, "loader_cpus": available_cpus()}
    with _big_list(root, rows) as paths:
        for count in workers:
            data = build_data(_config(batch, count, preload=False), paths, torch.device("cpu"), _silent)
            delivered, epoch = 0, 0
            started = time.perf_counter()
            first = None
            while delivered < (batches + 1) * batch:
                data.sampler.set_epoch(epoch)
                data.dataset.set_epoch(epoch)
                for views in data.loader:
                    if first is None:
                        first = time.perf_counter()
                    delivered += views.shape[0]
                    if delivered >= (batches + 1) * batch:
                        break
                epoch += 1
            seconds = time.perf_counter() - first
            out[f"loader_utt_per_s_workers{count}"] = (delivered - batch) / seconds
            out[f"loader_first_batch_s_workers{count}"] = first - started
            del data
    return out


def _old_opens(paths: list[str], threads: int = 16) -> float:
    """Seconds the old constructor spent: `audio_info` on every row, 16 threads."""
    def info(path: str):
        try:
            return audio_info(path)
        except AudioError as exc:
            return exc

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(info, paths))
    return time.perf_counter() - started


def bench_startup(root: Path, rows: int = 1_000_000, old_rows: int = 20_000, batch: int = 200) -> dict:
    """Seconds from `build_data` to the first batch on a `rows`-row list (check record present, read on demand,
    0 workers so the first batch is not a worker start-up), with its parts; the one-off check that writes the
    record; and the old path (every row parsed into an Utterance and opened), whose opens are timed on
    `old_rows` rows and scaled to `rows`."""
    cpu = torch.device("cpu")
    out: dict = {"startup_rows": rows}
    with _big_list(root, rows) as paths:
        cfg = _config(batch, 0, preload=False)
        started = time.perf_counter()
        utterances = read_train_manifest(paths.train_manifest, paths.data_root)
        out["old_parse_utterances_s"] = time.perf_counter() - started
        opens = _old_opens([u.path for u in utterances[:old_rows]])
        del utterances
        out[f"old_open_every_row_s_extrapolated_from_{old_rows}_rows"] = opens * rows / old_rows
        out[f"old_startup_s_extrapolated_from_{old_rows}_rows"] = out["old_parse_utterances_s"] + opens * rows / old_rows

        started = time.perf_counter()
        files = read_train_list(paths.train_manifest, paths.data_root)
        out["parse_s"] = time.perf_counter() - started
        started = time.perf_counter()
        load_or_check(files, paths.train_manifest, paths.data_root, cfg.max_bad_files, _silent, cfg.seed)
        out["check_once_s"] = time.perf_counter() - started
        out["check_once_includes_parse_s"] = False

        started = time.perf_counter()
        checks = load_or_check(files, paths.train_manifest, paths.data_root, cfg.max_bad_files, _silent, cfg.seed)
        out["record_load_and_probe_s"] = time.perf_counter() - started
        started = time.perf_counter()
        dataset = TwoViewDataset(files, cfg.sample_rate, cfg.crop_samples, cfg.seed, preload=False,
                                 max_bad_fraction=cfg.max_bad_files, log=_silent, checks=checks)
        out["dataset_s"] = time.perf_counter() - started
        started = time.perf_counter()
        sampler = BatchSampler(dataset.speaker_ids, batch, cfg.seed)
        len(sampler)  # the epoch's plan
        out["sampler_s"] = time.perf_counter() - started
        started = time.perf_counter()
        next(iter(build_loader(dataset, sampler, 0, cpu)))
        out["first_batch_s"] = time.perf_counter() - started
        del dataset, sampler, checks, files

        started = time.perf_counter()
        data = build_data(cfg, paths, cpu, _silent)
        data.sampler.set_epoch(0)
        data.dataset.set_epoch(0)
        next(iter(data.loader))
        out["startup_s_with_record"] = time.perf_counter() - started
    return out
