"""Paired comparisons a study makes: each table row against the table's reference row (`Layout.reference`),
and for an Optuna study its best trial against the trials at the paper's points (`points_to_evaluate`).

Each is the difference (row - reference) in EER and minDCF with a 95 % interval from `analysis.paired`: a
speaker-level bootstrap over the trials both runs were scored on, seeds combined as the difference of seed
means over the seeds both sides have. Runs scored on different trial lists are refused; a trial list that cannot
be read any more leaves the table without its difference columns, with a note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.bootstrap import Interval
from analysis.paired import PairedDifference, TrialUnits, paired_difference, speaker_of, trial_units
from analysis.render import MISSING, NOT_APPLICABLE, REFERENCE, Table
from analysis.runs import MissingScores, RunsError, load_scores, matching, trial_list_path
from analysis.table_layouts import Layout, value_label
from trainables.manifest import ManifestError, read_trials

DELTA_EER = "ΔEER vs ref [95% CI]"
DELTA_DCF = "ΔminDCF vs ref [95% CI]"
DATA_COLUMNS = ("eer_delta", "eer_delta_low", "eer_delta_high", "min_dcf_delta", "min_dcf_delta_low",
                "min_dcf_delta_high", "delta_seeds")


class TrialListUnavailable(RunsError):
    """The trial list the runs were scored on cannot be read (moved, deleted): no paired differences."""


@dataclass(frozen=True)
class Comparison:
    """One paired comparison: `name` ("b vs a"), the seeds combined, and b - a (None, with `problem`, when
    the two have no seed with scores in common)."""

    name: str
    seeds: tuple[int, ...]
    difference: PairedDifference | None
    problem: str = ""


class PairedScores:
    """The trial scores of runs, read once each and checked to be on one trial list, with its speaker units."""

    def __init__(self, uri: str, resamples: int):
        self.uri, self.resamples = uri, resamples
        self.path: str | None = None
        self.first = ""
        self.units: TrialUnits | None = None
        self.labels: np.ndarray | None = None
        self.missing: list[str] = []
        self._scores: dict[str, np.ndarray | None] = {}

    def scores(self, run: pd.Series) -> np.ndarray | None:
        """The run's (n,) scores on the shared trial list; None (noted in `missing`) when it stored none."""
        if run["run_id"] not in self._scores:
            self._scores[run["run_id"]] = self._read(run)
        return self._scores[run["run_id"]]

    def _read(self, run: pd.Series) -> np.ndarray | None:
        try:
            scores, labels = load_scores(self.uri, run)
        except MissingScores as error:
            self.missing.append(str(error))
            return None
        path = trial_list_path(self.uri, run)
        if path is None:
            raise TrialListUnavailable(f"run {run['trial_id']} does not record its trial list (no data_root/trials "
                                       "param, no config.json): no paired differences")
        if self.path is None:
            self._load_list(path)
            self.path, self.first = path, run["trial_id"]
        elif path != self.path:
            raise RunsError(f"runs {self.first} and {run['trial_id']} were scored on different trial lists "
                            f"({self.path}, {path}): paired differences need one trial list; pick runs of one data "
                            "setup with --launch")
        if scores.shape != self.labels.shape or not np.array_equal(labels, self.labels):
            raise RunsError(f"run {run['trial_id']} stored {scores.size} trial scores that do not match the "
                            f"{self.labels.size} trials of {path} (the list changed after scoring?): restore the "
                            "list it was scored on, or rerun the trial")
        return scores

    def _load_list(self, path: str) -> None:
        try:
            trials = read_trials(path)
        except ManifestError as error:
            raise TrialListUnavailable(f"trial list not readable any more ({error}): tables shown without paired "
                                       "differences; restore the list to get them") from None
        enrol, test = [t.enrol for t in trials], [t.test for t in trials]
        try:
            self.units = trial_units(enrol, test, speaker_unit(enrol + test))
        except ManifestError as error:
            raise TrialListUnavailable(f"{path}: {error}; tables shown without paired differences") from None
        self.labels = np.array([t.label for t in trials], dtype=int)

    def compare(self, name: str, runs_a: pd.DataFrame, runs_b: pd.DataFrame) -> Comparison:
        """b - a over the seeds both have (per seed the latest run with scores)."""
        a, b = self._by_seed(runs_a), self._by_seed(runs_b)
        seeds = tuple(sorted(set(a) & set(b)))
        if not seeds:
            return Comparison(name, (), None, "no seed with stored scores on both sides")
        try:
            difference = paired_difference(np.stack([a[s] for s in seeds]), np.stack([b[s] for s in seeds]),
                                           self.labels, self.units, self.resamples)
        except ValueError as error:  # a list too small to resample (one speaker, too few targets)
            self.missing.append(f"{name}: no paired difference ({error}) on {self.path}")
            return Comparison(name, seeds, None, f"no paired difference ({error})")
        return Comparison(name, seeds, difference)

    def _by_seed(self, runs: pd.DataFrame) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        for _, run in runs.sort_values("start", kind="stable").iterrows():
            scores = self.scores(run)
            if scores is not None:
                found[int(run["seed"])] = scores
        return found


def speaker_unit(names: Sequence[str]) -> Callable[[str], str]:
    """A name's speaker: its first folder (`analysis.paired.speaker_of`) below the folders every name shares,
    so `id10270/vid/1.wav` and `so1050/sess1/1.flac` give their first folder and the embedded corpus's
    `test/spk009/utt02.flac` gives `spk009`."""
    shared = os.path.commonpath(names) if names and not any(n.startswith("/") for n in names) else ""
    prefix = shared + "/" if shared and all(n.startswith(shared + "/") for n in names) else ""
    return lambda name: speaker_of(name[len(prefix):])


def add_row_differences(table: Table, spec: Layout, frames: Mapping[str, pd.DataFrame], uri: str,
                        resamples: int) -> tuple[list[Comparison], list[str]]:
    """Add each row's paired difference to its reference row to `table` (columns, or a note saying why not);
    return the comparisons made and the problems met (also in the notes). Nothing when the layout has no
    reference row or `resamples` < 1."""
    if spec.reference is None or resamples < 1:
        return [], []
    reference = spec.rows[spec.reference]
    ref_runs = _runs(frames, reference.study, reference.config)
    paired = PairedScores(uri, resamples)
    cells: list[Comparison | str] = []
    try:
        for i, row in enumerate(spec.rows):
            runs = _runs(frames, row.study, row.config)
            if i == spec.reference:
                cells.append(REFERENCE)
            elif row.study is None:
                cells.append(NOT_APPLICABLE)
            elif runs is None or ref_runs is None or runs.empty or ref_runs.empty:
                cells.append(MISSING)
            else:
                cells.append(paired.compare(f"{config_text(row.config)} vs {config_text(reference.config)}",
                                            ref_runs, runs))
    except TrialListUnavailable as error:
        table.notes.append(str(error))
        return [], [str(error)]
    for column in DATA_COLUMNS:
        table.data[column] = [_number(cell, column) for cell in cells]
    table.display[DELTA_EER] = [_cell(cell, "eer") for cell in cells]
    table.display[DELTA_DCF] = [_cell(cell, "min_dcf") for cell in cells]
    table.notes.append(f"{DELTA_EER}, {DELTA_DCF}: row - reference row ({config_text(reference.config)}), "
                       f"paired over the shared trials; 95% speaker-level bootstrap ({resamples} resamples), seeds "
                       "both rows have combined (difference of seed means)")
    table.notes += paired.missing
    return [cell for cell in cells if isinstance(cell, Comparison)], paired.missing


def point_comparisons(points: Sequence[Mapping[str, Any]], frame: pd.DataFrame, best: pd.Series, uri: str,
                      resamples: int) -> tuple[list[Comparison], list[str]]:
    """The best run against the runs at each paper point (an Optuna study's `points_to_evaluate`) that has
    runs and is not the best itself; notes say why there are none."""
    if resamples < 1:
        return [], []
    paired = PairedScores(uri, resamples)
    found = []
    try:
        for point in points:
            runs = matching(frame, point)
            if runs.empty or best["run_id"] in set(runs["run_id"]):
                continue
            found.append(paired.compare(f"best trial {best['trial_id']} vs paper point {config_text(point)}",
                                        runs, frame[frame["run_id"] == best["run_id"]]))
    except TrialListUnavailable as error:
        return [], [str(error)]
    return found, paired.missing


def comparisons_table(title: str, comparisons: Sequence[Comparison], notes: Sequence[str], resamples: int) -> Table:
    """The comparisons as rows: name, seeds, the two differences."""
    data = pd.DataFrame([{"comparison": c.name, **{k: _number(c, k) for k in DATA_COLUMNS}} for c in comparisons],
                        columns=["comparison", *DATA_COLUMNS])
    display = pd.DataFrame([{"Comparison": c.name, "Seeds": str(len(c.seeds)), "ΔEER [95% CI]": _cell(c, "eer"),
                             "ΔminDCF [95% CI]": _cell(c, "min_dcf")} for c in comparisons],
                           columns=["Comparison", "Seeds", "ΔEER [95% CI]", "ΔminDCF [95% CI]"])
    text = [f"b - a in 'b vs a', paired over the shared trials; 95% speaker-level bootstrap ({resamples} resamples)"]
    return Table("paired", title, data, display, text + list(notes))


def comparison_line(comparison: Comparison) -> str:
    """One line: 'symmetric=✓, margin=0.1 vs symmetric=✓, margin=0: ΔEER -0.60 [-1.20, -0.10] points, ...'."""
    if comparison.difference is None:
        return f"{comparison.name}: {comparison.problem}"
    d = comparison.difference
    shown = [metric for metric, interval in (("EER", d.eer), ("minDCF", d.min_dcf)) if excludes_zero(interval)]
    verdict = (f"{' and '.join(shown)} interval{'s exclude' if len(shown) > 1 else ' excludes'} 0" if shown
               else "no difference shown")
    seeds = len(comparison.seeds)
    return (f"{comparison.name}: ΔEER {delta_text(d.eer, 2)} points, ΔminDCF {delta_text(d.min_dcf, 4)}, "
            f"{seeds} seed{'s' if seeds > 1 else ''}; {verdict}")


def excludes_zero(interval: Interval) -> bool:
    return interval.low > 0 or interval.high < 0


def delta_text(interval: Interval, digits: int) -> str:
    """'-0.60 [-1.20, -0.10]': the estimate and its interval, signed (0 unsigned)."""
    return f"{_signed(interval.estimate, digits)} [{_signed(interval.low, digits)}, {_signed(interval.high, digits)}]"


def config_text(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value_label(value)}" for key, value in config.items())


def _runs(frames: Mapping[str, pd.DataFrame], study: str | None, config: Mapping[str, Any]) -> pd.DataFrame | None:
    return matching(frames[study], config) if study in frames else None


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}" if value != 0 else f"{0:.{digits}f}"


def _cell(cell: Comparison | str, metric: str) -> str:
    if isinstance(cell, str):
        return cell
    if cell.difference is None:
        return MISSING
    return delta_text(getattr(cell.difference, metric), 2 if metric == "eer" else 4)


def _number(cell: Comparison | str, column: str) -> float:
    if not isinstance(cell, Comparison) or cell.difference is None:
        return 0.0 if cell == REFERENCE and column != "delta_seeds" else np.nan
    if column == "delta_seeds":
        return float(len(cell.seeds))
    metric, _, part = column.partition("_delta")
    interval = getattr(cell.difference, metric)
    return {"": interval.estimate, "_low": interval.low, "_high": interval.high}[part]
