"""One screen about a study: its trials, the best configuration with EER/minDCF, the paper rows, compute spent."""

from __future__ import annotations

import math

import pandas as pd

import search_spaces
from analysis.bootstrap import RESAMPLES, eer_interval
from analysis.comparisons import add_row_differences, comparison_line
from analysis.floors import NOT_LEARNED_POINTS, floor_groups, floors_text, learned_column
from analysis.render import Table, frame_text
from analysis.runs import MissingScores, Runs, load_runs, load_scores
from analysis.table_layouts import Layout, layout
from analysis.tables import EER, DCF, comparison, paper_point_comparisons, ranked_runs, run_config
from search_spaces import describe_config

COMPARISON_COLUMNS = ("n", f"{EER} ours", f"{EER} paper", f"{DCF} ours", f"{DCF} paper")


def study_summary(name: str, uri: str | None = None, launch: str | None = None, top: int = 5,
                  resamples: int = RESAMPLES) -> str:
    """The summary text of study `name`; `resamples` for the paired differences (0: none)."""
    study = search_spaces.load(name)
    runs = load_runs(name, uri, launch)
    table = runs.table
    lines = [f"study    {name} — {study.description}",
             f"store    {runs.uri} (experiment '{name}')"]
    for _, launch_row in runs.launches.iterrows():
        lines.append(f"launch   {launch_row['launch']} ({launch_row['profile']}, {launch_row['status'].lower()}, "
                     f"{_minutes((launch_row['end'] - launch_row['start']).total_seconds())})")
    finished = runs.finished
    early = int(finished["stopped_early"].sum())
    lines.append(f"trials   {len(table)}: {len(runs.complete)} completed, {early} stopped early, "
                 f"{int((table['status'].isin(['FAILED', 'KILLED'])).sum())} failed or killed, "
                 f"{int((table['status'] == 'RUNNING').sum())} running")
    ranked = ranked_runs(study, finished)
    if len(ranked):
        lines.append("best     " + _best_line(study, runs, ranked.iloc[0]))
    else:
        lines.append(f"best     no run reported {study.metric}")
    lines.append("compute  " + _compute_line(runs))
    lines += _floor_lines(runs)
    spec = layout(name)
    rows = comparison(spec, {name: runs.complete})
    if spec.rows:
        lines += ["", f"{spec.title}:", frame_text(rows.display[list(spec.columns) + list(COMPARISON_COLUMNS)])]
    lines += _paired_lines(study, spec, rows, runs, resamples)
    if study.search and len(ranked):
        searched, conditions = _searched(study, runs)
        lines += ["", f"best {min(top, len(ranked))} of {len(ranked)} trial(s):"]
        for _, run in ranked.head(top).iterrows():
            lines.append(f"  {run['trial_id']}  {describe_config(run_config(run), searched, conditions)}  "
                         f"EER {run['eer']:.2f}  minDCF {run['min_dcf']:.4f}")
    return "\n".join(lines).rstrip() + "\n"


def _paired_lines(study: search_spaces.Study, spec: Layout, rows: Table, runs: Runs, resamples: int) -> list[str]:
    """One line per paired comparison (rows against the reference row; the best trial against the paper's
    points), and why there are none where a note says so."""
    found, notes = add_row_differences(rows, spec, {study.name: runs.complete}, runs.uri, resamples)
    if study.search:
        points, point_notes = paper_point_comparisons(study, runs, resamples)
        found, notes = found + points, notes + point_notes
    if not found and not notes:
        return []
    return ["", "paired differences (b - a for 'b vs a', 95% speaker bootstrap over the shared trials):"] + \
        [f"  {comparison_line(c)}" for c in found] + [f"  note: {n}" for n in notes]


def _floor_lines(runs: Runs) -> list[str]:
    """The floors of the completed runs' trial list(s) and the runs that did not learn, named."""
    complete = runs.complete
    groups = floor_groups(complete)
    if not groups:
        return ["floors   none logged by these runs (they predate floors)"] if len(complete) else []
    lines = [f"floors   on {name}: {floors_text(floors)}" + (f" ({n} runs)" if len(groups) > 1 else "")
             for name, floors, n in groups]
    flags = learned_column(complete)
    failed = complete[flags.eq(False).to_numpy(dtype=bool)]
    known = int(flags.notna().sum())
    rule = f"EER above the lower floor - {NOT_LEARNED_POINTS:g} points"
    if len(failed):
        lines.append(f"learned  not learned: {len(failed)} of {known} trials ({', '.join(failed['trial_id'])}): {rule}")
    else:
        lines.append(f"learned  all {known} trials with floors learned (none has its {rule})")
    return lines


def _best_line(study: search_spaces.Study, runs: Runs, run: pd.Series) -> str:
    searched, conditions = _searched(study, runs)
    config = run_config(run)
    text = f"{run['trial_id']} ({describe_config(config, searched, conditions)}): EER {run['eer']:.2f} %"
    try:
        interval = eer_interval(*load_scores(runs.uri, run))
        text += f" [95% CI {interval.low:.2f}, {interval.high:.2f}]"
    except MissingScores:
        text += " [no stored scores: no CI]"
    text += f", minDCF {run['min_dcf']:.4f}"
    ref = study.matching_reference(config)
    if ref is not None:
        dcf = f" / {ref.min_dcf:.4f}" if ref.min_dcf is not None else ""
        text += f" (paper {ref.source}: {ref.eer:.2f}{dcf})"
    return text


def _compute_line(runs: Runs) -> str:
    launches = runs.launches
    wall = (launches["end"] - launches["start"]).dt.total_seconds().sum(min_count=1)
    table = runs.table
    worker_seconds = (table["duration_s"].fillna(0) * table["world_size"]).sum()
    epochs = int(table["epoch"].fillna(0).sum())
    speed = table["samples_per_s"].mean()
    text = (f"{_minutes(wall)} of launch wall time; {_minutes(table['duration_s'].sum())} in trial runs, "
            f"{_minutes(worker_seconds)} of worker time; {epochs} epoch(s) trained")
    return text + (f"; {speed:.1f} utterances/s per trial on average" if math.isfinite(speed) else "")


def _searched(study: search_spaces.Study, runs: Runs) -> tuple[tuple[str, ...], dict]:
    """The study's searched keys and conditions for these runs (their profile; their seeds, when they vary)."""
    return study.searched_keys(runs.profile, runs.seeds), study.conditions(runs.profile)


def _minutes(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "? min"
    return f"{seconds / 60:.1f} min"
