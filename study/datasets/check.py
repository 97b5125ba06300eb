"""Check a data root before any GPU time is spent: the trainer's preflight, at VoxCeleb scale.

Parses the lists exactly as the trainer does, opens every audio file they name (and every noise and RIR file)
in parallel worker processes with a progress bar, and reports counts, durations, sample rates, unusable files
and train/test speaker overlap. Problems are errors when the run would stop or its numbers would be invalid:
a malformed list, any unusable trial, noise or RIR file (these are all loaded), more unusable training files
than `max_bad_files` allows, a training speaker or file that is also in the trials. Resampling and
wrap-padding are warnings.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from study.datasets.rirs import RIR_SECONDS_IN_BANK
from trainables.audio import AudioError, audio_info
from trainables.augment import AUDIO_SUFFIXES, MUSAN_SNR_DB
from trainables.config import TrainConfig
from trainables.manifest import ManifestError, read_train_manifest, read_trials, resolve, trial_files

CHUNK_FILES = 2000
"""Files per task handed to a worker process."""
SERIAL_BELOW = 4000
"""Fewer files than this are checked in this process (starting workers would cost more)."""
SHOWN = 10
"""Paths shown per kind of problem (all of them go to `--report`)."""


@dataclass
class Finding:
    """One kind of problem: a headline and every path (or line) concerned."""

    error: bool
    headline: str
    items: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """What `check_data` found; `ok` is False when training would fail or its results would be invalid."""

    summary: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.error for f in self.findings)

    def add(self, error: bool, headline: str, items: list[str] | None = None) -> None:
        self.findings.append(Finding(error, headline, list(items or [])))

    def format(self, shown: int = SHOWN) -> str:
        """Counts first, then each problem with its first `shown` paths."""
        errors = sum(f.error for f in self.findings)
        head = "check: ok" if self.ok else f"check: FAILED: {errors} problem(s) that stop training or invalidate its results"
        lines = [head, *self.summary]
        for finding in self.findings:
            lines.append(f"{'ERROR' if finding.error else 'warning'}: {finding.headline}")
            lines += [f"  {item}" for item in finding.items[:shown]]
            if len(finding.items) > shown:
                lines.append(f"  ... and {len(finding.items) - shown:,} more")
        return "\n".join(lines)

    def full_text(self) -> str:
        """Every finding with every path, for `--report`."""
        return self.format(shown=sys.maxsize) + "\n"


def _check_chunk(paths: list[str]) -> list[tuple[int, int, str]]:
    """(frames, rate, "") per readable file, (0, 0, reason) per unusable one."""
    results = []
    for path in paths:
        try:
            frames, rate = audio_info(path)
            results.append((frames, rate, ""))
        except AudioError as exc:
            results.append((0, 0, exc.reason))
    return results


def check_files(paths: list[str], workers: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Open every file: (frames, rates) int64 arrays aligned with `paths` (0 when unusable) and the reasons
    of the unusable ones by index. Runs in `workers` processes when there are many files."""
    frames = np.zeros(len(paths), dtype=np.int64)
    rates = np.zeros(len(paths), dtype=np.int64)
    errors: dict[int, str] = {}
    chunks = [(start, paths[start : start + CHUNK_FILES]) for start in range(0, len(paths), CHUNK_FILES)]
    bar = tqdm(total=len(paths), unit="file", desc="checking audio", disable=None if progress else True)

    def collect(start: int, results: list[tuple[int, int, str]]) -> None:
        for offset, (n, rate, reason) in enumerate(results):
            frames[start + offset], rates[start + offset] = n, rate
            if reason:
                errors[start + offset] = reason
        bar.update(len(results))

    if workers <= 1 or len(paths) < SERIAL_BELOW:
        for start, chunk in chunks:
            collect(start, _check_chunk(chunk))
    else:
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for (start, _), results in zip(chunks, pool.map(_check_chunk, [chunk for _, chunk in chunks])):
                collect(start, results)
    bar.close()
    return frames, rates, errors


def _audio_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.2f} h"


def _directories(name: str) -> list[str]:
    return [part for part in name.replace("\\", "/").split("/")[:-1] if part]


def check_data(
    data_root: str,
    cfg: TrainConfig,
    train: str = "",
    trials: str = "",
    noise_dir: str = "",
    rir_dir: str = "",
    workers: int = 0,
    progress: bool = True,
    allow_overlap: bool = False,
) -> CheckReport:
    """Check the lists and folders (each relative to `data_root` unless absolute; empty = not checked) as the
    trainer configured by `cfg` would read them; see the module docstring. `workers` 0 = one per CPU."""
    workers = workers or os.cpu_count() or 1
    report = CheckReport()
    root = str(Path(data_root).expanduser().resolve())
    utterances, trial_list = [], []
    train_path, trials_path = (resolve(root, train) if train else ""), (resolve(root, trials) if trials else "")
    if train_path:
        try:
            utterances = read_train_manifest(train_path, root)
        except ManifestError as exc:
            report.add(True, "malformed training list", [str(exc)])
        if cfg.max_utterances:
            utterances = utterances[: cfg.max_utterances]
    if trials_path:
        try:
            trial_list = read_trials(trials_path)
        except ManifestError as exc:
            report.add(True, "malformed trial list", [str(exc)])
    trial_names = trial_files(trial_list)
    train_paths = [u.path for u in utterances]
    trial_paths = [resolve(root, name) for name in trial_names]
    banks: dict[str, list[str]] = {}
    folders: dict[str, str] = {}
    for label, folder in (("noise", noise_dir), ("rir", rir_dir)):
        if folder:
            path = Path(resolve(root, folder))
            if not path.is_dir():
                report.add(True, f"{label} folder {path} does not exist")
                continue
            banks[label], folders[label] = _audio_files(path), str(path)
            if not banks[label]:
                report.add(True, f"{label} folder {path} has no {'/'.join(AUDIO_SUFFIXES)} files")

    paths = list(dict.fromkeys([*train_paths, *trial_paths, *banks.get("noise", []), *banks.get("rir", [])]))
    index = {path: i for i, path in enumerate(paths)}
    frames, rates, errors = check_files(paths, workers, progress)
    seconds = np.divide(frames, rates, out=np.zeros(len(paths)), where=rates > 0)

    if utterances:
        rows = np.fromiter((index[p] for p in train_paths), dtype=np.int64, count=len(train_paths))
        good = seconds[rows][rates[rows] > 0]
        speakers = {u.speaker for u in utterances if u.speaker is not None}
        spread = (f"; {good.min():.1f} s min, {np.median(good):.1f} s median, {good.max():.1f} s max" if good.size else "")
        report.summary.append(f"training list {train_path}: {len(utterances):,} utterances, {len(speakers):,} speakers, "
                              f"{_hours(good.sum())}{spread}")
        unusable = np.isin(rows, np.fromiter(errors, dtype=np.int64, count=len(errors)))
        if unusable.any():
            n_bad = int(unusable.sum())
            fraction = n_bad / len(train_paths)
            stops = n_bad == len(train_paths) or fraction > cfg.max_bad_files
            verdict = "the trainer refuses" if stops else "the trainer skips them"
            report.add(stops, f"{n_bad:,} of {len(train_paths):,} training files ({fraction:.2%}) are unusable; "
                              f"max_bad_files={cfg.max_bad_files:g}: {verdict}",
                       [f"{paths[i]}: {errors[i]}" for i in np.unique(rows[unusable])])
        distinct = np.unique(rows)
        short = distinct[(seconds[distinct] > 0) & (seconds[distinct] < 2 * cfg.crop_seconds)]
        if short.size:
            report.add(False, f"{short.size:,} training file(s) shorter than two {cfg.crop_seconds:g} s views will be "
                              "wrap-padded", [f"{paths[i]}: {seconds[i]:.2f} s" for i in short])
        duplicates = len(train_paths) - len(set(train_paths))
        if duplicates:
            report.add(False, f"{duplicates:,} duplicate path(s) in the training list {train_path}")
    if trial_list:
        targets = sum(t.label for t in trial_list)
        good = [seconds[index[p]] for p in trial_paths]
        report.summary.append(f"trial list {trials_path}: {len(trial_list):,} trials ({targets:,} target, "
                              f"{len(trial_list) - targets:,} non-target), {len(trial_names):,} files, {_hours(sum(good))}")
        bad = [f"{p}: {errors[index[p]]}" for p in trial_paths if index[p] in errors]
        if bad:
            report.add(True, f"{len(bad):,} trial file(s) are unusable: evaluation reads every one", bad)
    for label, files in banks.items():
        _summarise_bank(report, label, folders[label], files, index, seconds, errors, cfg)

    if paths:
        counts = np.unique(rates[rates > 0], return_counts=True)
        report.summary.append("sample rates: " + ", ".join(f"{r:,} Hz: {n:,} files" for r, n in zip(*counts)))
        other = [f"{paths[i]}: {rates[i]} Hz" for i in np.nonzero((rates > 0) & (rates != cfg.sample_rate))[0]]
        if other:
            report.add(False, f"{len(other):,} file(s) not at {cfg.sample_rate} Hz will be resampled on load", other)
    _overlap(report, utterances, trial_names, trial_paths, trials_path, allow_overlap)
    return report


def _summarise_bank(report: CheckReport, label: str, folder: str, files: list[str], index: dict[str, int],
                    seconds: np.ndarray, errors: dict[int, str], cfg: TrainConfig) -> None:
    if not files:
        return
    total = float(sum(seconds[index[f]] for f in files))
    if label == "noise":
        parts = []
        for category in MUSAN_SNR_DB:
            members = [f for f in files if f.startswith(f"{folder}/{category}/")]
            if members:
                parts.append(f"{category} {len(members):,} files, {_hours(sum(seconds[index[f]] for f in members))}")
            elif Path(folder, category).is_dir():
                report.add(True, f"noise category folder {folder}/{category} has no audio files: the trainer refuses it")
        bank = total * cfg.sample_rate * 4
        what = "; ".join(parts) or f"{len(files):,} files, {_hours(total)}"
    else:  # RirBank keeps at most 1.5 s of each and pads them all to the longest
        longest = min(RIR_SECONDS_IN_BANK, max(float(seconds[index[f]]) for f in files))
        bank = len(files) * longest * cfg.sample_rate * 4
        what = f"{len(files):,} files, {total / len(files):.2f} s mean"
    report.summary.append(f"{label} {folder}: {what}; the trainer holds it as {bank / 2**30:.2f} GiB float32 per device")
    bad = [f"{f}: {errors[index[f]]}" for f in files if index[f] in errors]
    if bad:
        report.add(True, f"{len(bad):,} {label} file(s) are unusable: the trainer loads every one", bad)


def _overlap(report: CheckReport, utterances: list, trial_names: list[str], trial_paths: list[str],
             trials_path: str, allow_overlap: bool) -> None:
    """Training speakers named by a folder of a trial path, and training files that are trial files."""
    if not utterances or not trial_names:
        return
    example: dict[str, str] = {}
    for name in trial_names:
        for part in _directories(name):
            example.setdefault(part, name)
    speakers = sorted({u.speaker for u in utterances if u.speaker is not None} & set(example))
    if speakers:
        report.add(not allow_overlap,
                   f"{len(speakers):,} training speaker(s) also appear in the trial list {trials_path} (as a folder "
                   "of a trial path): the EER would be measured on training speakers",
                   [f"{s}: e.g. {example[s]}" for s in speakers])
    shared = sorted({u.path for u in utterances} & set(trial_paths))
    if shared:
        report.add(not allow_overlap, f"{len(shared):,} training file(s) are also trial files", shared)
