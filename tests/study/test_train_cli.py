"""`python -m study.train`: progress, JSON last line, validated overrides, preflight."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from study.train import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return tiny_corpus


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
    small_batches = ["--set", "batch_size=8"]  # 32 utterances: the cpu profile's batch of 64 could not be filled
    code = main(["--data-root", str(corpus), "--train", str(manifest), "--trials", "trials.txt", "--preflight",
                 *small_batches])
    out = capsys.readouterr().out
    assert code == 1 and "missing.flac" in out
    assert main(["--data-root", str(corpus), "--trials", "trials.txt", "--preflight", *small_batches]) == 0


def test_a_crafted_checkpoint_in_output_is_refused_cleanly(corpus, tmp_path):
    """A state.pt that would create a folder when unpickled: one error line, exit 2, nothing created."""
    marker = tmp_path / "created-on-load"
    folder = tmp_path / "out" / "checkpoints" / "epoch_0001"
    folder.mkdir(parents=True)
    crafted = f"import os, torch\nclass X:\n    def __reduce__(self):\n        return os.mkdir, ({str(marker)!r},)\n" \
              f"torch.save({{'epoch': 1, 'model': X()}}, {str(folder / 'state.pt')!r})\n"
    subprocess.run([sys.executable, "-c", crafted], check=True, timeout=120)
    args = [sys.executable, "-m", "study.train", "--data-root", str(corpus), "--trials", "trials.txt",
            "--output", str(tmp_path / "out"), "--set", "epochs=2", "--set", "batch_size=8",
            "--set", "crop_seconds=0.5", "--set", "noise_prob=0", "--set", "reverb_prob=0"]
    done = subprocess.run(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"checkpoint {folder / 'state.pt'} was refused" in errors[0] and "--no-resume" in errors[0]
    assert not marker.exists()


@pytest.mark.parametrize("case", ["missing trial list", "malformed trial line", "corrupt trial file", "no noise folder",
                                  "one-utterance list", "empty list", "3 bad files of 103, one NaN",
                                  "missing noise folder", "corrupt noise file", "empty RIR folder", "unknown device",
                                  "output is a file"])
def test_data_errors_are_one_clean_line_with_exit_2(corpus, tmp_path, capsys, case):
    """Errors in what the user gave name the file, line or value; no traceback (main returns, never raises)."""
    base = ["--data-root", str(corpus), "--output", str(tmp_path / "out"), "--set", "epochs=1",
            "--set", "batch_size=8", "--set", "crop_seconds=0.5"]
    no_augmentation = ["--set", "noise_prob=0", "--set", "reverb_prob=0"]
    first = (corpus / "trials.txt").read_text().splitlines()[0].split()
    if case == "missing trial list":
        args, expected = ["--trials", "nope.txt", *no_augmentation], f"{corpus / 'nope.txt'}: trial list not found"
    elif case == "malformed trial line":
        (tmp_path / "trials.txt").write_text(" ".join(first) + "\n1 only_one_path\n")
        args, expected = ["--trials", str(tmp_path / "trials.txt"), *no_augmentation], f"{tmp_path / 'trials.txt'}:2"
    elif case == "corrupt trial file":
        (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
        other = 1 - int(first[0])  # both labels, so the list itself is valid
        (tmp_path / "trials.txt").write_text(" ".join(first) + f"\n{other} {first[1]} {tmp_path / 'broken.wav'}\n")
        args, expected = ["--trials", str(tmp_path / "trials.txt"), *no_augmentation], "broken.wav"
    elif case == "no noise folder":
        args, expected = ["--trials", "trials.txt", "--set", "reverb_prob=0", "--set", "noise_prob=0.1"], \
            "noise_prob=0.1 needs a folder: give noise_dir (--noise DIR), or set noise_prob=0"
    elif case in ("one-utterance list", "empty list"):
        rows = (corpus / "train.csv").read_text().splitlines()[: 2 if case == "one-utterance list" else 1]
        (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
        args = ["--train", str(tmp_path / "train.csv"), "--trials", "trials.txt", *no_augmentation]
        expected = (f"training list {tmp_path / 'train.csv'}: 1 utterances cannot fill one batch of 8"
                    if case == "one-utterance list" else f"{tmp_path / 'train.csv'}: training list has no utterances")
    elif case == "3 bad files of 103, one NaN":
        wave = np.full(16000, 0.1, dtype=np.float32)
        wave[8000] = np.nan
        sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
        (tmp_path / "empty.wav").write_bytes(b"")
        good = (corpus / "train.csv").read_text().splitlines()[1:]
        rows = [good[k % len(good)] for k in range(100)]
        rows += [f"{tmp_path / name}.wav,x" for name in ("nan", "empty", "gone")]
        (tmp_path / "train.csv").write_text("File,Speaker\n" + "\n".join(rows) + "\n")
        args = ["--train", str(tmp_path / "train.csv"), "--trials", "trials.txt", *no_augmentation]
        expected = "3 of 103 training files (2.9%) are unreadable, more than max_bad_files=0.01 allows"
    elif case == "missing noise folder":
        args, expected = ["--trials", "trials.txt", "--noise", str(tmp_path / "gone"), "--set", "reverb_prob=0"], \
            f"noise_dir (--noise) {tmp_path / 'gone'} is not a folder"
    elif case == "corrupt noise file":
        (tmp_path / "noise").mkdir()
        (tmp_path / "noise" / "broken.wav").write_bytes(b"RIFF not really a wav")
        args, expected = ["--trials", "trials.txt", "--noise", str(tmp_path / "noise"), "--set", "reverb_prob=0"], \
            f"noise folder {tmp_path / 'noise'}: Error opening '{tmp_path / 'noise' / 'broken.wav'}'"
    elif case == "empty RIR folder":
        (tmp_path / "rir").mkdir()
        args, expected = ["--trials", "trials.txt", "--rir", str(tmp_path / "rir"), "--set", "noise_prob=0"], \
            f"RIR folder {tmp_path / 'rir'} has no .wav/.flac files"
    elif case == "unknown device":
        args, expected = ["--trials", "trials.txt", "--device", "tpu"], \
            "--device 'tpu' is not auto, cpu, cuda or cuda:N"
    else:
        (tmp_path / "taken").write_text("a file\n")
        args, expected = ["--trials", "trials.txt", "--output", str(tmp_path / "taken")], \
            f"--output {tmp_path / 'taken'} is a file, not a folder"
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def test_preflight_of_a_missing_data_root_is_one_error_line(tmp_path, capsys):
    assert main(["--data-root", str(tmp_path / "gone"), "--preflight"]) == 2
    assert capsys.readouterr().err == f"error: data_root {str(tmp_path / 'gone')!r} is not a folder\n"


def test_an_unprepared_dataset_names_each_missing_part_and_its_command(tmp_path, capsys):
    assert main(["--dataset", "voxceleb1", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: dataset 'voxceleb1' is not prepared in {tmp_path}:"
    assert err[1] == (f"  {tmp_path}/voxceleb1_train.csv is missing: run "
                      f"`python -m study.prepare voxceleb --vox1 DIR --out {tmp_path}`")  # VoxCeleb2 is not needed
    assert len(err) == 5 and all("is missing: run `python -m study.prepare" in line for line in err[1:])


@pytest.mark.parametrize("preflight", [False, True])
def test_a_corpus_cache_that_cannot_be_written_is_one_error_line(tmp_path, monkeypatch, capsys, preflight):
    (tmp_path / "cache").write_text("a file, not a folder\n")
    monkeypatch.setenv("MARGIN_STUDY_CACHE", str(tmp_path / "cache"))
    assert main(["--set", "epochs=1", *(["--preflight"] if preflight else [])]) == 2
    assert capsys.readouterr().err == (f"error: the embedded corpus cannot be generated in {tmp_path / 'cache'} "
                                       "(File exists): set MARGIN_STUDY_CACHE to a writable folder, or give a data_root\n")
