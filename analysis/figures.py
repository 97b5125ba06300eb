"""A study's figures from its runs (matplotlib, Agg; each saved as PNG and PDF).

- EER and minDCF versus margin, one line per framework (SimCLR symmetric / non-symmetric, MoCo), every seed shown;
- DET curves of chosen runs, overlaid (default: per framework, the best run at margin 0 and the best with a margin);
- positive vs negative trial-score histograms with their means, margin 0 vs the best margin (paper A, Figure 5),
  in the framework of the best run (its smallest margin stands in for 0 where no run has margin 0);
- learning curves: EER per epoch of every run (the training loss per epoch when EER was evaluated once);
- for an Optuna study, Optuna's own figures: optimisation history, parameter importances, slice and contour plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np
import optuna
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm
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
MARKERS = ("o", "s", "^", "D", "v")
OPTUNA_PLOTS = ("optimization_history", "param_importances", "slice", "contour")
"""Optuna's own matplotlib figures drawn for an Optuna study (`optuna.visualization.matplotlib.plot_<name>`)."""


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
    and for a grid study the mean over seeds is joined, with ±1 standard deviation bars. When the runs' temperatures
    differ (an Optuna sweep), a dot's colour is its temperature and its marker its framework line. The floors of the
    runs' trial list (trivial statistic, untrained encoder) are dashed horizontal lines, labelled in the legend."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2)
    groups = frame.assign(group=frame.apply(group_name, axis=1))
    temperatures = frame["temperature"].astype(float) if "temperature" in frame else pd.Series(dtype=float)
    by_temperature = temperatures.nunique() > 1
    norm = LogNorm(temperatures.min(), temperatures.max()) if by_temperature else None
    for (color, marker), (name, runs) in zip(zip(_colors(), MARKERS), groups.groupby("group", sort=True)):
        for ax, metric in zip(axes, ("eer", "min_dcf")):
            if by_temperature:  # colour = temperature, marker = framework line
                dots = ax.scatter(runs["margin"], runs[metric], c=runs["temperature"].astype(float), cmap="viridis",
                                  norm=norm, marker=marker, s=40, edgecolors="0.2", linewidths=0.5,
                                  label=f"{name} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
                continue
            ax.scatter(runs["margin"], runs[metric], color=color, alpha=0.45, s=18)
            if study.grid:
                stats = runs.groupby("margin")[metric].agg(["mean", "std", "count"]).reset_index()
                ax.errorbar(stats["margin"], stats["mean"], yerr=stats["std"].fillna(0), color=color, marker="o",
                            capsize=3, label=f"{name} (n per margin: {', '.join(map(str, stats['count']))})")
            else:
                ax.scatter([], [], color=color, label=f"{name} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    if by_temperature:
        figure.colorbar(dots, ax=list(axes), label="temperature τ (log scale)")
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


def learning_curves(histories: Sequence[tuple[str, pd.DataFrame]], title: str, ylabel: str = "EER (%)",
                    log_scale: bool = False) -> Figure:
    """A metric per epoch (EER by default), one line per run; `log_scale` for losses of different scales (the
    NT-Xent loss grows with 1 / temperature)."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    for color, (label, history) in zip(_colors(len(histories)), histories):
        ax.plot(history["epoch"], history["value"], marker="o", markersize=3, color=color, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(histories) <= 16:
        ax.legend(fontsize=7)
    ax.set_title(title)
    return figure


FORMATS = ("png", "pdf")
DPI = 150


def save_figure(figure: Figure, folder: Path, stem: str, formats: Sequence[str] = FORMATS, dpi: int = DPI) -> list[Path]:
    """Write `stem`.png and `stem`.pdf (or `formats`) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{suffix}" for suffix in formats]
    for path in paths:
        figure.savefig(path, dpi=dpi)
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
                  chosen: Sequence[str] = (), log: bool = True, formats: Sequence[str] = FORMATS,
                  dpi: int = DPI) -> tuple[list[Path], list[str]]:
    """Every figure of study `name` into `out`, in `formats`; logged to the newest launch's parent run unless `log`
    is False. `chosen`: trial or run ids for the DET curves (a chosen run without scores is an error; a default one
    is skipped with a note). Returns the files and notes."""
    study = search_spaces.load(name)
    runs = load_runs(name, uri, launch)
    frame = runs.complete
    folder, paths, notes = Path(out), [], []

    def save(figure: Figure, stem: str) -> list[Path]:
        return save_figure(figure, folder, stem, formats, dpi)

    if frame.empty:
        raise RunsError(f"study {name} has no completed run to plot")
    paths += save(metric_vs_margin(frame, study), f"{name}_eer_vs_margin")

    selected = _select(frame, chosen) if chosen else _default_det_runs(study, frame)
    curves = [c for c in (_curve(runs, run, notes, strict=bool(chosen)) for _, run in selected.iterrows()) if c]
    if curves:
        paths += save(det_curves(curves, f"{name}: DET curves"), f"{name}_det")
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
            paths += save(score_histograms(pair, title), f"{name}_score_histograms")

    if study.search:
        paths += optuna_figures(study, runs, folder, formats, dpi, notes)
    histories = _histories(runs, "eer")
    if histories and max(len(h) for _, h in histories) > 1:
        paths += save(learning_curves(histories, f"{name}: EER per epoch"), f"{name}_learning_curves")
    elif histories := _histories(runs, "loss"):  # EER evaluated once per run: a curve needs the loss
        figure = learning_curves(histories, f"{name}: training loss per epoch\n(EER was evaluated at the end only)",
                                 "training loss", log_scale=True)
        paths += save(figure, f"{name}_learning_curves")
    if log:
        parent = runs.latest_launch
        log_figures(runs.uri, parent["parent_run_id"], paths)
        notes.append(f"figures logged to parent run {parent['parent_run_id']} ({parent['launch']}) under figures/")
    return paths, notes


def optuna_figures(study: search_spaces.Study, runs: Runs, folder: Path, formats: Sequence[str], dpi: int,
                   notes: list[str]) -> list[Path]:
    """Optuna's figures of an Optuna study's completed runs (as an in-memory Optuna study, in start order):
    optimisation history, parameter importances (fANOVA), slice and contour plots of the searched parameters.
    Conditional parameters (e.g. `queue_size`) are left out: Optuna's plots take one space for all trials."""
    import warnings

    import optuna.visualization.matplotlib as plots
    from matplotlib import pyplot

    from analysis.importance import optuna_study, searched_params

    frame = runs.complete.sort_values("start")
    conditions = study.conditions(runs.profile)
    params = [p for p in searched_params(study, runs.profile) if p not in conditions and frame[p].nunique() > 1]
    if len(frame) < 2 or not params:
        notes.append(f"no Optuna figures: {len(frame)} completed run(s), searched params varying: {params or 'none'}")
        return []
    created = optuna_study(study, frame, params, runs.profile)
    target = {"eer": "EER (%)", "min_dcf": "minDCF"}.get(study.metric, study.metric)
    draw = {
        "optimization_history": lambda: plots.plot_optimization_history(created, target_name=target),
        "param_importances": lambda: plots.plot_param_importances(
            created, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=params, target_name=target),
        "slice": lambda: plots.plot_slice(created, params=params, target_name=target),
        "contour": lambda: plots.plot_contour(created, params=params, target_name=target) if len(params) > 1 else None,
    }
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is "experimental"
        for name in OPTUNA_PLOTS:
            drawn = draw[name]()
            if drawn is None:
                continue
            figure = np.atleast_1d(drawn).ravel()[0].get_figure()
            if name == "contour":
                figure.set_size_inches(3.2 * len(params) + 1.5, 3 * len(params))
            figure.suptitle(f"{study.name}: {name.replace('_', ' ')} (Optuna, {len(frame)} completed runs)")
            if name == "param_importances":
                figure.tight_layout()  # Optuna leaves no room for the parameter names
            paths += save_figure(figure, folder, f"{study.name}_optuna_{name}", formats, dpi)
            pyplot.close(figure)  # Optuna draws with pyplot, which keeps every figure until closed
    return paths


def _histories(runs: Runs, metric: str) -> list[tuple[str, pd.DataFrame]]:
    """(label, per-epoch values of `metric`) of every finished run that logged it."""
    found = [(run_label(run), metric_history(runs.uri, run["run_id"], metric)) for _, run in runs.finished.iterrows()]
    return [(label, history) for label, history in found if len(history)]


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
