"""MLflow wiring against a real SQLite store: child runs, params, per-epoch metrics, tags, artifacts, resume."""

from __future__ import annotations

import dataclasses
import json
import socket
import time

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from study.tracking import provenance
from study.tracking import runs as tracking_runs
from study.tracking import store as mlflow_store
from study.tracking.settings import TrackingSettings
from tests.study.processes import free_port
from trainables.config import TrainConfig, build_config


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = mlflow_store.resolve_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = mlflow_store.prepare_experiment(uri, "unit")
    parent = tracking_runs.start_parent_run(uri, experiment_id, "launch-1", {"study": "unit"}, {"num_samples": 2})
    return TrackingSettings(tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent, study="unit",
                            git_commit="abc123")


@pytest.fixture
def paths(tmp_path):
    manifest = tmp_path / "train.csv"
    manifest.write_text("File,Speaker\na.flac,s1\n")
    trials = tmp_path / "trials.txt"
    trials.write_text("1 a.flac b.flac\n0 a.flac c.flac\n")
    return {"data_root": str(tmp_path), "train_manifest": str(manifest), "trials": str(trials), "noise_dir": "",
            "rir_dir": "", "embedded": False}


def trial_runs(store: TrackingSettings):
    """The child runs of a launch as a pandas DataFrame (mlflow.search_runs), one row per trial."""
    mlflow.set_tracking_uri(store.tracking_uri)
    return mlflow.search_runs(experiment_ids=[store.experiment_id], output_format="pandas",
                              filter_string=f"tags.`{tracking_runs.PARENT_TAG}` = '{store.parent_run_id}'")


def epoch_metrics(epoch: int, evaluated: bool) -> dict:
    metrics = {"epoch": epoch, "loss": 5.0 - epoch, "epoch_lr": 1e-3, "samples_per_s": 10.0, "step_s": 0.1,
               "seconds": 3.0 * epoch}
    if evaluated:
        metrics.update(eer=40.0 - epoch, min_dcf=0.9, eval_s=1.0)
    return metrics


def train_like_a_worker(store, cfg, paths, trial_id, epochs):
    trial = store.for_trial(trial_id, trial_id).on_workers(["127.0.0.3", "127.0.0.2"])
    run = tracking_runs.start_trial_run(trial, cfg, paths)
    for epoch in epochs:
        last = epoch == cfg.epochs
        scores = {"scores": np.array([0.9, 0.1, 0.8]), "labels": np.array([1, 0, 1], dtype=np.int8)} if last else None
        run.log_epoch(epoch_metrics(epoch, last), scores)
    if epochs and epochs[-1] == cfg.epochs:
        run.finish()
    return run


def test_a_trial_becomes_a_nested_child_run_with_params_metrics_tags_and_artifacts(store, paths, tmp_path):
    cfg = build_config("cpu", {"epochs": 3, "margin": 0.2})
    run = train_like_a_worker(store, cfg, paths, "trial_a", [1, 2, 3])

    runs = trial_runs(store)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["status"] == "FINISHED" and row["run_id"] == run.run_id
    for field in dataclasses.fields(TrainConfig):  # every field, same spelling, as a string
        assert row[f"params.{field.name}"] == str(getattr(cfg, field.name))
    assert float(row["params.margin"]) == 0.2 and int(row["params.epochs"]) == 3
    assert row["tags.study"] == "unit" and row["tags.trial_id"] == "trial_a" and row["tags.git_commit"] == "abc123"
    assert row["tags.data_fingerprint"] == provenance.data_fingerprint(paths)
    assert row["tags.world_size"] == "2" and row["tags.worker_nodes"] == "127.0.0.2,127.0.0.3"
    assert row["metrics.eer"] == 37.0 and row["metrics.epoch"] == 3

    client = MlflowClient(store.tracking_uri)
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "loss")] == [(1, 4.0), (2, 3.0), (3, 2.0)]
    assert [m.step for m in client.get_metric_history(run.run_id, "eer")] == [3]
    config = json.loads(open(client.download_artifacts(run.run_id, "config.json", str(tmp_path))).read())
    assert TrainConfig.from_dict(config["config"]) == cfg
    assert config["derived"]["crop_samples"] == cfg.crop_samples and config["data"]["trials"] == paths["trials"]
    scores = np.load(client.download_artifacts(run.run_id, "scores.npz", str(tmp_path)))
    assert scores["scores"].tolist() == [0.9, 0.1, 0.8] and scores["labels"].tolist() == [1, 0, 1]
    artifact_root = client.get_run(run.run_id).info.artifact_uri
    assert artifact_root.startswith(f"file://{tmp_path}/mlruns"), "artifacts live next to the store, by absolute path"


def test_a_resumed_trial_continues_its_run_without_duplicates(store, paths):
    cfg = build_config("cpu", {"epochs": 3})
    first = train_like_a_worker(store, cfg, paths, "trial_b", [1, 2])  # killed after epoch 2
    assert tracking_runs.finished_trial_metrics(store, "trial_b") is None
    again = train_like_a_worker(store, cfg, paths, "trial_b", [2, 3])  # resumed from the epoch-1 checkpoint
    assert again.run_id == first.run_id
    client = MlflowClient(store.tracking_uri)
    assert [m.step for m in client.get_metric_history(first.run_id, "loss")] == [1, 2, 3]
    runs = trial_runs(store)
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    done = tracking_runs.finished_trial_metrics(store, "trial_b")
    assert done["eer"] == 37.0 and done["epoch"] == 3


def test_an_attempt_cut_off_after_creating_its_run_gets_params_config_and_inputs_on_the_next(store, paths):
    """The background thread retries `start_trial_run` after a failed write (a locked SQLite store, a server
    that went away): the retry finds the run it created and logs what the first attempt did not."""
    client = MlflowClient(store.tracking_uri)
    created = client.create_run(store.experiment_id, tags={tracking_runs.PARENT_TAG: store.parent_run_id,
                                                           tracking_runs.TRIAL_TAG: "trial_cut"})
    cfg = build_config("cpu", {"epochs": 3})
    run = tracking_runs.start_trial_run(store.for_trial("trial_cut", "trial_cut"), cfg, paths)
    assert run.run_id == created.info.run_id
    logged = client.get_run(run.run_id)
    assert logged.data.params["epochs"] == "3"
    assert "config.json" in {a.path for a in client.list_artifacts(run.run_id)}
    inputs = {i.dataset.name: i.dataset.digest for i in logged.inputs.dataset_inputs}
    assert inputs == {"train.csv": provenance.data_fingerprints(paths)[1]["train_manifest"],
                      "trials.txt": provenance.data_fingerprints(paths)[1]["trials"]}
    tracking_runs.start_trial_run(store.for_trial("trial_cut", "trial_cut"), cfg, paths)  # a second retry
    assert len(client.get_run(run.run_id).inputs.dataset_inputs) == 2, "logged once"


def test_runs_left_open_are_closed_with_a_status(store, paths):
    cfg = build_config("cpu", {"epochs": 3})
    run = train_like_a_worker(store, cfg, paths, "trial_c", [1])
    tracking_runs.close_trial_run(store, "trial_c", "FINISHED", {"stopped_early": "true"})
    info = MlflowClient(store.tracking_uri).get_run(run.run_id)
    assert info.info.status == "FINISHED" and info.data.tags["stopped_early"] == "true"


def test_unfinished_runs_of_trials_tune_does_not_know_are_marked_lost(store, paths):
    cfg = build_config("cpu", {"epochs": 2})
    train_like_a_worker(store, cfg, paths, "done", [1, 2])
    train_like_a_worker(store, cfg, paths, "known", [1])
    train_like_a_worker(store, cfg, paths, "orphan", [1])
    train_like_a_worker(store, cfg, paths, "orphan_interrupted", [1])
    tracking_runs.interrupt_launch(store)  # KILLED + state=interrupted, as after Ctrl+C
    assert sorted(tracking_runs.mark_lost_runs(store, {"done", "known"})) == ["orphan", "orphan_interrupted"]
    runs = trial_runs(store).set_index("tags.trial_id")
    assert runs.loc["done", "status"] == "FINISHED" and runs.loc["known", "tags.state"] == "interrupted"
    for lost in ("orphan", "orphan_interrupted"):
        assert (runs.loc[lost, "status"], runs.loc[lost, "tags.state"]) == ("KILLED", "lost")
    assert tracking_runs.mark_lost_runs(store, {"done", "known"}) == []  # once


def test_data_fingerprint_follows_the_lists_and_the_audio(paths, tmp_path):
    (tmp_path / "a.flac").write_bytes(b"x" * 100)
    (tmp_path / "b.flac").write_bytes(b"y" * 100)
    first = provenance.data_fingerprint(paths)
    assert provenance.data_fingerprint(paths) == first
    (tmp_path / "b.flac").write_bytes(b"y" * 90)  # regenerated audio under the same name
    second = provenance.data_fingerprint(paths)
    assert second != first
    with open(paths["train_manifest"], "a") as handle:
        handle.write("c.flac,s2\n")
    assert provenance.data_fingerprint(paths) not in (first, second)


def test_tracking_uri_defaults_to_an_absolute_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_store.resolve_uri(None, tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert mlflow_store.resolve_uri("sqlite:///runs/x.db", tmp_path) == f"sqlite:///{tmp_path}/runs/x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert mlflow_store.resolve_uri(None, tmp_path) == "http://127.0.0.1:5000"
    assert mlflow_store.ui_command(f"sqlite:///{tmp_path}/mlflow.db") == f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db"


def test_unreachable_server_fails_fast_and_a_listening_one_passes():
    started = time.monotonic()
    with pytest.raises(mlflow_store.TrackingError, match="cannot be reached"):
        mlflow_store.check_reachable(f"http://127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 5
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        mlflow_store.check_reachable(f"http://127.0.0.1:{server.getsockname()[1]}")


def test_settings_round_trip_through_the_launch_record():
    settings = TrackingSettings(tracking_uri="sqlite:////r/mlflow.db", experiment_id="3", parent_run_id="p1",
                                study="smoke", git_commit="abc123")
    record = json.loads(json.dumps(settings.to_dict()))  # launch.json's "tracking"
    assert set(record) == {"tracking_uri", "experiment_id", "parent_run_id", "study", "git_commit"}
    assert TrackingSettings.from_dict(record) == settings
    trial = settings.for_trial("t1", "t1 margin=0.1").on_workers(["10.0.0.2", "10.0.0.1", "10.0.0.2"])
    assert (trial.launch, trial.world_size, trial.worker_nodes) == (settings, 3, ("10.0.0.1", "10.0.0.2"))
