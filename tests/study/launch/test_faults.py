"""Faults a study survives, on a real local Ray instance with real signals, a real Train worker killed, and a
real `mlflow server` on 127.0.0.1 killed and restarted."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.study.conftest import run_study
from tests.study.processes import descendants

EPOCHS = 4


def runs_of(uri: str, study: str = "smoke") -> tuple[list, list]:
    """(child runs, parent runs) of the study's experiment."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    every = client.search_runs([experiment.experiment_id], max_results=1000)
    children = [r for r in every if "mlflow.parentRunId" in r.data.tags]
    return children, [r for r in every if "mlflow.parentRunId" not in r.data.tags]


def logged_epochs(uri: str, run) -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run.info.run_id, "loss"))


def wait_for(process, pattern: str, timeout: float = 300) -> None:
    """Wait until the study's output matches `pattern` (a regular expression)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, process.output()):
            return
        assert process.proc.poll() is None, f"the study ended before {pattern!r}:\n{process.output()}"
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in time:\n{process.output()}")


def assert_complete(uri: str, trials: int, epochs: int = EPOCHS) -> None:
    """Every trial has one FINISHED run holding each epoch once; the launch's one parent run FINISHED."""
    children, parents = runs_of(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", [p.info.status for p in parents]
    assert len({r.data.tags["trial_id"] for r in children}) == len(children) == trials
    for run in children:
        assert run.info.status == "FINISHED", (run.info.run_name, run.info.status, run.data.tags)
        assert logged_epochs(uri, run) == list(range(1, epochs + 1)), run.info.run_name
        assert not {"state", "error"} & set(run.data.tags), run.data.tags


@pytest.mark.slow
def test_sigint_and_sigterm_stop_resumably_and_resume_finishes_every_epoch(tmp_path, start_study):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    epochs = 8
    args = ("smoke", "--set", f"epochs={epochs}", "--storage", str(tmp_path / "results"), "--tracking-uri", uri)
    for number, sig in enumerate((signal.SIGINT, signal.SIGTERM)):
        process = start_study(*args, *(("--resume",) if number else ()))
        wait_for(process, rf"trial \w+ epoch [1-6]/{epochs}")  # the second launch resumes where the first stopped
        process.proc.send_signal(sig)
        code = process.wait(timeout=120)
        output = process.output()
        assert code == 128 + sig, output
        assert f"{sig.name} received" in output and "Traceback" not in output
        assert f"continue with: python -m study.run smoke --resume --storage {tmp_path / 'results'}" in output
        assert process.stop() == [], "Ray must be shut down when an interrupted study exits"
        children, parents = runs_of(uri)
        assert [p.info.status for p in parents] == ["KILLED"] and parents[0].data.tags["state"] == "interrupted"
        assert len(children) == 2
        for run in children:  # interrupted: neither finished (never rerun) nor failed
            assert (run.info.status, run.data.tags.get("state")) == ("KILLED", "interrupted"), run.data.tags
            assert "stopped_early" not in run.data.tags

    code, output = run_study(start_study, *args, "--resume", "--verbose", timeout=600)  # with the workers' lines
    assert code == 0, output
    assert "resumed from epoch" in output
    assert_complete(uri, trials=2, epochs=epochs)


@pytest.mark.slow
@pytest.mark.parametrize("ddp", [False, True], ids=["in-trial", "ray-train"])
def test_a_killed_train_worker_is_restarted_from_its_checkpoint_and_the_search_gets_the_result(tmp_path, start_study,
                                                                                                ddp):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    workers_per_trial = ["--workers-per-trial", "2"] if ddp else []
    process = start_study("smoke", "--set", f"epochs={EPOCHS}", "--max-concurrent", "1", "--max-failures", "1",
                          *workers_per_trial, "--storage", str(tmp_path / "results"), "--tracking-uri", uri,
                          "--verbose")  # the workers' own lines name their processes
    wait_for(process, rf"trial \w+ epoch 1/{EPOCHS}")  # epoch 1 reported: its checkpoint is saved
    # rank 0's epoch line names its process: a Ray Train worker, or (single worker) the Tune trial process itself.
    # Waited for too: Ray forwards a worker's lines asynchronously, sometimes after Tune's event for that epoch.
    own_epoch_line = r"\((\w+) pid=(\d+)\) epoch +1/"
    wait_for(process, own_epoch_line)
    kind, pid = re.search(own_epoch_line, process.output()).groups()
    assert kind == ("RayTrainWorker" if ddp else "train_driver"), kind
    assert int(pid) in descendants([process.pid])
    subprocess.run(["kill", "-KILL", pid], check=True)
    code = process.wait(timeout=600)
    output = process.output()
    assert code == 0, output
    failures = [line for line in output.splitlines() if re.search(r"\btrial \w+: worker failed", line)]  # ours
    assert len(failures) == 1 and "restarting from its last checkpoint (retry 1 of 1)" in failures[0], failures
    assert "\x1b[" not in output, "no colour codes in a log file"
    assert "resumed from epoch" in output
    assert_complete(uri, trials=2)

    experiment = next((tmp_path / "results").glob("smoke-*"))
    from ray.tune.search.optuna import OptunaSearch  # heavy: ray.tune

    searcher = OptunaSearch()
    searcher.restore_from_dir(str(experiment))
    learned = sorted(t.value for t in searcher._ot_study.trials if t.state.name == "COMPLETE")  # Optuna's record
    children, _ = runs_of(uri)
    assert learned == sorted(r.data.metrics["eer"] for r in children)


@pytest.mark.slow
def test_a_tracking_outage_neither_blocks_training_nor_loses_metrics(tmp_path, start_study, mlflow_server):
    epochs = 12
    args = ("smoke", "--set", f"epochs={epochs}", "--storage", str(tmp_path / "results"),
            "--tracking-uri", mlflow_server.uri)
    process = start_study(*args)
    wait_for(process, rf"trial \w+ epoch 2/{epochs}")
    mlflow_server.kill()
    wait_for(process, "is unreachable; trials go on", timeout=30)
    mlflow_server.start()  # slow under the trials' load (up to a minute): the outage lasts that long
    code = process.wait(timeout=600)
    output = process.output()
    assert code == 0, output
    during = output.split("is unreachable; trials go on")[1].split("is back after")[0]
    assert re.search(rf"trial \w+ epoch \d+/{epochs}", during), "epochs go on while the server is down"
    assert_complete(mlflow_server.uri, trials=2, epochs=epochs)
    # no epoch waited on MLflow (a call to a server that is down takes ~30 s to fail): `seconds` is the time
    # since training started, so its steps hold each epoch's training, evaluation and hooks
    client = MlflowClient(mlflow_server.uri)
    for run in runs_of(mlflow_server.uri)[0]:
        seconds = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "seconds"))
        epoch_s = [b - a for (_, a), (_, b) in zip(seconds, seconds[1:])]
        print(f"{run.info.run_name}: epoch wall times {[round(x, 1) for x in epoch_s]}")
        assert max(epoch_s) < 15, epoch_s


@pytest.mark.slow
def test_a_tracking_server_that_stays_down_stops_the_study_resumably(tmp_path, start_study, mlflow_server):
    epochs, limit = 12, 15
    args = ("smoke", "--set", f"epochs={epochs}", "--storage", str(tmp_path / "results"),
            "--tracking-uri", mlflow_server.uri)
    process = start_study(*args, "--tracking-outage-limit", str(limit))
    wait_for(process, rf"trial \w+ epoch 2/{epochs}")
    mlflow_server.kill()
    killed = time.monotonic()
    code = process.wait(timeout=180)
    output = process.output()
    assert code == 75, output
    assert time.monotonic() - killed < limit + 60, "stopped within the limit (and Tune's shutdown)"
    assert "was unreachable for" in output and "--resume" in output and "Traceback" not in output
    assert process.stop() == []

    mlflow_server.start()
    code, output = run_study(start_study, *args, "--resume", timeout=600)
    assert code == 0, output
    assert_complete(mlflow_server.uri, trials=2, epochs=epochs)
