"""Training lists (`File,Speaker` CSV) and VoxCeleb-format trial lists.

Paths in both lists are relative to a data root unless absolute. Parsing never touches the audio files
(that is the data check's job, `study.datasets.check`); a malformed list raises `ManifestError` naming the file, the 1-based line and
the offending value.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


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


@dataclass(frozen=True)
class TrainList:
    """A parsed training list held as arrays, so millions of rows cost little: each distinct file name once,
    each row as indices. Row i is `utterance(i)`."""

    names: list[str]
    """The distinct file names as written in the list, in order of first appearance."""
    paths: list[str]
    """Absolute path of each name."""
    speaker_labels: list[str]
    """The distinct speaker labels, in order of first appearance."""
    file_of_row: np.ndarray
    """(rows,) int64: index into `names` of each row."""
    speaker_of_row: np.ndarray
    """(rows,) int64: index into `speaker_labels` of each row, -1 where it has none."""

    def __len__(self) -> int:
        return self.file_of_row.shape[0]

    def head(self, rows: int) -> "TrainList":
        """The first `rows` rows (the name and speaker tables are kept whole)."""
        return dataclasses.replace(self, file_of_row=self.file_of_row[:rows], speaker_of_row=self.speaker_of_row[:rows])

    def utterance(self, row: int) -> Utterance:
        f, s = int(self.file_of_row[row]), int(self.speaker_of_row[row])
        return Utterance(path=self.paths[f], speaker=self.speaker_labels[s] if s >= 0 else None, name=self.names[f])

    def utterances(self) -> list[Utterance]:
        """Every row as an Utterance (one object per row: slow for millions of rows)."""
        return [self.utterance(row) for row in range(len(self))]

    def speakers(self) -> list[str | None]:
        """Speaker label of each row (None where it has none)."""
        labels = [*self.speaker_labels, None]  # code -1 picks the None
        return [labels[code] for code in self.speaker_of_row.tolist()]

    @classmethod
    def from_utterances(cls, utterances: list[Utterance]) -> "TrainList":
        """The list of these utterances; rows with the same path share one name (the first written)."""
        files: dict[str, int] = {}
        labels: dict[str | None, int] = {None: -1}
        names = []
        for u in utterances:
            if u.path not in files:
                files[u.path] = len(names)
                names.append(u.name)
        file_of_row = np.fromiter((files[u.path] for u in utterances), dtype=np.int64, count=len(utterances))
        speaker_of_row = np.fromiter((labels.setdefault(u.speaker, len(labels) - 1) for u in utterances),
                                     dtype=np.int64, count=len(utterances))
        return cls(names, list(files), [s for s in labels if s is not None], file_of_row, speaker_of_row)


_NOT_PLAIN = re.compile(r'["\r]|[^\S\n]')
"""A character that needs the csv module: a quote, a carriage return or whitespace other than the line break."""


def _cells(text: str, path: str) -> Iterator[tuple[int, list[str], list[str]]]:
    """(1-based line, stripped cells, raw cells) of each non-blank CSV row. Plain text (no quotes, no
    whitespace but line breaks) is split directly, which reads the same cells about five times faster."""
    if "\r\n" in text and "\r" not in text.replace("\r\n", ""):
        text = text.replace("\r\n", "\n")
    if _NOT_PLAIN.search(text) is None:
        for line_no, line in enumerate(text.split("\n"), start=1):
            if line.strip(","):
                cells = line.split(",")
                yield line_no, cells, cells
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in _rows(reader, path):
        if "".join(row).strip():
            yield reader.line_num, [cell.strip() for cell in row], row


def read_train_list(csv_path: str | os.PathLike, data_root: str | os.PathLike) -> TrainList:
    """Parse a training list: a CSV whose header has a `File` column and optionally `Speaker`.

    Other columns are ignored (so a metadata CSV works too); blank lines are skipped. Raises ManifestError
    for a missing `File` column, a row with the wrong number of columns, an empty path, or no rows at all.
    """
    path = os.fspath(csv_path)
    header: list[str] | None = None
    files: dict[str, int] = {}
    labels: dict[str, int] = {}
    file_of_row: list[int] = []
    speaker_of_row: list[int] = []
    for line_no, cells, row in _cells(_read_text(path, "training list"), path):
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
        file_of_row.append(files.setdefault(name, len(files)))
        if speaker_col is not None:
            speaker_of_row.append(labels.setdefault(cells[speaker_col], len(labels)))
    if not file_of_row:
        raise ManifestError(f"{path}: training list has no utterances")
    speakers = np.array(speaker_of_row, dtype=np.int64) if speaker_col is not None else np.full(len(file_of_row), -1)
    empty = labels.pop("", None)
    if empty is not None:  # an empty Speaker value is no label: code -1, the later codes move down one
        speakers = np.where(speakers == empty, -1, speakers - (speakers > empty))
    resolve_name = _resolver(data_root)
    return TrainList(list(files), [resolve_name(name) for name in files], list(labels),
                     np.array(file_of_row, dtype=np.int64), speakers.astype(np.int64))


def read_train_manifest(csv_path: str | os.PathLike, data_root: str | os.PathLike) -> list[Utterance]:
    """`read_train_list` as one Utterance per row."""
    return read_train_list(csv_path, data_root).utterances()


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
