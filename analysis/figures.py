"""A study's figures from its runs (matplotlib, Agg; each saved as PNG and PDF).

- EER and minDCF versus margin, one line per framework (SimCLR symmetric / non-symmetric, MoCo), every seed shown;
- DET curves of chosen runs, overlaid (default: per framework, the best run at margin 0 and the best with a margin);
- positive vs negative trial-score histograms with their means, margin 0 vs the best margin (paper A, Figure 5),
  in the framework of the best run (its smallest margin stands in for 0 where no run has margin 0);
- learning curves: EER per epoch of every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import search_spaces
from analysis.floors import FLOOR_NAMES, floor_groups
from analysis.runs import MissingScores, Runs, RunsError, load_runs, load_scores, log_figures, metric_history
from analysis.tables import ranked_runs
from trainables.metrics import eer_from_rates, error_rates

DET_TICKS = (0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 80, 95, 99)
"""DET axis ticks, in %."""
FLOOR_COLORS = {"trivial": "0.35", "untrained": "tab:brown"}


@dataclass
class Curve:
    """One run's final trial scores, with the label it gets in a figure."""

    label: str
    scores: np.ndarray
    labels: np.ndarray


def group_name(run: pd.Series) -> str:
    """The line a run belongs to: SimCLR symmetric, SimCLR non-symmetric, or MoCo."""
    if run["framework"] == "moco":
        return "MoCo"
    return "SimCLR, symmetric" if bool(run["symmetric"]) else "SimCLR, non-symmetric"


def metric_vs_margin(frame: pd.DataFrame, study: search_spaces.Study) -> Figure:
    """EER and minDCF against the margin, one colour per framework line; every run is a dot (the seed spread),
    and for a grid study the mean over seeds is joined, with ±1 standard deviation bars. The floors of the runs'
    trial list (trivial statistic, untrained encoder) are dashed horizontal lines, labelled in the legend."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2)
    groups = frame.assign(group=frame.apply(group_name, axis=1))
    for color, (name, runs) in zip(_colors(), groups.groupby("group", sort=True)):
        for ax, metric in zip(axes, ("eer", "min_dcf")):
            ax.scatter(runs["margin"], runs[metric], color=color, alpha=0.45, s=18)
            if study.grid:
                stats = runs.groupby("margin")[metric].agg(["mean", "std", "count"]).reset_index()
                ax.errorbar(stats["margin"], stats["mean"], yerr=stats["std"].fillna(0), color=color, marker="o",
                            capsize=3, label=f"{name} (n per margin: {', '.join(map(str, stats['count']))})")
            else:
                ax.scatter([], [], color=color, label=f"{name} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    _floor_lines(axes, frame)
    for ax, title in zip(axes, ("EER (%)", "minDCF (p = 0.01)")):
        ax.set_xlabel("margin m")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(f"{study.name}: EER and minDCF vs margin")
    return figure


def _floor_lines(axes: Sequence[Any], frame: pd.DataFrame) -> None:
    """Dashed lines at the runs' floors: EER floors on the first axes, minDCF floors on the second."""
    groups = floor_groups(frame)
    for trials, floors, _ in groups:
        where = f" on {trials}" if len(groups) > 1 else ""
        for kind, name in FLOOR_NAMES.items():
            for ax, metric, unit in zip(axes, ("eer", "min_dcf"), (" %", "")):
                value = floors[f"floor_{kind}_{metric}"]
                if np.isfinite(value):
                    ax.axhline(value, color=FLOOR_COLORS[kind], linestyle="--", linewidth=1,
                               label=f"floor: {name}{where} ({value:.4g}{unit})")


def det_curves(curves: Sequence[Curve], title: str) -> Figure:
    """DET curves (miss vs false-alarm probability on normal-deviate axes), each with its EER point."""
    figure = Figure(figsize=(5.5, 5.5), layout="constrained")
    ax = figure.subplots()
    for color, curve in zip(_colors(), curves):
        fnr, fpr, _ = error_rates(curve.scores, curve.labels)
        value = eer_from_rates(fnr, fpr)
        ax.plot(_probit(fpr), _probit(fnr), color=color, label=f"{curve.label} (EER {value:.2f} %)")
        ax.plot(_probit(value / 100), _probit(value / 100), "o", color=color, markersize=4)
    ticks = _probit(np.asarray(DET_TICKS) / 100)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(ticks, [f"{t:g}" for t in DET_TICKS])
    limits = (_probit(0.0005), _probit(0.995))
    ax.set_xlim(limits)
    ax.set_ylim(limits)
    ax.plot(limits, limits, color="0.7", linewidth=0.8, linestyle=":")
    ax.set_xlabel("false-alarm probability (%)")
    ax.set_ylabel("miss probability (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title)
    return figure


def score_histograms(curves: Sequence[Curve], title: str) -> Figure:
    """Per run, histograms of target and non-target scores with dashed lines at their means."""
    figure = Figure(figsize=(5 * len(curves), 4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(curves), sharex=True, sharey=True))
    bins = np.linspace(min(c.scores.min() for c in curves), max(c.scores.max() for c in curves), 50)
    for ax, curve in zip(axes, curves):
        positive, negative = curve.scores[curve.labels == 1], curve.scores[curve.labels == 0]
        for values, color, name in ((positive, "tab:green", "positive"), (negative, "tab:red", "negative")):
            ax.hist(values, bins=bins, density=True, alpha=0.5, color=color, label=f"{name} (mean {values.mean():.4f})")
            ax.axvline(values.mean(), color=color, linestyle="--")
        ax.set_title(f"{curve.label}\nmean gap {positive.mean() - negative.mean():.3g}", fontsize=10)
        ax.set_xlabel("trial score (cosine)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("density")
    figure.suptitle(title)
    return figure


def learning_curves(histories: Sequence[tuple[str, pd.DataFrame]], title: str) -> Figure:
    """EER per epoch, one line per run."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    for color, (label, history) in zip(_colors(len(histories)), histories):
        ax.plot(history["epoch"], history["value"], marker="o", markersize=3, color=color, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("EER (%)")
    ax.grid(alpha=0.3)
    if len(histories) <= 16:
        ax.legend(fontsize=7)
    ax.set_title(title)
    return figure


def save(figure: Figure, folder: Path, stem: str) -> list[Path]:
    """Write `stem`.png and `stem`.pdf into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    for path in paths:
        figure.savefig(path, dpi=150)
    return paths


def baseline_and_best(study: search_spaces.Study, frame: pd.DataFrame, group: str) -> tuple[pd.Series | None, pd.Series | None]:
    """Within one framework line: the best run at the smallest margin run (0 in the paper's grids) and the best
    run with a larger margin; None where the line has no such run."""
    runs = ranked_runs(study, frame[frame.apply(group_name, axis=1) == group])
    if runs.empty:
        return None, None
    smallest = runs["margin"].min()
    base, larger = runs[runs["margin"] == smallest], runs[runs["margin"] > smallest]
    return base.iloc[0], (larger.iloc[0] if len(larger) else None)


def run_label(run: pd.Series) -> str:
    return f"{group_name(run)}, m={run['margin']:.4g}, seed {int(run['seed'])} ({run['trial_id']})"


def study_figures(name: str, uri: str | None, out: str | Path, launch: str | None = None,
                  chosen: Sequence[str] = (), log: bool = True) -> tuple[list[Path], list[str]]:
    """Every figure of study `name` into `out`; logged to the newest launch's parent run unless `log` is False.
    `chosen`: trial or run ids for the DET curves (a chosen run without scores is an error; a default one is
    skipped with a note). Returns the files and notes."""
    study = search_spaces.load(name)
    runs = load_runs(name, uri, launch)
    frame = runs.complete
    folder, paths, notes = Path(out), [], []
    if frame.empty:
        raise RunsError(f"study {name} has no completed run to plot")
    paths += save(metric_vs_margin(frame, study), folder, f"{name}_eer_vs_margin")

    selected = _select(frame, chosen) if chosen else _default_det_runs(study, frame)
    curves = [c for c in (_curve(runs, run, notes, strict=bool(chosen)) for _, run in selected.iterrows()) if c]
    if curves:
        paths += save(det_curves(curves, f"{name}: DET curves"), folder, f"{name}_det")
    else:
        notes.append("no DET curves: none of the chosen runs has stored scores")

    best = ranked_runs(study, frame)
    zero, top = baseline_and_best(study, frame, group_name(best.iloc[0]))
    if zero is None or top is None:
        notes.append(f"no score histograms: the {group_name(best.iloc[0])} runs have a single margin value")
    else:
        pair = [_curve(runs, run, notes, strict=False) for run in (zero, top)]
        if all(pair):
            title = (f"{name}: trial scores, margin {zero['margin']:.4g} vs the best run with a larger margin "
                     f"({group_name(top)})")
            paths += save(score_histograms(pair, title), folder, f"{name}_score_histograms")

    histories = [(run_label(run), metric_history(runs.uri, run["run_id"], "eer")) for _, run in runs.finished.iterrows()]
    histories = [(label, h) for label, h in histories if len(h)]
    if histories:
        paths += save(learning_curves(histories, f"{name}: EER per epoch"), folder, f"{name}_learning_curves")
    if log:
        parent = runs.latest_launch
        log_figures(runs.uri, parent["parent_run_id"], paths)
        notes.append(f"figures logged to parent run {parent['parent_run_id']} ({parent['launch']}) under figures/")
    return paths, notes


def _default_det_runs(study: search_spaces.Study, frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for group in sorted(set(frame.apply(group_name, axis=1))):
        rows += [run for run in baseline_and_best(study, frame, group) if run is not None]
    return pd.DataFrame(rows)


def _select(frame: pd.DataFrame, chosen: Sequence[str]) -> pd.DataFrame:
    picked = frame[frame["trial_id"].isin(chosen) | frame["run_id"].isin(chosen)]
    unknown = sorted(set(chosen) - set(picked["trial_id"]) - set(picked["run_id"]))
    if unknown:
        raise RunsError(f"no completed run with trial or run id {', '.join(unknown)}; "
                            f"completed trials: {', '.join(frame['trial_id'])}")
    return picked


def _curve(runs: Runs, run: pd.Series, notes: list[str], strict: bool) -> Curve | None:
    try:
        scores, labels = load_scores(runs.uri, run)
    except MissingScores as error:
        if strict:
            raise
        notes.append(f"skipped: {error}")
        return None
    return Curve(run_label(run), scores, labels)


def _probit(p: Any) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.vectorize(NormalDist().inv_cdf)(clipped)


def _colors(n: int = 10) -> list[Any]:
    if n <= 10:
        return list(colormaps["tab10"].colors)
    return [colormaps["viridis"](x) for x in np.linspace(0, 0.95, n)]
