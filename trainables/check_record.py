"""Check once, train many: what opening every file of a training list found, recorded in the cache against a
fingerprint of the data, so later trials on the same data start without reopening every file.

The fingerprint is sha256 over a format version, the resolved data root and the manifest's bytes: the rows
(names, speakers) are a function of the bytes and the paths of the root, so equal fingerprints mean the same
files in the same order. The target sample rate is left out on purpose: the record holds each file's own
frames and rate, valid for any training rate. Files that change on disk after the check are not seen by the
fingerprint; a trial therefore reopens a random sample of files at start (refusing a list that has clearly
become unusable) and counts files that break while training (`TwoViewDataset`).

A record is one .npz in `default_cache_dir()/checks/` (arrays aligned with the list's distinct names; written
to a temporary file, then renamed), so concurrent trials never read a half-written record.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from trainables.corpus import default_cache_dir
from trainables.dataset import DataError
from trainables.file_checks import OPEN_THREADS, FileChecks, open_files
from trainables.manifest import TrainList

FORMAT = 1
PROBE_ROWS = 256
"""Rows whose files a trial reopens at start when a record exists."""
PROBE_Z = 3.0
"""A probe refuses when the bad fraction's lower Wilson bound at this many sigmas exceeds max_bad_files."""


def fingerprint(manifest: str | os.PathLike, data_root: str | os.PathLike, tag: str = f"check record v{FORMAT}") -> str:
    """sha256 (hex) of `tag` (what is recorded, with its format version; the default is this module's record),
    the resolved data root and the manifest's bytes."""
    digest = hashlib.sha256(f"margin-study {tag}\0{Path(data_root).resolve()}\0".encode())
    with open(manifest, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def record_path(key: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the record of fingerprint `key` is kept."""
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "checks" / f"{key}.npz"


def save_record(path: Path, checks: FileChecks, info: dict) -> None:
    """Write `checks` (and `info`, JSON) to `path` atomically (`atomic_file`)."""
    bad = np.fromiter(checks.reasons, dtype=np.int64, count=len(checks.reasons))
    reasons = json.dumps([checks.reasons[int(i)] for i in bad]).encode()
    meta = json.dumps({**info, "format": FORMAT, "written": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
    with atomic_file(path) as f:
        np.savez(f, frames=checks.frames, rates=checks.rates, bad=bad,
                 reasons=np.frombuffer(reasons, dtype=np.uint8), meta=np.frombuffer(meta, dtype=np.uint8))


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content to: a temporary file in the same folder (created with it),
    renamed onto `path` when the block ends without error and removed otherwise, so a reader never sees a
    half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_record(path: Path, files: int) -> tuple[FileChecks, dict] | None:
    """The record at `path` and its info, or None when there is none, it is unreadable or it does not hold
    `files` distinct files."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes())
            frames, rates, bad = data["frames"], data["rates"], data["bad"]
            reasons = json.loads(data["reasons"].tobytes())
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if meta.get("format") != FORMAT or frames.shape != (files,) or rates.shape != (files,) or len(reasons) != len(bad):
        return None
    return FileChecks(frames.astype(np.int64), rates.astype(np.int64), dict(zip(bad.tolist(), reasons))), meta


def record_checks(manifest: str, data_root: str, files: TrainList, checks: FileChecks,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """Record `checks` of the whole list `files` read from `manifest` (merged into the existing record)."""
    path = record_path(fingerprint(manifest, data_root), cache_dir)
    old = load_record(path, len(files.names))
    if old is not None:
        fresh = checks.checked
        merged, _ = old
        merged.frames[fresh], merged.rates[fresh] = checks.frames[fresh], checks.rates[fresh]
        merged.reasons = {**{i: r for i, r in merged.reasons.items() if not fresh[i]}, **checks.reasons}
        checks = merged
    save_record(path, checks, {"manifest": str(manifest), "data_root": str(Path(data_root).resolve()),
                               "rows": len(files), "files": len(files.names)})
    return path


def load_or_check(files: TrainList, manifest: str, data_root: str, max_bad_fraction: float, log: Callable[[str], object],
                  seed: int = 0, cache_dir: str | os.PathLike | None = None, probe_rows: int = PROBE_ROWS,
                  threads: int = OPEN_THREADS) -> FileChecks:
    """What the files of `files` (the list read from `manifest`, or its first rows) hold: from the record when
    one covers them (after reopening a sample, `probe`), else by opening each distinct file once and recording
    it. A cache that cannot be written only costs the next trial the same check."""
    path = record_path(fingerprint(manifest, data_root), cache_dir)
    found = load_record(path, len(files.names))
    used = np.unique(files.file_of_row)
    if found is not None and found[0].checked[used].all():
        checks, meta = found
        source = f"the check of {meta.get('written', '?')} ({path})"
        probe(files, checks, max_bad_fraction, log, seed, source, probe_rows, threads)
        log(f"training files as recorded by {source}; a sample of them reopened")
        return checks
    checks = found[0] if found is not None else FileChecks.unchecked(len(files.names))
    todo = used[~checks.checked[used]]
    started = time.perf_counter()
    checks.fill(files, todo, threads)
    try:
        path = record_checks(manifest, data_root, files, checks, cache_dir)
        where = f"recorded in {path}"
    except OSError as exc:
        where = f"not recorded ({exc})"
    log(f"checked {len(todo):,} training files in {time.perf_counter() - started:.1f} s; {where}")
    return checks


def probe(files: TrainList, checks: FileChecks, max_bad_fraction: float, log: Callable[[str], object], seed: int,
          source: str, rows: int = PROBE_ROWS, threads: int = OPEN_THREADS) -> None:
    """Reopen the files of `rows` random rows (all used files when there are no more) and update `checks`;
    raise DataError when the sample shows the bad fraction clearly above max_bad_fraction."""
    used = np.unique(files.file_of_row)
    if used.shape[0] <= rows:
        sample_rows = np.arange(len(files))
        picked = used
    else:
        sample_rows = np.random.default_rng([seed, len(files)]).integers(len(files), size=rows)
        picked = np.unique(files.file_of_row[sample_rows])
    paths = [files.paths[f] for f in picked.tolist()]
    changed = []
    for f, result in zip(picked.tolist(), open_files(paths, threads)):
        was = (int(checks.frames[f]), int(checks.rates[f])) if f not in checks.reasons else checks.reasons[f]
        if was != (result if not isinstance(result, Exception) else result.reason):
            changed.append(f"{files.paths[f]}: {result.reason if isinstance(result, Exception) else 'changed'}")
        checks.set(f, result)
    bad = checks.bad[files.file_of_row[sample_rows]]  # (sampled rows,)
    n, k = bad.shape[0], int(bad.sum())
    if changed:
        log(f"{len(changed)} of {len(paths)} training files reopened at start differ from {source}: {changed[0]}")
    if k and (k == n or _lower_bound(k, n) > max_bad_fraction):
        shown = "; ".join(f"{files.paths[f]}: {checks.reasons[f]}" for f in picked.tolist() if f in checks.reasons)
        raise DataError(f"{k} of {n} training rows sampled at start ({k / n:.0%}) are unreadable, clearly more "
                        f"than max_bad_files={max_bad_fraction:g} allows (--set max_bad_files=F to skip more; "
                        f"files checked by {source}): {shown[:1000]}")


def _lower_bound(k: int, n: int, z: float = PROBE_Z) -> float:
    """Wilson score lower bound of a proportion k/n at z sigmas."""
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)
