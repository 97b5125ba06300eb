"""Tables from a real MLflow store (paper_table2, margins 0 and 0.1, seeds 1 and 2), checked against the runs
as MLflow itself returns them and against paper.md."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.table_layouts import TABLE4
from analysis.tables import study_tables
from tests.analysis.conftest import SEEDS
from tests.analysis.paper import TABLES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tables(store):
    return {t.name: t for t in study_tables(store.study, store.uri, resamples=200)}


def test_the_table_has_exactly_the_studys_configurations(tables, mlflow_runs):
    table = tables["table"].data
    assert list(zip(table["Loss"], table["Margin"])) == [("L^(Q)_NT-Xent", "0"), ("L^(Q)_NT-Xent-AM", "0.1")]
    assert list(table["n"]) == [len(SEEDS), len(SEEDS)]
    trials = [t for cell in table["trials"] for t in cell.split()]
    assert sorted(trials) == sorted(mlflow_runs["tags.trial_id"])  # every run in exactly one row
    assert list(tables["runs"].data["trial_id"]) == sorted(mlflow_runs["tags.trial_id"])


def test_cells_are_mean_and_std_over_seeds_of_the_runs_metrics(tables, mlflow_runs):
    table, text = tables["table"].data, tables["table"].display
    for i, margin in enumerate((0.0, 0.1)):
        runs = mlflow_runs[mlflow_runs["params.margin"].astype(float) == margin]
        assert sorted(runs["params.seed"].astype(int)) == list(SEEDS)
        for metric, digits in (("eer", 2), ("min_dcf", 4)):
            values = runs[f"metrics.{metric}"].to_numpy()
            mean, std = values.mean(), values.std(ddof=1)
            assert table[f"{metric}_mean"][i] == pytest.approx(mean, abs=1e-12)
            assert table[f"{metric}_std"][i] == pytest.approx(std, abs=1e-12)
            assert table[f"{metric}_n"][i] == len(SEEDS)
        mark = " †" if table["learned"][i] == False else ""  # noqa: E712 (tiny runs: flagged near their floor)
        assert text["EER (%) ours"][i] == f"{runs['metrics.eer'].mean():.2f} ± {runs['metrics.eer'].std(ddof=1):.2f}{mark}"


def test_paper_column_and_difference(tables):
    table = tables["table"].data
    assert [(l, m, e, d) for l, m, e, d in zip(table["Loss"], table["Margin"], table["eer_paper"],
                                               table["min_dcf_paper"])] == TABLES[2]
    assert np.allclose(table["eer_diff"], table["eer_mean"] - table["eer_paper"])
    assert np.allclose(table["min_dcf_diff"], table["min_dcf_mean"] - table["min_dcf_paper"])
    assert list(tables["table"].display["EER (%) paper"]) == ["9.59", "9.36"]


def test_every_run_has_its_metrics_and_a_bootstrap_interval(tables, mlflow_runs):
    runs = tables["runs"].data.set_index("trial_id")
    logged = mlflow_runs.set_index("tags.trial_id")
    for trial, run in runs.iterrows():
        assert run["eer"] == logged.loc[trial, "metrics.eer"] and run["min_dcf"] == logged.loc[trial, "metrics.min_dcf"]
        assert run["seed"] == int(logged.loc[trial, "params.seed"])
        assert run["eer_ci_low"] <= run["eer"] <= run["eer_ci_high"] and run["eer_ci_high"] > run["eer_ci_low"]


def test_table4_quotes_the_literature_fills_ours_from_runs_and_shows_what_was_not_run_as_missing(store, mlflow_runs):
    (table,) = study_tables(TABLE4, store.uri)
    data, text = table.data, table.display
    quoted = [(m, l, e, None if math.isnan(d) else d)
              for m, l, e, d in zip(data["Method"], data["Loss"], data["eer_paper"], data["min_dcf_paper"])]
    assert quoted == TABLES[4]
    moco = mlflow_runs[mlflow_runs["params.margin"].astype(float) == 0.1]
    assert data["eer_mean"][4] == pytest.approx(moco["metrics.eer"].mean()) and data["n"][4] == len(SEEDS)
    assert data["n"][3] == 0 and math.isnan(data["eer_mean"][3])  # paper_table1 was never run in this store
    assert text["EER (%) ours"][3] == "missing" and text["minDCF_0.01 ours"][3] == "missing"
    assert list(text["EER (%) ours"][:3]) == ["n/a"] * 3 and text["minDCF_0.01 paper"][0] == "–"
    assert any("no runs of paper_table1" in note for note in table.notes)


def test_command_writes_markdown_latex_and_csv(store, tmp_path, capsys):
    for fmt, suffix in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
        code = main(["tables", store.study, "--format", fmt, "--out", str(tmp_path), "--tracking-uri", store.uri,
                     "--bootstrap", "50"])
        assert code == 0
        assert sorted(p.name for p in tmp_path.glob(f"*.{suffix}")) == \
            [f"{store.study}_runs.{suffix}", f"{store.study}_table.{suffix}"]
    markdown = (tmp_path / f"{store.study}_table.md").read_text()
    assert markdown.startswith("### Table 2 — effect of additive margin on MoCo (paper A)")
    assert "| L^(Q)_NT-Xent-AM | 0.1" in markdown
    latex = (tmp_path / f"{store.study}_table.tex").read_text()
    assert "\\toprule" in latex and "\\bottomrule" in latex and "$\\pm$" in latex
    csv = pd.read_csv(tmp_path / f"{store.study}_table.csv")
    assert list(csv["eer_paper"]) == [9.59, 9.36] and list(csv["n"]) == [2, 2]

    assert main(["tables", store.study, "--tracking-uri", store.uri, "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    assert "### Table 2" in printed and "### paper_table2 — every run" in printed


def test_unknown_store_or_study_is_a_clear_error(store, tmp_path, capsys):
    assert main(["tables", "paper_table2", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not (tmp_path / "none.db").exists()
    assert main(["tables", "paper_table1", "--tracking-uri", store.uri]) == 2
    assert "has no experiment 'paper_table1'" in capsys.readouterr().err
    assert main(["summary", store.study, "--tracking-uri", store.uri, "--launch", "nope"]) == 2
    assert "has no launch 'nope'" in capsys.readouterr().err


def test_summary_names_the_trials_best_run_and_compute(store, mlflow_runs, capsys):
    assert main(["summary", store.study, "--tracking-uri", store.uri]) == 0
    text = capsys.readouterr().out
    best = mlflow_runs.loc[mlflow_runs["metrics.eer"].idxmin()]
    assert f"trials   {len(mlflow_runs)}: {len(mlflow_runs)} completed" in text
    assert f"best     {best['tags.trial_id']} (margin={float(best['params.margin']):g}" in text
    assert f"EER {best['metrics.eer']:.2f} %" in text and "[95% CI" in text
    assert "compute  " in text and "Table 2 — effect of additive margin on MoCo" in text
    assert re.search(r"^  margin=0\.1 vs margin=0: ΔEER [-+]?\d+\.\d\d \[.*\] points, ΔminDCF .*, 2 seeds; ", text, re.M)
    assert len(text.splitlines()) < 40  # one screen
