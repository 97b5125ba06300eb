"""`python -m study.run` end to end on a local Ray instance, with a real MLflow SQLite store read back by pandas."""

from __future__ import annotations

import json
import re
import time
from dataclasses import fields

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from search_spaces import load
from tests.study.conftest import run_study
from tests.study.processes import free_port
from trainables.config import TrainConfig


def child_runs(uri: str, study: str):
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[study], output_format="pandas")
    return runs[runs["tags.mlflow.parentRunId"].notna()], runs[runs["tags.mlflow.parentRunId"].isna()]


@pytest.mark.slow
def test_smoke_study_runs_every_trial_and_logs_it_to_mlflow(smoke_study, tmp_path):
    uri, output, left = smoke_study.uri, smoke_study.output, smoke_study.left
    assert smoke_study.code == 0, output
    assert "no dataset given: using the embedded corpus" in output
    assert f"mlflow ui --backend-store-uri {uri}" in output
    for noise in ("Configuration for experiment", "View detailed results here", "tensorboard --logdir",
                  "core_worker.cc", "Started a local Ray instance", "authentication_token_setup"):
        assert noise not in output, f"{noise!r} is Ray's, shown only with --verbose"
    # On a terminal: the live view, redrawn in place under the event lines, gone before the summary; the
    # workers' own epoch lines only with --verbose.
    assert re.search(r"\d/2 done, \d running, \d pending; \d+:\d\d elapsed", output), output
    assert re.search(r"  \w{8}  framework=\w+, margin=0\.\d.*  epoch [12]/2 .*loss \d+\.\d{3}  EER .*ETA \d+:\d\d", output)
    assert re.search(r"\x1b\[\d+F\x1b\[J\[\d\d:\d\d\] trial \w{8} done", output), "event lines erase the view first"
    assert " done, " not in output[output.index("study smoke:"):], "the view is cleared before the summary"
    assert not re.search(r"\(train_driver pid=\d+\S*\) epoch", output), output
    assert left == [], f"processes still running after the study ended: {left}"
    assert smoke_study.net.connections > 0 and smoke_study.net.outside == set(), smoke_study.net.outside
    assert smoke_study.net.wildcard_listeners == set(), "nothing listens on every interface (IPv4 or IPv6)"

    study = load("smoke")
    children, parents = child_runs(uri, "smoke")
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    assert len(children) == study.num_samples
    assert set(children["status"]) == {"FINISHED"}
    assert children["tags.trial_id"].nunique() == study.num_samples
    parent_id = parents.iloc[0]["run_id"]
    assert set(children["tags.mlflow.parentRunId"]) == {parent_id}

    for field in fields(TrainConfig):  # every config field is a param, same spelling
        assert f"params.{field.name}" in children.columns, field.name
    assert sorted(children["params.framework"]) == ["moco", "simclr"]  # the two points_to_evaluate
    assert sorted(children["params.margin"].astype(float)) == [0.1, 0.2]
    assert set(children["params.epochs"].astype(int)) == {study.fixed["epochs"]}
    for tag in ("tags.study", "tags.git_commit", "tags.data_fingerprint", "tags.world_size"):
        assert children[tag].notna().all(), tag
    assert set(children["tags.study"]) == {"smoke"}
    assert children["tags.data_fingerprint"].nunique() == 1
    assert ((children["metrics.eer"] >= 0) & (children["metrics.eer"] <= 100)).all()
    assert (children["metrics.min_dcf"] >= 0).all()
    best = parents.iloc[0]["metrics.best_eer"]
    assert best == pytest.approx(children["metrics.eer"].min())
    parent_id = parents.iloc[0]["run_id"]
    summary = open(MlflowClient(uri).download_artifacts(parent_id, "summary.txt", str(tmp_path))).read()
    assert summary.startswith("study smoke: 2 trial(s)") and f"EER {best:.3f}" in summary
    table = pd.read_csv(MlflowClient(uri).download_artifacts(parent_id, "trials.csv", str(tmp_path)), dtype={"trial_id": str})
    logged = dict(zip(children["tags.trial_id"], children["metrics.eer"]))
    assert set(table["state"]) == {"finished"} and dict(zip(table["trial_id"], table["eer"])) == pytest.approx(logged)

    client = MlflowClient(uri)
    for run_id in children["run_id"]:
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.step for m in history) == [1, 2]  # one value per epoch, step = epoch
        assert len(client.get_metric_history(run_id, "eer")) == 2  # eval_every=1
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {"config.json", "scores.npz", "checkpoint.json"} <= names
        config = json.loads(open(client.download_artifacts(run_id, "config.json", str(tmp_path))).read())
        assert TrainConfig.from_dict(config["config"]).epochs == 2
        scores = np.load(client.download_artifacts(run_id, "scores.npz", str(tmp_path)))
        assert scores["scores"].shape == scores["labels"].shape and set(np.unique(scores["labels"])) == {0, 1}
        reference = json.loads(open(client.download_artifacts(run_id, "checkpoint.json", str(tmp_path))).read())
        assert reference["checkpoint"].startswith(str(smoke_study.folder / "results"))


@pytest.mark.slow
def test_resume_after_the_driver_is_killed_finishes_without_rerunning_or_duplicating(tmp_path, start_study):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ("smoke", "--num-samples", "3", "--max-concurrent", "1", "--storage", str(tmp_path / "results"),
            "--tracking-uri", uri)
    first = start_study(*args)
    finished = _wait_for_finished_trial(uri, first, timeout=400)
    first.kill()  # SIGKILL: no chance to save anything
    first.stop()  # ends the local Ray instance it had started, orphaned now
    before = {row["tags.trial_id"]: (row["start_time"], row["end_time"]) for _, row in finished.iterrows()}

    code, output = run_study(start_study, *args, "--resume", "--verbose", timeout=600)
    assert code == 0, output
    assert "resuming" in output
    # Without a terminal the live view is logged as a block, its header on one stamped line.
    assert re.search(r"^\[\d\d:\d\d\] \d/3 done, \d running, \d pending; \d+:\d\d elapsed", output, re.M), output
    assert "View detailed results here" in output, "--verbose shows what Ray and Tune print"
    assert re.search(r"\(train_driver pid=\d+\S*\) epoch +\d/2  loss", output), "and the workers' epoch lines"

    children, parents = child_runs(uri, "smoke")
    assert len(parents) == 1, "the resumed launch must continue the same parent run"
    assert parents.iloc[0]["status"] == "FINISHED"
    # A trial started in the seconds before the kill, before Tune saved its state, is unknown to --resume: its
    # run is closed as lost, and a new trial takes its place.
    lost = children[children["tags.state"] == "lost"] if "tags.state" in children else children.iloc[:0]
    assert len(lost) <= 1 and set(lost["status"]) <= {"KILLED"}, lost
    assert all(f"trial {trial_id}: its run is marked lost" in output for trial_id in lost["tags.trial_id"])
    children = children.drop(lost.index)
    assert len(children) == 3 and children["tags.trial_id"].nunique() == 3, children[["tags.trial_id", "status"]]
    assert set(children["status"]) == {"FINISHED"}
    client = MlflowClient(uri)
    for _, row in children.iterrows():
        epochs = [m.step for m in client.get_metric_history(row["run_id"], "epoch")]
        assert sorted(epochs) == [1, 2], (row["tags.trial_id"], epochs)  # no epoch logged twice
        if row["tags.trial_id"] in before:  # finished before the kill: not rerun
            assert (row["start_time"], row["end_time"]) == before[row["tags.trial_id"]]

    code, output = run_study(start_study, *args, "--resume", "--set", "epochs=5", timeout=120)
    assert code == 2 and "--set epochs=5 (was 2)" in output  # a resumed launch keeps its plan


def _wait_for_finished_trial(uri: str, process, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.proc.poll() is None, "the study ended before it could be interrupted:\n" + process.output()
        try:
            children, _ = child_runs(uri, "smoke")
        except Exception:  # the store or experiment does not exist yet
            children = None
        if children is not None and len(children) and (children["status"] == "FINISHED").any():
            if len(children) < 3:
                return children[children["status"] == "FINISHED"]
        time.sleep(1.0)
    raise AssertionError("no trial finished in time:\n" + process.output())


def test_unreachable_tracking_server_is_reported_before_anything_starts(tmp_path, start_study):
    started = time.monotonic()
    code, output = run_study(start_study, "smoke", "--storage", str(tmp_path / "r"),
                             "--tracking-uri", f"http://127.0.0.1:{free_port()}", timeout=120)
    assert code == 2, output
    assert "cannot be reached" in output and "--tracking-uri" in output
    assert "Ray:" not in output and not (tmp_path / "r").exists()
    assert time.monotonic() - started < 60
