"""Check the data of a run before any GPU time is spent: `study.prepare check` and `study.train --preflight`.

Parses the lists exactly as the trainer does, opens every audio file they name (and every noise and RIR file;
in parallel worker processes when there are many) with a progress bar, and reports counts, durations, sample
rates, unusable files and train/test speaker overlap. Problems are errors when the run would stop or its
numbers would be invalid: a malformed list, any unusable trial, noise or RIR file (these are all loaded), more
unusable training files than `max_bad_files` allows, too few usable utterances (or speakers) for one batch, a
training speaker or file that is also in the trials (unless overlap is allowed). Resampling and wrap-padding are
warnings. What the training files hold is recorded for the trials (`trainables.check_record`): trials on the same
list and root then start without reopening every file.
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

from study.datasets.check_report import CheckReport
from study.datasets.rirs import RIR_SECONDS_IN_BANK
from trainables.audio import AUDIO_SUFFIXES, AudioError, audio_files, audio_info
from trainables.augment import MUSAN_SNR_DB
from trainables.bank_file import BYTES_PER_SAMPLE
from trainables.config import TrainConfig
from trainables.check_record import record_checks
from trainables.corpus import CACHE_ENV
from trainables.file_checks import FileChecks
from trainables.manifest import (ManifestError, TrainList, Trial, Utterance, read_train_list, read_trials, resolve,
                                 trial_files)
from trainables.sampler import BatchSampler

CHUNK_FILES = 2000
"""Files per task handed to a worker process."""
SERIAL_BELOW = 4000
"""Fewer files than this are checked in this process (starting workers would cost more)."""


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


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.2f} h"


def _directories(name: str) -> list[str]:
    return [part for part in name.replace("\\", "/").split("/")[:-1] if part]


@dataclass
class _Lists:
    """The training and trial lists as read (empty when not given or malformed), paths resolved."""

    train_path: str = ""
    trials_path: str = ""
    utterances: list[Utterance] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    train_list: TrainList | None = None
    """The training list as the trainer holds it (None when not given or malformed)."""

    @property
    def train_paths(self) -> list[str]:
        return [u.path for u in self.utterances]

    @property
    def trial_names(self) -> list[str]:
        return trial_files(self.trials)


@dataclass
class _Bank:
    """A noise or RIR folder and the audio files in it."""

    label: str
    folder: str
    files: list[str]


@dataclass
class _Opened:
    """Every file checked: `frames`, `rates` and `seconds` aligned with `paths` (0 when unusable), the reasons
    of the unusable ones by index."""

    paths: list[str]
    frames: np.ndarray
    rates: np.ndarray
    errors: dict[int, str]
    index: dict[str, int] = field(init=False)
    seconds: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.index = {path: i for i, path in enumerate(self.paths)}
        self.seconds = np.divide(self.frames, self.rates, out=np.zeros(len(self.paths)), where=self.rates > 0)

    def unusable(self, paths: list[str]) -> list[str]:
        """Each unusable file among `paths`, as "path: reason"."""
        return [f"{p}: {self.errors[self.index[p]]}" for p in paths if self.index[p] in self.errors]


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
    report = CheckReport()
    root = str(Path(data_root).expanduser().resolve())
    lists = _read_lists(report, root, train, trials, cfg.max_utterances)
    banks = _find_banks(report, root, noise_dir, rir_dir)
    trial_paths = [resolve(root, name) for name in lists.trial_names]
    paths = list(dict.fromkeys([*lists.train_paths, *trial_paths, *(f for bank in banks for f in bank.files)]))
    opened = _Opened(paths, *check_files(paths, workers or os.cpu_count() or 1, progress))
    report.files_checked = len(paths)
    _check_training(report, lists, opened, cfg)
    _check_trials(report, lists, trial_paths, opened)
    for bank in banks:
        _summarise_bank(report, bank, opened, cfg)
    _check_rates(report, opened, cfg.sample_rate)
    _overlap(report, lists, trial_paths, allow_overlap)
    _record(report, lists, root, opened)
    return report


def _record(report: CheckReport, lists: _Lists, root: str, opened: _Opened) -> None:
    """Record what the training files hold for the trials on this data (`trainables.check_record`), so they
    start without reopening every file; a cache that cannot be written is a warning."""
    files = lists.train_list
    if files is None:
        return
    checks = FileChecks.unchecked(len(files.names))
    for f in np.unique(files.file_of_row).tolist():
        i = opened.index[files.paths[f]]
        if i in opened.errors:
            checks.reasons[f] = opened.errors[i]
        else:
            checks.frames[f], checks.rates[f] = opened.frames[i], opened.rates[i]
    try:
        path = record_checks(lists.train_path, root, files, checks)
    except OSError as exc:
        report.add(False, f"the check of the training files could not be recorded ({exc}): each trial will "
                          f"check them again; set {CACHE_ENV} to a writable folder")
        return
    report.summary.append(f"training files recorded for the trials: {path}")


def _read_lists(report: CheckReport, root: str, train: str, trials: str, max_utterances: int) -> _Lists:
    """Parse the lists as the trainer does (its first `max_utterances` utterances, 0 = all); a malformed list is
    an error finding."""
    lists = _Lists(resolve(root, train) if train else "", resolve(root, trials) if trials else "")
    if lists.train_path:
        try:
            lists.train_list = read_train_list(lists.train_path, root)
        except ManifestError as exc:
            report.add(True, "malformed training list", [str(exc)])
        if lists.train_list is not None and max_utterances:
            lists.train_list = lists.train_list.head(max_utterances)
        lists.utterances = lists.train_list.utterances() if lists.train_list is not None else []
    if lists.trials_path:
        try:
            lists.trials = read_trials(lists.trials_path)
        except ManifestError as exc:
            report.add(True, "malformed trial list", [str(exc)])
    report.utterances = len(lists.utterances)
    report.speakers = len({u.speaker for u in lists.utterances if u.speaker is not None})
    report.trials = len(lists.trials)
    return lists


def _find_banks(report: CheckReport, root: str, noise_dir: str, rir_dir: str) -> list[_Bank]:
    """The noise and RIR folders given, with their audio files; a missing or empty folder is an error."""
    banks = []
    for label, folder in (("noise", noise_dir), ("rir", rir_dir)):
        if not folder:
            continue
        path = Path(resolve(root, folder))
        if not path.is_dir():
            report.add(True, f"{label} folder {path} does not exist")
            continue
        banks.append(_Bank(label, str(path), [str(f) for f in audio_files(path)]))
        if not banks[-1].files:
            report.add(True, f"{label} folder {path} has no {'/'.join(AUDIO_SUFFIXES)} files")
    return banks


def _check_training(report: CheckReport, lists: _Lists, opened: _Opened, cfg: TrainConfig) -> None:
    """Counts and durations of the training list; unusable files (an error when the trainer would refuse them),
    files too short for two crops, duplicate entries."""
    train_paths = lists.train_paths
    if not train_paths:
        return
    rows = np.fromiter((opened.index[p] for p in train_paths), dtype=np.int64, count=len(train_paths))
    good = opened.seconds[rows][opened.rates[rows] > 0]
    report.train_hours = float(good.sum()) / 3600
    spread = (f"; {good.min():.1f} s min, {np.median(good):.1f} s median, {good.max():.1f} s max" if good.size else "")
    report.summary.append(f"training list {lists.train_path}: {report.utterances:,} utterances, "
                          f"{report.speakers:,} speakers, {_hours(good.sum())}{spread}")
    unusable = np.isin(rows, np.fromiter(opened.errors, dtype=np.int64, count=len(opened.errors)))
    _check_batches(report, lists, unusable, cfg)
    if unusable.any():
        n_bad = int(unusable.sum())
        fraction = n_bad / len(train_paths)
        stops = n_bad == len(train_paths) or fraction > cfg.max_bad_files
        verdict = "the trainer refuses" if stops else "the trainer skips them"
        report.add(stops, f"{n_bad:,} of {len(train_paths):,} training files ({fraction:.2%}) are unusable; "
                          f"max_bad_files={cfg.max_bad_files:g}: {verdict}",
                   [f"{opened.paths[i]}: {opened.errors[i]}" for i in np.unique(rows[unusable])])
    distinct = np.unique(rows)
    seconds = opened.seconds
    short = distinct[(seconds[distinct] > 0) & (seconds[distinct] < 2 * cfg.crop_seconds)]
    if short.size:
        report.add(False, f"{short.size:,} training file(s) shorter than two {cfg.crop_seconds:g} s views will be "
                          "wrap-padded", [f"{opened.paths[i]}: {seconds[i]:.2f} s" for i in short])
    duplicates = len(train_paths) - len(set(train_paths))
    if duplicates:
        report.add(False, f"{duplicates:,} duplicate path(s) in the training list {lists.train_path}")


def _check_batches(report: CheckReport, lists: _Lists, unusable: np.ndarray, cfg: TrainConfig) -> None:
    """The trainer's own batch sampler over the usable utterances: too few of them (or of their speakers) for one
    batch is an error."""
    speakers = [lists.utterances[i].speaker for i in np.flatnonzero(~unusable)]
    try:
        BatchSampler(speakers, cfg.batch_size, cfg.seed, cfg.prevent_class_collisions, cfg.max_utterances_per_speaker)
    except ValueError as exc:
        report.add(True, f"training list {lists.train_path}: {exc}: the trainer refuses")


def _check_trials(report: CheckReport, lists: _Lists, trial_paths: list[str], opened: _Opened) -> None:
    """Counts and duration of the trial list; any unusable trial file is an error."""
    if not lists.trials:
        return
    targets = sum(t.label for t in lists.trials)
    total = sum(opened.seconds[opened.index[p]] for p in trial_paths)
    report.trial_hours = float(total) / 3600
    report.summary.append(f"trial list {lists.trials_path}: {len(lists.trials):,} trials ({targets:,} target, "
                          f"{len(lists.trials) - targets:,} non-target), {len(trial_paths):,} files, {_hours(total)}")
    bad = opened.unusable(trial_paths)
    if bad:
        report.add(True, f"{len(bad):,} trial file(s) are unusable: evaluation reads every one", bad)


def _check_rates(report: CheckReport, opened: _Opened, sample_rate: int) -> None:
    """The sample rates found; files at another rate than the trainer's are resampled on load."""
    if not opened.paths:
        return
    rates = opened.rates
    counts = np.unique(rates[rates > 0], return_counts=True)
    report.summary.append("sample rates: " + ", ".join(f"{r:,} Hz: {n:,} files" for r, n in zip(*counts)))
    other = [f"{opened.paths[i]}: {rates[i]} Hz" for i in np.nonzero((rates > 0) & (rates != sample_rate))[0]]
    if other:
        report.add(False, f"{len(other):,} file(s) not at {sample_rate} Hz will be resampled on load", other)


def _summarise_bank(report: CheckReport, bank: _Bank, opened: _Opened, cfg: TrainConfig) -> None:
    """Files and durations of a noise (per MUSAN category) or RIR folder, the memory the trainer's bank takes;
    any unusable file, or an empty category folder, is an error."""
    if not bank.files:
        return
    seconds = {f: float(opened.seconds[opened.index[f]]) for f in bank.files}
    total = sum(seconds.values())
    if bank.label == "noise":
        parts = []
        for category in MUSAN_SNR_DB:
            members = [f for f in bank.files if f.startswith(f"{bank.folder}/{category}/")]
            if members:
                parts.append(f"{category} {len(members):,} files, {_hours(sum(seconds[f] for f in members))}")
            elif Path(bank.folder, category).is_dir():
                report.add(True, f"noise category folder {bank.folder}/{category} has no audio files: the trainer "
                                 "refuses it")
        size = total * cfg.sample_rate * BYTES_PER_SAMPLE
        what = "; ".join(parts) or f"{len(bank.files):,} files, {_hours(total)}"
    else:  # RirBank keeps at most 1.5 s of each and pads them all to the longest
        longest = min(RIR_SECONDS_IN_BANK, max(seconds.values()))
        size = len(bank.files) * longest * cfg.sample_rate * BYTES_PER_SAMPLE
        what = f"{len(bank.files):,} files, {total / len(bank.files):.2f} s mean"
    report.summary.append(f"{bank.label} {bank.folder}: {what}; the trainer holds it as {size / 2**30:.2f} GiB "
                          "(int16), one memory-mapped copy per node")
    bad = opened.unusable(bank.files)
    if bad:
        report.add(True, f"{len(bad):,} {bank.label} file(s) are unusable: the trainer loads every one", bad)


def _overlap(report: CheckReport, lists: _Lists, trial_paths: list[str], allow_overlap: bool) -> None:
    """Training speakers named by a folder of a trial path, and training files that are trial files."""
    if not lists.utterances or not lists.trials:
        return
    example: dict[str, str] = {}
    for name in lists.trial_names:
        for part in _directories(name):
            example.setdefault(part, name)
    speakers = sorted({u.speaker for u in lists.utterances if u.speaker is not None} & set(example))
    if speakers:
        report.add(not allow_overlap,
                   f"{len(speakers):,} training speaker(s) also appear in the trial list {lists.trials_path} (as a "
                   "folder of a trial path): the EER would be measured on training speakers",
                   [f"{s}: e.g. {example[s]}" for s in speakers])
    shared = sorted(set(lists.train_paths) & set(trial_paths))
    if shared:
        report.add(not allow_overlap, f"{len(shared):,} training file(s) are also trial files", shared)
