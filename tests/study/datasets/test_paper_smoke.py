"""The paper profile end to end on a fake prepared root: prepare, check, train a few steps, evaluate VoxCeleb1-O."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from study.prepare import main as prepare_main
from study.train import main as train_main
from tests.study.fake_datasets import FFMPEG, prepared_root

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """VoxCeleb1 + VoxCeleb2 (m4a when ffmpeg is installed, else the wav layout), MUSAN and RIRs, prepared."""
    root, summaries = prepared_root(tmp_path_factory.mktemp("paper"), m4a=FFMPEG is not None)
    assert summaries["voxceleb"].ok and not summaries["musan"].errors and not summaries["rirs"].errors
    return root


def test_check_passes_on_the_prepared_root(root, capsys):
    batch = ["--set", "batch_size=6"]  # 7 utterances: the paper's batch of 200 could not be filled
    assert prepare_main(["check", "--data-root", str(root), "--dataset", "voxceleb2", "--workers", "2", *batch]) == 0
    out = capsys.readouterr().out
    assert out.startswith("check: ok\n")
    assert f"training list {root}/voxceleb2_train.csv: 7 utterances, 3 speakers" in out
    assert f"trial list {root}/voxceleb1_test_O: 21 trials" in out
    assert f"noise {root}/musan_split: noise 3 files, 0.01 h; speech 1 files, 0.00 h; music 3 files, 0.01 h" in out
    assert f"rir {root}/simulated_rirs: 6 files, 0.41 s mean" in out
    assert prepare_main(["check", "--data-root", str(root), "--workers", "2", *batch]) == 0  # the same, by layout


def test_paper_profile_smoke_run(root, tmp_path):
    args = [
        sys.executable, "-m", "study.train", "--dataset", "voxceleb2", "--data-root", str(root), "--max-utterances", "6",
        "--set", "batch_size=4", "--set", "epochs=1", "--set", "eval_segments=2", "--set", "precision=fp32",
        "--device", "cpu", "--output", str(tmp_path / "out"),
    ]
    done = subprocess.run(args, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert any("on 6 utterances, 1 steps/epoch, batch 4" in line for line in lines), done.stdout
    result = json.loads(lines[-1])
    assert result["epochs"] == 1 and 0 <= result["eer"] <= 100 and 0 <= result["min_dcf"] <= 1.0 + 1e-9
    state = torch.load(tmp_path / "out" / "checkpoints" / "epoch_0001" / "state.pt", weights_only=False)
    cfg = state["config"]
    assert (cfg["train_manifest"], cfg["trials"], cfg["noise_dir"], cfg["rir_dir"]) == (
        "voxceleb2_train.csv", "voxceleb1_test_O", "musan_split", "simulated_rirs")
    paper = {"lr": 1e-3, "lr_decay": 0.95, "lr_decay_epochs": 5, "n_mels": 40, "embedding_dim": 512, "crop_seconds": 2.0,
             "temperature": 1 / 30, "noise_prob": 1.0, "reverb_prob": 1.0, "eval_mode": "segments",
             "eval_segment_seconds": 3.515, "projector": False, "max_utterances": 6}
    assert {k: cfg[k] for k in paper} == paper


def test_an_unprepared_dataset_says_which_command_makes_it(tmp_path, capsys):
    (tmp_path / "voxceleb2_train.csv").write_text("File,Speaker\n")
    assert train_main(["--dataset", "voxceleb2", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/musan_split is missing: run `python -m study.prepare musan --root DIR --out {tmp_path}" in err
    assert f"{tmp_path}/voxceleb1_test_O is missing" in err and "voxceleb2_train.csv" not in err
    assert train_main(["--dataset", "voxceleb2"]) == 2
    assert "--dataset needs --data-root" in capsys.readouterr().err
