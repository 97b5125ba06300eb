"""A trial's run written in the background, against a real `mlflow server` that is down, then back."""

from __future__ import annotations

import time

import numpy as np
from mlflow.tracking import MlflowClient

from study.tracking.background import BackgroundRun, send_until_done
from study.tracking.runs import start_trial_run
from study.tracking.settings import TrackingSettings
from trainables.config import TrainConfig


def epoch(n: int) -> dict:
    return {"epoch": n, "loss": 10.0 - n, "eer": 40.0 - n}


def test_epochs_logged_while_the_server_is_down_cost_nothing_and_arrive_once_when_it_is_back(mlflow_server):
    client = MlflowClient(mlflow_server.uri)
    experiment = client.create_experiment("smoke")
    parent = client.create_run(experiment).info.run_id
    tracking = TrackingSettings(mlflow_server.uri, experiment, parent, "smoke").for_trial("t1", "t1 run")
    cfg = TrainConfig()
    mlflow_server.kill()

    lines = []
    run = BackgroundRun(tracking, cfg, {}, log=lines.append)
    waits = []
    for n in (1, 2, 3):
        started = time.perf_counter()
        run.log_epoch(epoch(n), {"scores": np.arange(4.0), "labels": np.array([0, 1, 0, 1])} if n == 3 else None)
        waits.append(time.perf_counter() - started)
    assert max(waits) < 0.05, waits  # the training loop never waits on the server
    assert run.finish(wait_s=0.5) is False

    mlflow_server.start()  # back; the worker has gone: its driver sends the checkpoint's history
    history = [epoch(n) for n in (1, 2, 3, 4)]
    scores = {"scores": np.arange(4.0), "labels": np.array([0, 1, 0, 1])}
    send_until_done(lambda: start_trial_run(tracking, cfg, {}), history, scores, log=lines.append)
    send_until_done(lambda: start_trial_run(tracking, cfg, {}), history, scores, log=lines.append)  # idempotent

    assert any("training goes on" in line for line in lines), lines
    runs = client.search_runs([experiment], filter_string="tags.trial_id = 't1'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")) == [1, 2, 3, 4]
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id)} >= {"config.json", "scores.npz"}


def test_a_run_reopened_by_a_resumed_trial_gets_only_the_epochs_it_lacks(mlflow_server):
    client = MlflowClient(mlflow_server.uri)
    experiment = client.create_experiment("smoke")
    parent = client.create_run(experiment).info.run_id
    tracking = TrackingSettings(mlflow_server.uri, experiment, parent, "smoke").for_trial("t2", "t2 run")
    first = BackgroundRun(tracking, TrainConfig(), {})
    first.log_epoch(epoch(1), None)
    first.log_epoch(epoch(2), None)
    deadline = time.monotonic() + 30
    while not first.synced and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.synced

    resumed = BackgroundRun(tracking, TrainConfig(), {}, history=[epoch(1), epoch(2), epoch(3)])
    resumed.log_epoch(epoch(4), None)
    assert resumed.finish(wait_s=30)
    (run,) = client.search_runs([experiment], filter_string="tags.trial_id = 't2'")
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == [1, 2, 3, 4]
    assert run.info.status == "FINISHED"
