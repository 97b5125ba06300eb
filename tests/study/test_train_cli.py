"""`python -m study.train`: progress, JSON last line, validated overrides, preflight."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from study.train import main
from trainables.corpus import generate_corpus

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(
        root, n_train_speakers=8, n_train_utterances=4, n_test_speakers=4, n_test_utterances=3,
        min_seconds=1.5, max_seconds=2.5, n_noise_files=1, noise_seconds=2.0, n_rirs=2,
    )
    return root


def test_trains_and_prints_json_last(corpus, tmp_path):
    args = [
        sys.executable, "-m", "study.train", "--data-root", str(corpus), "--trials", "trials.txt",
        "--noise", "noise", "--rir", "rir", "--output", str(tmp_path / "out"),
        "--set", "epochs=2", "--set", "batch_size=8", "--set", "crop_seconds=0.5", "--set", "eval_mode=full",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert any(line.startswith("epoch   1/2") for line in lines)
    result = json.loads(lines[-1])
    assert result["epochs"] == 2 and 0 <= result["eer"] <= 100 and result["seconds"] > 0
    assert (tmp_path / "out" / "checkpoints" / "epoch_0002" / "state.pt").is_file()


def test_impossible_override_is_refused(capsys):
    assert main(["--set", "margin=1.5"]) == 2
    assert "margin=1.5 is out of range" in capsys.readouterr().err
    assert main(["--set", "no_such_key=1"]) == 2


def test_preflight_reports_bad_files_with_exit_1(corpus, tmp_path, capsys):
    manifest = tmp_path / "train.csv"
    manifest.write_text((corpus / "train.csv").read_text() + "train/ghost/missing.flac,ghost\n")
    code = main(["--data-root", str(corpus), "--train", str(manifest), "--trials", "trials.txt", "--preflight"])
    out = capsys.readouterr().out
    assert code == 1 and "missing.flac" in out
    assert main(["--data-root", str(corpus), "--trials", "trials.txt", "--preflight"]) == 0
