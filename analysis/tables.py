"""A study's tables from its runs: the paper comparison (ours / paper / difference), every run with its EER
bootstrap interval, and for Optuna studies the best trials and the parameter importances.

Each table (`analysis.render.Table`) keeps its numbers and their text. A cell with no run is "missing", never
filled from elsewhere; a paper value the paper does not report is "–".
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

import search_spaces
from analysis.bootstrap import RESAMPLES, Interval, eer_interval
from analysis.comparisons import add_row_differences, comparisons_table, point_comparisons
from analysis.floors import NOT_LEARNED_MARK, floor_notes, learned_flags, marked, row_floor, run_learned
from analysis.importance import importance_table
from analysis.render import MISSING, NOT_APPLICABLE, NOT_REPORTED, Table, mean_std, number
from analysis.runs import CONFIG_KEYS, MissingScores, Runs, RunsError, load_runs, load_scores, matching
from analysis.table_layouts import TABLE4, Layout, Row, layout, run_labellers
from search_spaces import native

EER = "EER (%)"
DCF = "minDCF_0.01"


def study_tables(name: str, uri: str | None = None, launch: str | None = None, resamples: int = RESAMPLES,
                 top: int = 10) -> list[Table]:
    """Every table of study `name` (or of Table 4, `paper_table4`), read from the store at `uri`."""
    spec = layout(name)
    notes: list[str] = []
    loaded: dict[str, Runs] = {}
    for study in spec.studies:
        try:
            loaded[study] = load_runs(study, uri, launch)
        except RunsError as error:
            if name != TABLE4:
                raise
            notes.append(f"no runs of {study}: {error}")
    for runs in loaded.values():
        notes += launch_notes(runs)
    frames = {study: runs.complete for study, runs in loaded.items()}
    table = comparison(spec, frames, notes)
    if name == TABLE4:
        return [table]
    study, runs = search_spaces.load(name), loaded[name]
    add_row_differences(table, spec, frames, runs.uri, resamples)
    intervals, missing = run_intervals(runs, resamples)
    tables = [table] if spec.rows else []
    tables.append(runs_table(study, runs, intervals, missing, resamples))
    if not spec.rows:
        tables[0].notes[:0] = notes
    if study.search:
        tables.append(best_table(study, runs, intervals, top, resamples))
        paired = paper_point_table(study, runs, resamples)
        if paired is not None:
            tables.append(paired)
        tables.append(importance_table(study, runs))
    return tables


def launch_notes(runs: Runs) -> list[str]:
    """Which launches the runs come from, which were left out, and runs that did not finish."""
    notes = [f"{runs.study}: {len(runs.table)} run(s) from launch(es) {', '.join(runs.launches['launch'])} "
             f"(profile {', '.join(sorted(set(runs.launches['profile'].fillna('?'))))}) in {runs.uri}"]
    if len(runs.skipped):
        notes.append(f"{runs.study}: left out launch(es) of another profile: {', '.join(runs.skipped['launch'])} "
                     "(--launch all includes them)")
    unfinished = runs.table[runs.table["status"] != "FINISHED"]
    if len(unfinished):
        notes.append(f"{runs.study}: {len(unfinished)} run(s) did not finish and are left out: "
                     + ", ".join(f"{t} ({s})" for t, s in zip(unfinished["trial_id"], unfinished["status"])))
    early = runs.finished[runs.finished["stopped_early"]]
    if len(early):
        notes.append(f"{runs.study}: {len(early)} run(s) stopped early by ASHA are not in the comparison")
    return notes


def summary_stats(values: pd.Series) -> tuple[float, float, int]:
    """Mean, sample standard deviation (NaN for one value) and count of the finite values."""
    finite = values.astype(float)
    finite = finite[np.isfinite(finite)]
    n = len(finite)
    if n == 0:
        return math.nan, math.nan, 0
    return float(finite.mean()), float(finite.std(ddof=1)) if n > 1 else math.nan, n


def comparison(spec: Layout, frames: Mapping[str, pd.DataFrame], notes: Sequence[str] = ()) -> Table:
    """The paper's layout: per row, ours (mean ± std over seeds, n), the paper's value and the difference."""
    data_rows, text_rows, used = [], [], {study: set() for study in frames}
    for row in spec.rows:
        runs = matching(frames[row.study], row.config) if row.study in frames else None
        if runs is not None:
            used[row.study] |= set(runs["run_id"])
        data_rows.append(_comparison_numbers(spec, row, runs))
        text_rows.append(_comparison_text(spec, row, data_rows[-1]))
    notes = list(notes)
    for study, frame in frames.items() if spec.exhaustive else ():
        extra = frame[~frame["run_id"].isin(used[study])]
        if len(extra):
            notes.append(f"{study}: {len(extra)} run(s) match no row of this table: {', '.join(extra['trial_id'])}")
    shown = [frame[frame["run_id"].isin(used[study])] for study, frame in frames.items()]
    notes += floor_notes(pd.concat(shown)) if any(len(f) for f in shown) else []
    if any(row["learned"] is False for row in data_rows):
        notes.append(f"{NOT_LEARNED_MARK} on a row: at least one of its runs did not learn (see the runs table)")
    return Table("table", spec.title, pd.DataFrame(data_rows), pd.DataFrame(text_rows), notes)


def _comparison_numbers(spec: Layout, row: Row, runs: pd.DataFrame | None) -> dict[str, Any]:
    numbers: dict[str, Any] = dict(zip(spec.columns, row.labels))
    numbers["study"] = row.study or ""
    numbers["n"] = len(runs) if runs is not None else 0
    paper = dict(zip(("eer", "min_dcf"), row.paper))
    for metric in ("eer", "min_dcf"):
        mean, std, n = summary_stats(runs[metric]) if runs is not None else (math.nan, math.nan, 0)
        reference = paper[metric] if paper[metric] is not None else math.nan
        numbers.update({f"{metric}_mean": mean, f"{metric}_std": std, f"{metric}_n": n,
                        f"{metric}_paper": reference, f"{metric}_diff": mean - reference})
    numbers["source"] = row.reference.source if row.reference is not None else ("literature" if row.quoted else "")
    numbers["trials"] = " ".join(runs["trial_id"]) if runs is not None else ""
    numbers["floor_trivial_eer"] = row_floor(runs, "floor_trivial_eer")
    numbers["floor_untrained_eer"] = row_floor(runs, "floor_untrained_eer")
    numbers["learned"] = learned_flags(runs)
    return numbers


def _comparison_text(spec: Layout, row: Row, numbers: Mapping[str, Any]) -> dict[str, str]:
    text = dict(zip(spec.columns, row.labels))
    measured = row.study is not None
    text["n"] = str(numbers["n"]) if measured else NOT_APPLICABLE
    for metric, header, digits in (("eer", EER, 2), ("min_dcf", DCF, 4)):
        ours = (mean_std(numbers[f"{metric}_mean"], numbers[f"{metric}_std"], numbers[f"{metric}_n"], digits)
                if measured else NOT_APPLICABLE)
        text[f"{header} ours"] = marked(ours, numbers["learned"]) if metric == "eer" else ours
        text[f"{header} paper"] = number(numbers[f"{metric}_paper"], digits, NOT_REPORTED)
        text[f"Δ {header}"] = number(numbers[f"{metric}_diff"], digits, NOT_REPORTED, signed=True)
    return text


def run_intervals(runs: Runs, resamples: int = RESAMPLES) -> tuple[dict[str, Interval], list[str]]:
    """EER bootstrap intervals of every finished run from its stored scores; messages for runs without scores."""
    intervals: dict[str, Interval] = {}
    missing: list[str] = []
    if resamples < 1:
        return intervals, missing
    for _, run in runs.finished.iterrows():
        try:
            scores, labels = load_scores(runs.uri, run)
        except MissingScores as error:
            missing.append(str(error))
            continue
        intervals[run["run_id"]] = eer_interval(scores, labels, resamples)
    return intervals, missing


def runs_table(study: search_spaces.Study, runs: Runs, intervals: Mapping[str, Interval], missing: Sequence[str],
               resamples: int = RESAMPLES) -> Table:
    """Every finished run: its configuration, EER with its 95 % bootstrap interval (`resamples` > 0), minDCF."""
    labellers = run_labellers(study, runs.profile)
    data_rows, text_rows = [], []
    for _, run in runs.finished.iterrows():
        config = run_config(run)
        interval = intervals.get(run["run_id"])
        labels = {column: label(config) for column, label in labellers}
        data_rows.append({
            "trial_id": run["trial_id"], "run_id": run["run_id"], "launch": run["launch"], **labels,
            "seed": int(run["seed"]), "epochs": _int(run["epoch"]), "stopped_early": bool(run["stopped_early"]),
            "eer": run["eer"], "eer_ci_low": interval.low if interval else math.nan,
            "eer_ci_high": interval.high if interval else math.nan, "min_dcf": run["min_dcf"], **_floor_cells(run),
        })
        text_rows.append({
            "Trial": run["trial_id"], **labels, "Seed": str(int(run["seed"])),
            "Epochs": str(_int(run["epoch"])) + (" (stopped early)" if run["stopped_early"] else ""),
            EER: marked(number(run["eer"], 2, MISSING), run_learned(run)), "95% CI": ci_text(interval),
            DCF: number(run["min_dcf"], 4, MISSING),
        })
    data, text = pd.DataFrame(data_rows), pd.DataFrame(text_rows)
    floors = floor_notes(runs.finished)
    if resamples < 1:
        data, text = data.drop(columns=["eer_ci_low", "eer_ci_high"]), text.drop(columns=["95% CI"])
        return Table("runs", f"{study.name} — every run", data, text, ["no EER intervals (--bootstrap 0)"] + floors)
    notes = [f"95% CI: percentile bootstrap of EER over the run's trials ({resamples} resamples, "
             "targets and non-targets resampled separately)"] + floors + list(missing)
    return Table("runs", f"{study.name} — every run", data, text, notes)


def best_table(study: search_spaces.Study, runs: Runs, intervals: Mapping[str, Interval], top: int,
               resamples: int = RESAMPLES) -> Table:
    """The `top` finished runs by the study metric, with the paper's numbers where a paper row matches."""
    ranked = ranked_runs(study, runs.finished).head(top)
    labellers = run_labellers(study, runs.profile)
    data_rows, text_rows = [], []
    for rank, (_, run) in enumerate(ranked.iterrows(), start=1):
        config = run_config(run)
        ref = study.matching_reference(config)
        interval = intervals.get(run["run_id"])
        labels = {column: label(config) for column, label in labellers}
        data_rows.append({"rank": rank, "trial_id": run["trial_id"], **labels, "epochs": _int(run["epoch"]),
                          "eer": run["eer"], "eer_ci_low": interval.low if interval else math.nan,
                          "eer_ci_high": interval.high if interval else math.nan, "min_dcf": run["min_dcf"],
                          "eer_paper": ref.eer if ref else math.nan,
                          "min_dcf_paper": ref.min_dcf if ref and ref.min_dcf is not None else math.nan,
                          **_floor_cells(run)})
        paper = f"{ref.eer:.2f} / {number(ref.min_dcf, 4, NOT_REPORTED)} ({ref.source})" if ref else NOT_REPORTED
        text_rows.append({"Rank": str(rank), "Trial": run["trial_id"], **labels,
                          "Epochs": str(_int(run["epoch"])) + (" (stopped early)" if run["stopped_early"] else ""),
                          EER: marked(number(run["eer"], 2, MISSING), run_learned(run)), "95% CI": ci_text(interval),
                          DCF: number(run["min_dcf"], 4, MISSING), "Paper EER / minDCF": paper})
    title = f"{study.name} — best {len(ranked)} trial(s) by {study.metric}"
    data, text = pd.DataFrame(data_rows), pd.DataFrame(text_rows)
    if resamples < 1:
        data, text = data.drop(columns=["eer_ci_low", "eer_ci_high"]), text.drop(columns=["95% CI"])
    return Table("best", title, data, text, floor_notes(ranked))


def paper_point_comparisons(study: search_spaces.Study, runs: Runs, resamples: int = RESAMPLES):
    """An Optuna study's best complete run against the runs at the paper's points: (comparisons, notes)."""
    ranked = ranked_runs(study, runs.complete)
    if not study.points_to_evaluate or ranked.empty:
        return [], []
    return point_comparisons(study.points_to_evaluate, runs.complete, ranked.iloc[0], runs.uri, resamples)


def paper_point_table(study: search_spaces.Study, runs: Runs, resamples: int = RESAMPLES) -> Table | None:
    """The best trial against the paper's points, paired (None when there is nothing to compare)."""
    found, notes = paper_point_comparisons(study, runs, resamples)
    if not found and not notes:
        return None
    return comparisons_table(f"{study.name} — best trial vs the paper's points (paired)", found, notes, resamples)


def ranked_runs(study: search_spaces.Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Runs with a finite study metric, best first."""
    scored = frame[np.isfinite(frame[study.metric].astype(float))]
    return scored.sort_values(study.metric, ascending=study.mode == "min", kind="stable")


def run_config(run: pd.Series) -> dict[str, Any]:
    """A run's typed config, as plain Python values."""
    return {key: native(run[key]) for key in CONFIG_KEYS if key in run.index}


def _floor_cells(run: pd.Series) -> dict[str, Any]:
    """A run's floors (EER, %) and whether it learned (`analysis.floors`), for the CSV."""
    return {"floor_trivial_eer": run.get("floor_trivial_eer", math.nan),
            "floor_untrained_eer": run.get("floor_untrained_eer", math.nan), "learned": run_learned(run)}


def ci_text(interval: Interval | None) -> str:
    return f"[{interval.low:.2f}, {interval.high:.2f}]" if interval else MISSING


def _int(value: Any) -> int | str:
    return int(value) if value is not None and math.isfinite(float(value)) else MISSING
