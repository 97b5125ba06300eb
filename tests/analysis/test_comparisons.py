"""Paired differences in the tables and the summary, from a real MLflow store written the way study/tracking
writes it (experiment, launch parent runs, trial child runs with params and scores.npz), with scores made up."""

from __future__ import annotations

import re
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from analysis.__main__ import main
from analysis.comparisons import speaker_unit
from analysis.runs import RunsError
from analysis.summary import study_summary
from analysis.tables import study_tables
from study.tracking.runs import LAUNCH_TAG, PARENT_TAG, RUN_NAME_TAG, SCORES_ARTIFACT, STUDY_TAG, TRIAL_TAG
from study.tracking.store import client
from trainables.manifest import read_trials
from trainables.metrics import eer, min_dcf

STUDY = "paper_table2"
SEEDS = (1, 2)
RESAMPLES = 200


def write_trials(folder: Path, speakers: int = 12, utterances: int = 3) -> Path:
    """Every pair of `speakers` x `utterances` files: targets within a speaker, non-targets across."""
    names = [f"spk{s:02d}/u{u}.wav" for s in range(speakers) for u in range(utterances)]
    lines = [f"{int(a[:5] == b[:5])} {a} {b}" for a, b in combinations(names, 2)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trials.txt").write_text("\n".join(lines) + "\n")
    return folder / "trials.txt"


def made_up_scores(labels: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """'overlap': targets N(1, 1) against non-targets N(0, 1); 'separate': every target above every non-target."""
    rng = np.random.default_rng(seed)
    if kind == "separate":
        return np.where(labels == 1, 10.0, -10.0) + rng.random(labels.size)
    return rng.normal(labels.astype(float), 1.0)


def add_launch(uri: str, name: str, data_root: Path, runs: list[tuple[float, int, np.ndarray, str]],
               study: str = STUDY, config: dict[str, str] | None = None) -> None:
    """One launch of `study`: a parent run and per (margin, seed, scores, trial list) a finished trial run,
    MoCo at tau = 1/30 unless `config` says otherwise."""
    store = client(uri)
    experiment = store.get_experiment_by_name(study)
    experiment_id = experiment.experiment_id if experiment else store.create_experiment(study)
    parent = store.create_run(experiment_id, tags={LAUNCH_TAG: name, "profile": "cpu", RUN_NAME_TAG: name})
    for i, (margin, seed, scores, trials) in enumerate(runs):
        labels = np.array([t.label for t in read_trials(data_root / trials)])
        run = store.create_run(experiment_id, tags={PARENT_TAG: parent.info.run_id, TRIAL_TAG: f"{name}_{i}",
                                                    STUDY_TAG: study})
        run_id = run.info.run_id
        params = {"framework": "moco", "symmetric": "True", "margin": str(margin), "temperature": str(1 / 30),
                  "seed": str(seed), "data_root": str(data_root), "trials": trials, **(config or {})}
        for key, value in params.items():
            store.log_param(run_id, key, value)
        store.log_metric(run_id, "eer", eer(scores, labels), step=1)
        store.log_metric(run_id, "min_dcf", min_dcf(scores, labels), step=1)
        store.log_metric(run_id, "epoch", 1, step=1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / SCORES_ARTIFACT
            np.savez_compressed(path, scores=scores, labels=labels)
            store.log_artifact(run_id, str(path))
        store.set_terminated(run_id, "FINISHED")
    store.set_terminated(parent.info.run_id, "FINISHED")


@pytest.fixture(scope="module")
def fake_store(tmp_path_factory):
    """Launches: 'separate' (margin 0.1 separates strictly, margin 0 overlaps), 'identical' (same scores),
    'two_lists' (margin 0.1 scored on another copy of the list), 'gone' (its trial list deleted afterwards)."""
    folder = tmp_path_factory.mktemp("paired-store")
    uri = f"sqlite:///{folder}/mlflow.db"
    data = folder / "data"
    labels = np.array([t.label for t in read_trials(write_trials(data))])
    (data / "other.txt").write_text((data / "trials.txt").read_text())
    overlap = {s: made_up_scores(labels, "overlap", s) for s in SEEDS}
    separate = {s: made_up_scores(labels, "separate", s) for s in SEEDS}
    add_launch(uri, "separate", data, [(m, s, (overlap if m == 0 else separate)[s], "trials.txt")
                                       for m in (0.0, 0.1) for s in SEEDS])
    add_launch(uri, "identical", data, [(m, s, overlap[s], "trials.txt") for m in (0.0, 0.1) for s in SEEDS])
    add_launch(uri, "two_lists", data, [(0.0, 1, overlap[1], "trials.txt"), (0.1, 1, separate[1], "other.txt")])
    gone = folder / "gone"
    write_trials(gone)
    add_launch(uri, "gone", gone, [(m, 1, overlap[1], "trials.txt") for m in (0.0, 0.1)])
    (gone / "trials.txt").unlink()
    simclr = {"framework": "simclr"}
    add_launch(uri, "sweep", data, [(0.3, 1, separate[1], "trials.txt"), (0.1, 1, overlap[1], "trials.txt")],
               "margin_sweep", simclr)
    add_launch(uri, "sweep_moco", data, [(0.1, 1, overlap[2], "trials.txt")], "margin_sweep")
    return uri, labels, overlap, separate


def comparison_table(uri: str, launch: str):
    return next(t for t in study_tables(STUDY, uri, launch, resamples=RESAMPLES) if t.name == "table")


def test_a_strictly_better_config_has_a_negative_difference_whose_interval_excludes_zero(fake_store):
    uri, labels, overlap, separate = fake_store
    table = comparison_table(uri, "separate")
    data, text = table.data, table.display
    assert text["ΔEER vs ref [95% CI]"][0] == "ref" and text["ΔminDCF vs ref [95% CI]"][0] == "ref"
    expected_eer = np.mean([eer(separate[s], labels) - eer(overlap[s], labels) for s in SEEDS])
    expected_dcf = np.mean([min_dcf(separate[s], labels) - min_dcf(overlap[s], labels) for s in SEEDS])
    assert expected_eer < -10 and data["eer_delta"][1] == pytest.approx(expected_eer, abs=1e-9)
    assert data["min_dcf_delta"][1] == pytest.approx(expected_dcf, abs=1e-9)
    assert data["eer_delta_low"][1] <= data["eer_delta"][1] <= data["eer_delta_high"][1] < 0
    assert data["min_dcf_delta_high"][1] < 0 and data["delta_seeds"][1] == len(SEEDS)
    assert text["ΔEER vs ref [95% CI]"][1] == (f"{data['eer_delta'][1]:+.2f} [{data['eer_delta_low'][1]:+.2f}, "
                                               f"{data['eer_delta_high'][1]:+.2f}]")


def test_identical_scores_differ_by_zero_with_interval_zero(fake_store):
    table = comparison_table(fake_store[0], "identical")
    assert list(table.display["ΔEER vs ref [95% CI]"]) == ["ref", "0.00 [0.00, 0.00]"]
    assert list(table.display["ΔminDCF vs ref [95% CI]"]) == ["ref", "0.0000 [0.0000, 0.0000]"]
    assert [table.data[c][1] for c in ("eer_delta", "eer_delta_low", "eer_delta_high")] == [0.0, 0.0, 0.0]


def test_runs_on_different_trial_lists_are_refused(fake_store, capsys):
    with pytest.raises(RunsError, match="were scored on different trial lists"):
        comparison_table(fake_store[0], "two_lists")
    assert main(["tables", STUDY, "--tracking-uri", fake_store[0], "--launch", "two_lists", "--bootstrap", "20"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: runs two_lists_0 and two_lists_1 were scored on different trial lists")
    assert error.count("\n") == 1


def test_a_trial_list_gone_leaves_the_table_without_differences_and_says_so(fake_store):
    table = comparison_table(fake_store[0], "gone")
    assert "ΔEER vs ref [95% CI]" not in table.display and "eer_delta" not in table.data
    assert list(table.data["n"]) == [1, 1]  # the table itself is still there
    assert any(note.startswith("trial list not readable any more") and "not found" in note for note in table.notes)


def test_the_markdown_latex_and_csv_carry_the_columns(fake_store, tmp_path):
    uri = fake_store[0]
    for fmt in ("markdown", "latex", "csv"):
        assert main(["tables", STUDY, "--format", fmt, "--out", str(tmp_path), "--tracking-uri", uri,
                     "--launch", "identical", "--bootstrap", "20"]) == 0
    assert "| ref " in (tmp_path / f"{STUDY}_table.md").read_text()
    assert "$\\Delta$EER vs ref [95\\% CI]" in (tmp_path / f"{STUDY}_table.tex").read_text()
    assert "eer_delta_low" in (tmp_path / f"{STUDY}_table.csv").read_text().splitlines()[0]


def test_summary_states_each_comparison_in_one_line(fake_store):
    uri = fake_store[0]
    data = comparison_table(uri, "separate").data
    text = study_summary(STUDY, uri, "separate", resamples=RESAMPLES)
    line = next(line for line in text.splitlines() if line.startswith("  margin=0.1 vs margin=0:"))
    assert line == (f"  margin=0.1 vs margin=0: ΔEER {data['eer_delta'][1]:+.2f} [{data['eer_delta_low'][1]:+.2f}, "
                    f"{data['eer_delta_high'][1]:+.2f}] points, ΔminDCF {data['min_dcf_delta'][1]:+.4f} "
                    f"[{data['min_dcf_delta_low'][1]:+.4f}, {data['min_dcf_delta_high'][1]:+.4f}], 2 seeds; "
                    "EER and minDCF intervals exclude 0")
    same = study_summary(STUDY, uri, "identical", resamples=RESAMPLES)
    assert re.search(r"^  margin=0\.1 vs margin=0: ΔEER 0\.00 \[0\.00, 0\.00\] points, ΔminDCF 0\.0000 "
                     r"\[0\.0000, 0\.0000\], 2 seeds; no difference shown$", same, re.M)


def test_an_optuna_studys_best_trial_is_compared_with_the_paper_points(fake_store):
    uri, labels, overlap, separate = fake_store
    paired = next(t for t in study_tables("margin_sweep", uri, "all", resamples=RESAMPLES) if t.name == "paired")
    assert list(paired.display["Comparison"]) == [
        "best trial sweep_0 vs paper point framework=simclr, margin=0.1, temperature=0.03333",
        "best trial sweep_0 vs paper point framework=moco, margin=0.1, temperature=0.03333"]
    for i, reference in enumerate((overlap[1], overlap[2])):
        assert paired.data["eer_delta"][i] == pytest.approx(eer(separate[1], labels) - eer(reference, labels))
        assert paired.data["eer_delta_high"][i] < 0 and paired.data["delta_seeds"][i] == 1
    text = study_summary("margin_sweep", uri, "all", resamples=RESAMPLES)
    assert "  best trial sweep_0 vs paper point framework=moco, margin=0.1, temperature=0.03333: ΔEER -" in text


def test_speakers_are_the_first_folder_below_the_folders_every_name_shares():
    trials = read_trials("/work/shared/data/speechocean762/trials_dev.txt")
    names = [t.enrol for t in trials] + [t.test for t in trials]
    speaker = speaker_unit(names)
    assert all(speaker(n) == n.split("/")[0] for n in names) and len({speaker(n) for n in names}) == 40
    embedded = ["test/spk009/utt02.flac", "test/spk011/utt00.flac", "test/spk011/utt01.flac"]
    assert [speaker_unit(embedded)(n) for n in embedded] == ["spk009", "spk011", "spk011"]
