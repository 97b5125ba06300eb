"""Training lists (`File,Speaker` CSV) and VoxCeleb-format trial lists.

Paths in both lists are relative to a data root unless absolute. Parsing never touches the audio files
(that is the data check's job, `study.datasets.check`); a malformed list raises `ManifestError` naming the file, the 1-based line and
the offending value.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass


class ManifestError(ValueError):
    """A training or trial list that cannot be used; the message starts with "<file>:<line>:"."""


@dataclass(frozen=True)
class Utterance:
    """One training file."""

    path: str
    """Absolute path of the audio file."""
    speaker: str | None
    """Speaker label, or None when the list has no (or an empty) Speaker value."""
    name: str
    """The path as written in the list."""


@dataclass(frozen=True)
class Trial:
    """One verification trial; paths as written in the list."""

    label: int
    """1 = same speaker (target), 0 = different speakers (non-target)."""
    enrol: str
    test: str


def resolve(data_root: str | os.PathLike, name: str) -> str:
    """Absolute, normalised path of a list entry: `name` itself if absolute, else under `data_root`."""
    return os.path.abspath(os.path.join(os.fspath(data_root), os.path.expanduser(name)))


def _resolver(data_root: str | os.PathLike):
    """`resolve` bound to one root, with a fast path (same result) for plain relative POSIX names: no leading
    `/` or `~`, no empty, `.` or `..` segment; those are the root, a slash and the name."""
    root = os.path.abspath(os.fspath(data_root))
    prefix = root.rstrip("/") + "/"

    def resolve_name(name: str) -> str:
        plain = os.sep == "/" and name[0] not in "/~." and "//" not in name and "/." not in name and name[-1] != "/"
        return prefix + name if plain else resolve(root, name)

    return resolve_name


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise ManifestError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read {what} ({exc})") from exc


def _rows(reader: Iterator[list[str]], path: str) -> Iterator[list[str]]:
    """The reader's rows; a line the csv module cannot parse (e.g. an oversized field) is a ManifestError."""
    try:
        yield from reader
    except csv.Error as exc:
        raise ManifestError(f"{path}:{reader.line_num}: not a CSV row the list can hold ({exc})") from None


def read_train_manifest(csv_path: str | os.PathLike, data_root: str | os.PathLike) -> list[Utterance]:
    """Parse a training list: a CSV whose header has a `File` column and optionally `Speaker`.

    Other columns are ignored (so a metadata CSV works too); blank lines are skipped. Raises ManifestError
    for a missing `File` column, a row with the wrong number of columns, an empty path, or no rows at all.
    """
    path = os.fspath(csv_path)
    reader = csv.reader(io.StringIO(_read_text(path, "training list"), newline=""))
    header: list[str] | None = None
    utterances: list[Utterance] = []
    resolve_name = _resolver(data_root)
    for row in _rows(reader, path):
        line_no = reader.line_num
        if not "".join(row).strip():
            continue
        cells = [cell.strip() for cell in row]
        if header is None:
            header = cells
            if "File" not in header:
                raise ManifestError(f"{path}:{line_no}: header {row!r} has no 'File' column (expected File,Speaker)")
            duplicated = sorted({c for c in header if header.count(c) > 1})
            if duplicated:
                raise ManifestError(f"{path}:{line_no}: header repeats column(s) {duplicated}")
            file_col = header.index("File")
            speaker_col = header.index("Speaker") if "Speaker" in header else None
            continue
        if len(cells) != len(header):
            raise ManifestError(
                f"{path}:{line_no}: expected {len(header)} column(s) {header}, got {len(cells)}: {row!r}"
            )
        name = cells[file_col]
        if not name:
            raise ManifestError(f"{path}:{line_no}: empty path in column 'File': {row!r}")
        speaker = (cells[speaker_col] or None) if speaker_col is not None else None
        utterances.append(Utterance(path=resolve_name(name), speaker=speaker, name=name))
    if not utterances:
        raise ManifestError(f"{path}: training list has no utterances")
    return utterances


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Parse a VoxCeleb trial list: one `label enrol test` per line, label 0 or 1, whitespace-separated.

    Blank lines are skipped. Raises ManifestError for a line with another field count or label, and when
    the list lacks target or non-target trials (EER would be undefined).
    """
    path = os.fspath(path)
    trials: list[Trial] = []
    for line_no, line in enumerate(_read_text(path, "trial list").split("\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ManifestError(
                f"{path}:{line_no}: expected 'label enrol test' (3 fields), got {len(fields)}: {line.strip()!r}"
            )
        if fields[0] not in ("0", "1"):
            raise ManifestError(f"{path}:{line_no}: label must be 0 or 1, got {fields[0]!r}: {line.strip()!r}")
        trials.append(Trial(label=int(fields[0]), enrol=fields[1], test=fields[2]))
    if not trials:
        raise ManifestError(f"{path}: trial list has no trials")
    targets = sum(t.label for t in trials)
    if targets == 0 or targets == len(trials):
        kind = "target" if targets == 0 else "non-target"
        raise ManifestError(f"{path}: trial list has no {kind} trials ({len(trials)} trials), so EER is undefined")
    return trials


def trial_files(trials: list[Trial]) -> list[str]:
    """The distinct file names the trials refer to, in order of first appearance."""
    return list(dict.fromkeys(name for trial in trials for name in (trial.enrol, trial.test)))
