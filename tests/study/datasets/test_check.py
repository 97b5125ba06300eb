"""`study.prepare check`: every broken input reported with its path, exit status as training would fare, speed."""

import os
import time
from pathlib import Path

import numpy as np

from study.datasets.check import check_data, check_files
from study.prepare import main
from tests.study.fake_datasets import write_wav
from trainables.config import build_config

PAPER = build_config("paper")


def corpus(root: Path) -> tuple[list[str], list[str]]:
    """Good training files of two speakers and test files of two others, VoxCeleb-style names."""
    train = [f"voxceleb2/id0000{s}/vid/{k:05d}.wav" for s in (1, 2) for k in (1, 2, 3)]
    test = [f"voxceleb1/id1027{s}/vid/{k:05d}.wav" for s in (0, 1) for k in (1, 2)]
    for k, name in enumerate(train + test):
        write_wav(root / name, 4.5, seed=k)
    return train, test


def write_lists(root: Path, train: list[str], trials: list[str]) -> None:
    (root / "train.csv").write_text("File,Speaker\n" + "".join(f"{n},{n.split('/')[1]}\n" for n in train))
    (root / "trials.txt").write_text("".join(trials))


def trial_lines(test: list[str]) -> list[str]:
    return [f"1 {test[0]} {test[1]}\n", f"0 {test[0]} {test[2]}\n", f"1 {test[2]} {test[3]}\n", f"0 {test[1]} {test[3]}\n"]


def run_check(capsys, root: Path, *extra: str) -> tuple[int, str]:
    code = main(["check", "--data-root", str(root), "--train", "train.csv", "--trials", "trials.txt", "--workers", "2", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_clean_root_passes_with_counts(tmp_path, capsys):
    train, test = corpus(tmp_path)
    write_lists(tmp_path, train, trial_lines(test))
    code, out = run_check(capsys, tmp_path)
    assert code == 0, out
    assert out.startswith("check: ok\n")
    assert "6 utterances, 2 speakers, 0.01 h; 4.5 s min, 4.5 s median, 4.5 s max" in out
    assert "4 trials (2 target, 2 non-target), 4 files" in out
    assert "sample rates: 16,000 Hz: 10 files" in out


def test_every_broken_input_is_reported_with_its_path(tmp_path, capsys):
    train, test = corpus(tmp_path)
    (tmp_path / "voxceleb2/id00001/vid/00002.wav").unlink()
    (tmp_path / "voxceleb2/id00002/vid/00001.wav").write_bytes(b"")
    write_wav(tmp_path / "voxceleb2/id00002/vid/00003.wav", 4.5, seed=1, rate=8000)
    overlap = "voxceleb1/id00001/vid/00009.wav"  # a training speaker among the trials
    write_wav(tmp_path / overlap, 4.5, seed=9)
    write_lists(tmp_path, train, trial_lines(test) + [f"0 {test[0]} {overlap}\n"])
    (tmp_path / "musan_split" / "noise").mkdir(parents=True)
    write_wav(tmp_path / "musan_split" / "noise" / "n_00000.wav", 8.0, seed=3)
    (tmp_path / "musan_split" / "noise" / "n_00008.wav").write_bytes(b"RIFF")
    code, out = run_check(capsys, tmp_path, "--noise", "musan_split", "--report", str(tmp_path / "report.txt"))
    assert code == 1
    assert out.startswith("check: FAILED: 3 problem(s)")
    root = str(tmp_path)
    assert "ERROR: 2 of 6 training files (33.33%) are unusable; max_bad_files=0.01: the trainer refuses" in out
    assert f"{root}/voxceleb2/id00001/vid/00002.wav: missing (no such file)" in out
    assert f"{root}/voxceleb2/id00002/vid/00001.wav: empty file (0 bytes)" in out
    assert f"warning: 1 file(s) not at 16000 Hz will be resampled on load\n  {root}/voxceleb2/id00002/vid/00003.wav: 8000 Hz" in out
    assert "ERROR: 1 training speaker(s) also appear in the trial list" in out
    assert f"id00001: e.g. {overlap}" in out
    assert f"ERROR: 1 noise file(s) are unusable: the trainer loads every one\n  {root}/musan_split/noise/n_00008.wav" in out
    assert f"{root}/voxceleb2/id00001/vid/00002.wav: missing" in (tmp_path / "report.txt").read_text()

    code, out = run_check(capsys, tmp_path, "--allow-overlap", "--set", "max_bad_files=0.5")
    assert code == 0, out
    assert "warning: 2 of 6 training files (33.33%) are unusable; max_bad_files=0.5: the trainer skips them" in out
    assert "warning: 1 training speaker(s) also appear" in out


def test_malformed_lists_are_reported_with_file_and_line(tmp_path, capsys):
    train, test = corpus(tmp_path)
    write_lists(tmp_path, train, trial_lines(test)[:2] + [f"1 {test[0]}\n"] + trial_lines(test)[2:])
    code, out = run_check(capsys, tmp_path)
    assert code == 1
    assert f"ERROR: malformed trial list\n  {tmp_path}/trials.txt:3: expected 'label enrol test' (3 fields), got 2" in out
    (tmp_path / "train.csv").write_text("File,Speaker\nvoxceleb2/id00001/vid/00001.wav,id00001,extra\n")
    code, out = run_check(capsys, tmp_path)
    assert code == 1 and f"{tmp_path}/train.csv:2: expected 2 column(s)" in out


def test_a_training_file_in_the_trials_is_an_error(tmp_path):
    train, test = corpus(tmp_path)
    write_lists(tmp_path, train, trial_lines(test) + [f"0 {test[0]} {train[0]}\n"])
    (tmp_path / "train.csv").write_text("File\n" + "".join(f"{n}\n" for n in train))  # no speaker labels
    report = check_data(str(tmp_path), PAPER, "train.csv", "trials.txt", workers=1, progress=False)
    assert not report.ok
    assert report.findings[-1].headline == "1 training file(s) are also trial files"
    assert report.findings[-1].items == [str(tmp_path / train[0])]


def test_nothing_to_check_is_exit_2(tmp_path, capsys):
    assert main(["check", "--data-root", str(tmp_path)]) == 2
    assert "nothing to check" in capsys.readouterr().err


def test_parallel_file_check_agrees_with_the_serial_one(tmp_path):
    base = write_wav(tmp_path / "base.wav", 1.0, seed=0)
    paths = []
    for k in range(4100):  # above the serial threshold: worker processes
        path = tmp_path / f"{k}.wav"
        os.link(base, path)
        paths.append(str(path))
    paths[17] = str(tmp_path / "gone.wav")
    frames, rates, errors = check_files(paths, workers=2, progress=False)
    assert errors == {17: "missing (no such file)"}
    assert frames[16] == 16000 and rates[4099] == 16000 and frames[17] == 0


def test_a_million_row_manifest_is_checked_quickly(tmp_path):
    """1,000,000 rows over 5,000 speakers (paths repeat 200 existing files): parsing, the overlap, counts."""
    files = [write_wav(tmp_path / "audio" / f"id{k:05d}" / "v" / "00001.wav", 0.5, seed=k) for k in range(4)]
    trials = [write_wav(tmp_path / "audio" / spk / "v" / "00001.wav", 0.5, seed=9) for spk in ("id00001", "id04999")]
    for k in range(200):
        os.link(files[k % 4], tmp_path / "audio" / f"{k}.wav")
    speakers = np.arange(1_000_000) // 200
    rows = "".join(f"audio/{k % 200}.wav,id{s:05d}\n" for k, s in enumerate(speakers))
    (tmp_path / "train.csv").write_text("File,Speaker\n" + rows)
    (tmp_path / "trials.txt").write_text(f"1 {trials[0].relative_to(tmp_path)} {trials[0].relative_to(tmp_path)}\n"
                                         f"0 {trials[0].relative_to(tmp_path)} {trials[1].relative_to(tmp_path)}\n")
    started, cpu = time.perf_counter(), time.process_time()
    report = check_data(str(tmp_path), PAPER, "train.csv", "trials.txt", workers=2, progress=False)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert not report.ok  # id00001 and id04999 are trial speakers and training speakers
    assert report.summary[0].endswith("1,000,000 utterances, 5,000 speakers, 138.89 h; 0.5 s min, 0.5 s median, 0.5 s max")
    assert report.findings[-1].headline.startswith("2 training speaker(s) also appear")
    assert "warning: 200 training file(s) shorter than two 2 s views will be wrap-padded" in report.format()
    # CPU time, not wall time: the 200 distinct files are checked in this process, so this is all the work
    # (about 3 s on one core here); wall time depends on what else the machine runs.
    assert cpu < 20, f"{cpu:.1f} s of CPU ({seconds:.1f} s wall) for a million rows"
    print(f"1M-row check: {cpu:.1f} s CPU, {seconds:.1f} s wall")


def test_an_empty_noise_category_is_an_error(tmp_path):
    write_wav(tmp_path / "musan_split" / "noise" / "a" / "n_00000.wav", 8.0, seed=1)
    (tmp_path / "musan_split" / "music" / "fma").mkdir(parents=True)
    report = check_data(str(tmp_path), PAPER, noise_dir="musan_split", workers=1, progress=False)
    assert [f.headline for f in report.findings] == [
        f"noise category folder {tmp_path}/musan_split/music has no audio files: the trainer refuses it"]
    assert report.summary[0].startswith(f"noise {tmp_path}/musan_split: noise 1 files, 0.00 h; the trainer holds it as 0.00 GiB")
