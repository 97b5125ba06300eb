"""Check a training list, a trial list and every audio file they name, before any training starts.

A malformed list is fatal (ManifestError propagates). Each file is opened with `audio_info` in parallel
threads (about 0.1 ms per local file); unusable files are errors, files at another sample rate or shorter
than `min_samples` are warnings (they will be resampled or wrap-padded), as are training speakers that also
appear in the trials.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from trainables.audio import AudioError, audio_info, resampled_length
from trainables.manifest import read_train_manifest, read_trials, resolve, trial_files

_EXAMPLES = 3
_SHOWN_ERRORS = 10


@dataclass
class PreflightReport:
    """What `preflight` found; `ok` is False when any file or list entry is unusable."""

    utterances: int = 0
    """Training utterances listed."""
    speakers: int = 0
    """Distinct speaker labels in the training list."""
    trials: int = 0
    """Trials listed."""
    files_checked: int = 0
    """Distinct audio files opened (training and trial files together)."""
    train_hours: float = 0.0
    """Total duration of the readable training files."""
    trial_hours: float = 0.0
    """Total duration of the readable trial files."""
    errors: list[str] = field(default_factory=list)
    """One "path: reason" per unusable file."""
    warnings: list[str] = field(default_factory=list)
    """Usable but noteworthy findings, one line per kind, with counts and examples."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        """A short human-readable report: counts, then errors (the first few) and warnings."""
        lines = [
            f"preflight: {'ok' if self.ok else 'FAILED'}: {self.utterances} training utterances "
            f"({self.speakers} speakers, {self.train_hours:.2f} h), {self.trials} trials "
            f"({self.trial_hours:.2f} h of trial audio), {self.files_checked} files checked"
        ]
        if self.errors:
            lines.append(f"{len(self.errors)} error(s):")
            lines += [f"  {error}" for error in self.errors[:_SHOWN_ERRORS]]
            if len(self.errors) > _SHOWN_ERRORS:
                lines.append(f"  ... and {len(self.errors) - _SHOWN_ERRORS} more")
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def _examples(items: list[str]) -> str:
    more = ", ..." if len(items) > _EXAMPLES else ""
    return ", ".join(items[:_EXAMPLES]) + more


def _speaker_folder(name: str) -> str:
    """First path component of a trial path (VoxCeleb layout: <speaker>/<video>/<utt>.wav)."""
    parts = [part for part in name.replace("\\", "/").split("/") if part]
    return parts[0] if parts else name


def _check(path: str) -> tuple[int, int] | AudioError:
    try:
        return audio_info(path)
    except AudioError as exc:
        return exc


def preflight(
    train_manifest: str | None,
    trials: str | None,
    data_root: str,
    sample_rate: int,
    min_samples: int,
    workers: int = 16,
) -> PreflightReport:
    """Parse the lists (either may be None) and check every audio file they name; see the module docstring.

    `min_samples` is counted at `sample_rate` (e.g. two training crops); `workers` is the thread count.
    """
    report = PreflightReport()
    utterances = read_train_manifest(train_manifest, data_root) if train_manifest else []
    trial_list = read_trials(trials) if trials else []
    trial_paths = [resolve(data_root, name) for name in trial_files(trial_list)]
    train_paths = [u.path for u in utterances]
    report.utterances = len(utterances)
    report.speakers = len({u.speaker for u in utterances if u.speaker is not None})
    report.trials = len(trial_list)

    paths = list(dict.fromkeys(train_paths + trial_paths))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = dict(zip(paths, pool.map(_check, paths)))
    report.files_checked = len(paths)

    resampled: list[str] = []
    short: list[str] = []
    seconds: dict[str, float] = {}
    for path, result in results.items():
        if isinstance(result, AudioError):
            report.errors.append(str(result))
            continue
        frames, rate = result
        seconds[path] = frames / rate
        if rate != sample_rate:
            resampled.append(f"{path}: {rate} Hz")
        if resampled_length(frames, rate, sample_rate) < min_samples:
            short.append(f"{path}: {resampled_length(frames, rate, sample_rate)} samples")
    report.train_hours = sum(seconds.get(p, 0.0) for p in train_paths) / 3600
    report.trial_hours = sum(seconds.get(p, 0.0) for p in trial_paths) / 3600

    if resampled:
        report.warnings.append(
            f"{len(resampled)} file(s) not at {sample_rate} Hz will be resampled: {_examples(resampled)}"
        )
    if short:
        report.warnings.append(
            f"{len(short)} file(s) shorter than {min_samples} samples will be wrap-padded: {_examples(short)}"
        )
    duplicates = len(train_paths) - len(set(train_paths))
    if duplicates:
        report.warnings.append(f"{duplicates} duplicate path(s) in the training list {train_manifest}")
    trial_speakers = {_speaker_folder(name) for name in trial_files(trial_list)}
    overlap = sorted({u.speaker for u in utterances if u.speaker is not None} & trial_speakers)
    if overlap:
        report.warnings.append(
            f"{len(overlap)} training speaker(s) also appear in the trials (speaker folder of a trial path): "
            f"{_examples(overlap)}"
        )
    return report
