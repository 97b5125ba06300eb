"""Floors in the analysis: the not-learned rule, a table built from runs with floors (Markdown, LaTeX, CSV), and
(slow, on the real store) the floors each run logged shown in the summary, the tables and the EER-vs-margin figure."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

import search_spaces
from analysis.floors import NOT_LEARNED_MARK, NOT_LEARNED_POINTS, learned
from analysis.render import render
from analysis.table_layouts import layout
from analysis.tables import comparison
from trainables.metrics import FLOOR_METRICS

FLOORS = {"floor_trivial_eer": 13.33, "floor_trivial_min_dcf": 0.7456, "floor_untrained_eer": 28.33,
          "floor_untrained_min_dcf": 0.9772}


def test_a_run_within_three_points_of_its_lower_floor_has_not_learned():
    assert NOT_LEARNED_POINTS == 3.0
    assert learned(10.0, (13.33, 28.33)) is True  # 3.33 points under the trivial statistic
    assert learned(10.5, (13.33, 28.33)) is False  # 2.83 points under it
    assert learned(20.0, (28.33, 13.33)) is False  # the lower floor counts, whichever comes first
    assert learned(20.0, (math.nan, 28.33)) is True  # an unknown floor is left out
    assert learned(40.0, (math.nan, 28.33)) is False
    assert learned(5.0, (math.nan, math.nan)) is None and learned(math.nan, (13.33, 28.33)) is None


def runs_frame(eers: list[tuple[float, float]], floors: dict | None = FLOORS) -> pd.DataFrame:
    """Runs of paper_table2 (margin, eer) with the given floors (None: runs logged before floors)."""
    rows = []
    for i, (margin, eer) in enumerate(eers):
        row = {"run_id": f"r{i}", "trial_id": f"t{i}", "margin": margin, "framework": "moco", "seed": i,
               "eer": eer, "min_dcf": 0.5, "data_root": "/data/speechocean762", "trials": "trials_dev.txt"}
        row.update(floors or {key: math.nan for key in FLOOR_METRICS})
        rows.append(row)
    return pd.DataFrame(rows)


def test_a_table_shows_the_floors_and_marks_the_row_whose_run_did_not_learn():
    frame = runs_frame([(0.0, 8.0), (0.0, 9.0), (0.1, 7.5), (0.1, 11.2)])  # 11.2 > 13.33 - 3
    table = comparison(layout("paper_table2"), {"paper_table2": frame})
    assert list(table.data["learned"]) == [True, False]
    assert list(table.data["floor_trivial_eer"]) == [13.33, 13.33]
    assert list(table.data["floor_untrained_eer"]) == [28.33, 28.33]
    assert table.display["EER (%) ours"][0] == "8.50 ± 0.71"
    assert table.display["EER (%) ours"][1] == f"9.35 ± 2.62 {NOT_LEARNED_MARK}"
    markdown = render(table, "markdown")
    assert ("Floors on trials_dev.txt: trivial statistic 13.33 % EER (minDCF 0.7456), untrained encoder 28.33 % EER "
            "(minDCF 0.9772)") in markdown
    assert f"{NOT_LEARNED_MARK} not learned: EER above the lower of the run's two floors minus 3 points" in markdown
    latex = render(table, "latex")
    assert r"9.35 $\pm$ 2.62 \dag{}" in latex and "% Floors on trials_dev.txt: trivial statistic 13.33 % EER" in latex
    csv = pd.read_csv(io.StringIO(render(table, "csv")))
    assert list(csv["learned"]) == [True, False] and list(csv["floor_trivial_eer"]) == [13.33, 13.33]


def test_runs_without_floors_are_neither_flagged_nor_cleared():
    table = comparison(layout("paper_table2"), {"paper_table2": runs_frame([(0.0, 30.0), (0.1, 31.0)], None)})
    assert list(table.data["learned"]) == [None, None]
    assert NOT_LEARNED_MARK not in "".join(table.display["EER (%) ours"])
    assert "floors: none logged by these runs (they predate floors)" in table.notes


def test_the_eer_vs_margin_figure_draws_both_floors_as_labelled_dashed_lines():
    from analysis.figures import metric_vs_margin

    figure = metric_vs_margin(runs_frame([(0.0, 8.0), (0.1, 7.5)]), search_spaces.load("paper_table2"))
    eer_axes, dcf_axes = figure.axes[:2]
    lines = {line.get_label(): line for line in eer_axes.get_lines() if line.get_label().startswith("floor")}
    assert set(lines) == {"floor: trivial statistic (13.33 %)", "floor: untrained encoder (28.33 %)"}
    assert all(line.get_linestyle() == "--" and set(line.get_ydata()) == {value}
               for line, value in zip(lines.values(), (13.33, 28.33)))
    legend = [text.get_text() for text in eer_axes.get_legend().get_texts()]
    assert "floor: trivial statistic (13.33 %)" in legend
    assert {line.get_label() for line in dcf_axes.get_lines()} >= {"floor: trivial statistic (0.7456)",
                                                                   "floor: untrained encoder (0.9772)"}


# --- the real store (slow: the session fixture runs paper_table2 with tiny trials)


@pytest.mark.slow
def test_every_run_logged_its_floors_at_each_evaluated_epoch(store, mlflow_runs):
    from study.tracking.store import client

    floors = mlflow_runs[[f"metrics.{key}" for key in FLOOR_METRICS]].to_numpy(dtype=float)
    assert np.isfinite(floors).all() and np.allclose(floors, floors[0])  # one floor per list and protocol
    trivial, untrained = floors[0, 0], floors[0, 2]
    assert 0 < trivial < 60 and 0 < untrained <= 100
    for run_id in mlflow_runs["run_id"]:
        steps = [m.step for m in client(store.uri).get_metric_history(run_id, "floor_trivial_eer")]
        evaluated = [m.step for m in client(store.uri).get_metric_history(run_id, "eer")]
        assert sorted(steps) == sorted(evaluated) and len(steps) == 2


@pytest.mark.slow
def test_the_summary_tables_and_figure_show_the_stores_floors(store, mlflow_runs, tmp_path):
    from analysis.figures import metric_vs_margin
    from analysis.runs import load_runs
    from analysis.summary import study_summary
    from analysis.tables import study_tables

    trivial = mlflow_runs["metrics.floor_trivial_eer"].iloc[0]
    untrained = mlflow_runs["metrics.floor_untrained_eer"].iloc[0]
    shown = f"trivial statistic {trivial:.2f} % EER"
    summary = study_summary(store.study, store.uri, resamples=0)
    assert f"floors   on trials.txt of the embedded corpus: {shown}" in summary
    assert f"untrained encoder {untrained:.2f} % EER" in summary
    flagged = [t for t, e in zip(mlflow_runs["tags.trial_id"], mlflow_runs["metrics.eer"])
               if e > min(trivial, untrained) - NOT_LEARNED_POINTS]
    if flagged:
        assert f"not learned: {len(flagged)} of {len(mlflow_runs)} trials ({', '.join(sorted(flagged))})" in summary
    else:
        assert f"all {len(mlflow_runs)} trials with floors learned" in summary
    tables = {t.name: t for t in study_tables(store.study, store.uri, resamples=0)}
    for name in ("table", "runs"):
        assert any(note.startswith(f"Floors on trials.txt of the embedded corpus: {shown}")
                   for note in tables[name].notes), name
    csv = pd.read_csv(io.StringIO(render(tables["runs"], "csv")))
    assert np.allclose(csv["floor_trivial_eer"], trivial) and np.allclose(csv["floor_untrained_eer"], untrained)
    assert sorted(csv.loc[~csv["learned"].astype(bool), "trial_id"]) == sorted(flagged)
    marked = [t for t, e in zip(tables["runs"].display["Trial"], tables["runs"].display["EER (%)"])
              if e.endswith(NOT_LEARNED_MARK)]
    assert sorted(marked) == sorted(flagged)
    figure = metric_vs_margin(load_runs(store.study, store.uri).complete, search_spaces.load(store.study))
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert f"floor: trivial statistic ({trivial:.4g} %)" in labels
    assert f"floor: untrained encoder ({untrained:.4g} %)" in labels
