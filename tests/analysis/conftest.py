"""One real MLflow store for every analysis test: `python -m study.run paper_table2 --seeds 1,2` with tiny
trials (4 runs: margin 0 and 0.1, two seeds each), run once in a subprocess on a local loopback Ray."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from tests.study.processes import stop_tree

REPO = Path(__file__).resolve().parents[2]
STUDY = "paper_table2"
SEEDS = (1, 2)
TINY = ("epochs=2", "batch_size=16", "max_utterances=64", "crop_seconds=0.5", "eval_every=1", "eval_mode=segments",
        "eval_segments=1", "eval_segment_seconds=1.0", "lr_decay_epochs=1", "queue_size=64")
"""Seconds per trial (the smoke study's sizes); eval_every=1 gives two EER values per learning curve."""


@dataclass(frozen=True)
class Store:
    """The filled store: its tracking URI, the study's name and the study command's output."""

    uri: str
    study: str
    folder: Path
    output: str


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    folder = tmp_path_factory.mktemp("analysis-store")
    ray_tmp = tempfile.mkdtemp(prefix="ms", dir="/tmp")  # unix socket paths must stay short
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env.update(PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
               RAY_TMPDIR=ray_tmp, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    uri = f"sqlite:///{folder}/mlflow.db"
    args = [sys.executable, "-m", "study.run", STUDY, "--seeds", ",".join(map(str, SEEDS)), "--tracking-uri", uri,
            "--storage", str(folder / "results")]
    for override in TINY:
        args += ["--set", override]
    log = folder / "study.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(args, cwd=folder, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=900)
        finally:
            stop_tree([process.pid], grace=10)
            shutil.rmtree(ray_tmp, ignore_errors=True)
    output = log.read_text()
    assert code == 0, output[-5000:]
    return Store(uri, STUDY, folder, output)


@pytest.fixture
def mlflow_runs(store):
    """The study's child runs, read with MLflow directly (independently of analysis.runs)."""
    mlflow.set_tracking_uri(store.uri)
    runs = mlflow.search_runs(experiment_names=[store.study], output_format="pandas")
    return runs[runs["tags.mlflow.parentRunId"].notna()].reset_index(drop=True)
