"""Figures from a real MLflow store: files that are real images, logged to the parent run; missing scores."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from analysis.__main__ import main
from analysis.runs import SCORES_ARTIFACT, load_runs
from study.tracking.store import client

pytestmark = pytest.mark.slow
STEMS = ("eer_vs_margin", "det", "score_histograms", "learning_curves")


def test_figures_are_non_empty_png_and_pdf_files_logged_to_the_parent_run(store, tmp_path, capsys):
    out = tmp_path / "figures"
    assert main(["figures", store.study, "--out", str(out), "--tracking-uri", store.uri]) == 0
    expected = {f"{store.study}_{stem}.{suffix}" for stem in STEMS for suffix in ("png", "pdf")}
    assert {p.name for p in out.iterdir()} == expected
    for stem in STEMS:
        png = out / f"{store.study}_{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        pixels = matplotlib.image.imread(png)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 300
        assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 20  # drawn, not blank
        pdf = (out / f"{store.study}_{stem}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 5_000
    runs = load_runs(store.study, store.uri)
    parent = runs.latest_launch["parent_run_id"]
    logged = {Path(a.path).name for a in client(store.uri).list_artifacts(parent, "figures")}
    assert expected <= logged
    assert f"figures logged to parent run {parent}" in capsys.readouterr().err


def test_a_run_without_its_scores_artifact_is_named_in_a_clear_message(store, tmp_path, capsys):
    runs = load_runs(store.study, store.uri)
    run = runs.complete.iloc[0]
    artifact = Path(run["artifact_uri"].removeprefix("file://")) / SCORES_ARTIFACT
    hidden = artifact.with_name("hidden.npz")
    artifact.rename(hidden)
    try:
        code = main(["figures", store.study, "--runs", run["trial_id"], "--out", str(tmp_path), "--no-log",
                     "--tracking-uri", store.uri])
        error = capsys.readouterr().err
        assert code == 2
        assert f"run {run['run_id']} (trial {run['trial_id']}" in error and f"no {SCORES_ARTIFACT} artifact" in error

        assert main(["tables", store.study, "--format", "csv", "--out", str(tmp_path), "--bootstrap", "50",
                     "--tracking-uri", store.uri]) == 0  # the tables still come, without that run's interval
        capsys.readouterr()
        assert main(["tables", store.study, "--bootstrap", "50", "--tracking-uri", store.uri]) == 0
        printed = capsys.readouterr().out
        line = next(l for l in printed.splitlines() if l.startswith(f"| {run['trial_id']}"))
        assert "missing" in line
        assert f"- run {run['run_id']} (trial {run['trial_id']}, status FINISHED) has no {SCORES_ARTIFACT}" in printed
    finally:
        hidden.rename(artifact)


def sweep_runs(temperatures: list[float]):
    """Six completed runs of margin_sweep as `load_runs` types them (configs and EERs only: no store is read)."""
    import pandas as pd

    from analysis.runs import Runs

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "trial_id": [f"t{i}" for i in range(6)], "run_id": [f"r{i}" for i in range(6)],
        "status": "FINISHED", "stopped_early": False, "start": pd.date_range("2026-11-29", periods=6, freq="min"),
        "framework": ["simclr", "moco"] * 3, "symmetric": True, "margin": rng.uniform(0, 0.5, 6),
        "temperature": temperatures, "seed": 1717, "eer": rng.uniform(15, 25, 6), "min_dcf": rng.uniform(0.9, 1, 6),
    })
    return Runs("margin_sweep", "sqlite:///unused.db", frame, pd.DataFrame({"profile": ["cpu"]}), pd.DataFrame())


def test_an_optuna_study_gets_optuna_s_figures_and_temperatures_as_colours(tmp_path):
    import search_spaces
    from analysis.figures import OPTUNA_PLOTS, metric_vs_margin, optuna_figures

    study = search_spaces.load("margin_sweep")
    runs = sweep_runs([0.01, 0.02, 0.04, 0.08, 0.12, 0.2])
    notes: list[str] = []
    paths = optuna_figures(study, runs, tmp_path, ("png",), 60, notes)
    assert [p.name for p in paths] == [f"margin_sweep_optuna_{name}.png" for name in OPTUNA_PLOTS] and notes == []
    for path in paths:
        pixels = matplotlib.image.imread(path)
        assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 20  # drawn, not blank
    assert len(metric_vs_margin(runs.complete, study).axes) == 3, "two panels and a temperature colour bar"
    same = sweep_runs([1 / 30] * 6)
    assert len(metric_vs_margin(same.complete, study).axes) == 2, "one temperature: no colour bar"
    one = dataclasses.replace(same, table=same.table.head(1))
    assert optuna_figures(study, one, tmp_path, ("png",), 60, notes) == []
    assert notes == ["no Optuna figures: 1 completed run(s), searched params varying: none"]
