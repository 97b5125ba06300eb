"""The data checker (`study.prepare check`, `study.train --preflight`): every broken input reported with its path,
exit status as training would fare, speed."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from study.datasets.check import check_data, check_files
from study.datasets.check_report import CheckReport, Finding
from study.prepare import main
from tests.study.fake_datasets import write_wav
from trainables.check_record import fingerprint, load_or_check, load_record, record_path
from trainables.config import build_config
from trainables.corpus import CACHE_ENV
from trainables.manifest import read_train_list

PAPER = build_config("paper", {"batch_size": 4})
"""The paper profile with batches the few utterances of these tests fill (the check refuses a list that cannot)."""
SHORT_CROPS = PAPER.replace(crop_seconds=0.5)
"""Files under 1 s (two 0.5 s crops) are wrap-padded."""
DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
SPEECHOCEAN = DATA / "speechocean762"
RATE = 16000


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Check records go to this test's folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


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
    code = main(["check", "--data-root", str(root), "--train", "train.csv", "--trials", "trials.txt", "--workers", "2",
                 "--set", "batch_size=4", *extra])
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


def wav(root: Path, name: str, seconds: float, rate: int = RATE) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * rate), dtype=np.int16), rate, subtype="PCM_16")
    return name


def lists(root: Path, train: list[tuple[str, str]], trials: list[tuple[int, str, str]]) -> tuple[str, str]:
    train_csv = root / "train.csv"
    train_csv.write_text("File,Speaker\n" + "".join(f"{f},{s}\n" for f, s in train))
    trial_txt = root / "trials.txt"
    trial_txt.write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials))
    return str(train_csv), str(trial_txt)


def preflight(root: Path, train: str, trials: str, **options) -> CheckReport:
    """The check as `study.train --preflight` runs it: speaker overlap is a warning."""
    return check_data(str(root), SHORT_CROPS, train, trials, allow_overlap=True, progress=False, **options)


def errors(report: CheckReport) -> list[str]:
    """Every "path: reason" (or line) of the error findings."""
    return [item for finding in report.findings if finding.error for item in finding.items]


def warnings(report: CheckReport) -> list[Finding]:
    return [finding for finding in report.findings if not finding.error]


def test_clean_corpus(tmp_path):
    train = [(wav(tmp_path, f"id{s}/v/{k}.wav", 1.5), f"id{s}") for s in range(3) for k in range(2)]
    tests = [wav(tmp_path, f"id9{k}/v/0.wav", 3.0) for k in range(2)]
    csv_path, trials = lists(tmp_path, train, [(1, tests[0], tests[0]), (0, tests[0], tests[1])])
    report = preflight(tmp_path, csv_path, trials)
    assert report.ok and report.findings == []
    assert (report.utterances, report.speakers, report.trials, report.files_checked) == (6, 3, 2, 8)
    assert report.train_hours == pytest.approx(6 * 1.5 / 3600)
    assert report.trial_hours == pytest.approx(2 * 3.0 / 3600)
    assert report.format().startswith(f"check: ok\ntraining list {csv_path}: 6 utterances, 3 speakers")


def test_every_bad_file_is_reported(tmp_path):
    good = wav(tmp_path, "a/v/good.wav", 2.0)
    low = wav(tmp_path, "a/v/low.wav", 2.0, rate=8000)
    short = wav(tmp_path, "a/v/short.wav", 0.2)
    (tmp_path / "a/v/garbage.wav").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "a/v/empty.wav").write_bytes(b"")
    wav(tmp_path, "a/v/zero.wav", 0.0)
    cut = tmp_path / "b/v/cut.flac"
    cut.parent.mkdir(parents=True)
    sf.write(cut, np.random.default_rng(0).uniform(-0.5, 0.5, 16000), RATE)
    cut.write_bytes(cut.read_bytes()[:3000])
    names = [good, low, short, "a/v/garbage.wav", "a/v/empty.wav", "a/v/zero.wav", "a/v/missing.wav"]
    csv_path, trials = lists(tmp_path, [(n, "a") for n in names], [(1, good, "b/v/cut.flac"), (0, good, low)])
    report = preflight(tmp_path, csv_path, trials)
    assert not report.ok
    reasons = {Path(e.split(": ", 1)[0]).name: e.split(": ", 1)[1] for e in errors(report)}
    assert set(reasons) == {"garbage.wav", "empty.wav", "zero.wav", "missing.wav", "cut.flac"}
    assert reasons["missing.wav"].startswith("missing")
    assert reasons["empty.wav"].startswith("empty file")
    assert reasons["zero.wav"].startswith("zero-length")
    assert "unreadable" in reasons["garbage.wav"]
    assert "truncated" in reasons["cut.flac"]
    assert all(e.startswith(str(tmp_path)) for e in errors(report))
    resample = [w for w in warnings(report) if "resampled" in w.headline]
    padded = [w for w in warnings(report) if "wrap-padded" in w.headline]
    assert len(resample) == 1 and resample[0].headline.startswith("1 file(s) not at 16000 Hz")
    assert resample[0].items == [f"{tmp_path / low}: 8000 Hz"]
    assert len(padded) == 1 and padded[0].headline.startswith("1 training file(s) shorter than two 0.5 s views")
    assert padded[0].items == [f"{tmp_path / short}: 0.20 s"]
    text = report.format()
    assert text.startswith("check: FAILED") and len(errors(report)) == 5 and "missing.wav: missing" in text


def test_speakers_shared_by_training_and_trials_are_flagged(tmp_path):
    train = [(wav(tmp_path, f"id{s}/v/0.wav", 1.0), f"id{s}") for s in range(4)]
    csv_path, trials = lists(tmp_path, train, [(1, "id2/v/0.wav", "id2/v/0.wav"), (0, "id3/v/0.wav", "id2/v/0.wav")])
    report = preflight(tmp_path, csv_path, trials)
    assert report.ok
    overlap = [w for w in warnings(report) if "also appear in the trial list" in w.headline]
    assert len(overlap) == 1 and overlap[0].headline.startswith("2 training speaker(s)")
    assert [item.split(":")[0] for item in overlap[0].items] == ["id2", "id3"]


def test_either_list_may_be_absent(tmp_path):
    train = [(wav(tmp_path, f"s/{name}.wav", 1.0), "s") for name in "abcd"]  # one batch of SHORT_CROPS
    csv_path, trials = lists(tmp_path, train, [(1, "t/x.wav", "t/y.wav"), (0, "t/x.wav", "t/z.wav")])
    only_train = preflight(tmp_path, csv_path, "")
    assert only_train.ok and only_train.trials == 0 and only_train.files_checked == 4
    only_trials = preflight(tmp_path, "", trials)
    assert not only_trials.ok and only_trials.files_checked == 3 and len(errors(only_trials)) == 3


def test_malformed_lists_are_errors_naming_file_and_line(tmp_path):
    csv_path, trials = lists(tmp_path, [("a.wav", "s")], [(1, "a.wav", "a.wav")])
    Path(trials).write_text("1 a.wav a.wav\n0 a.wav\n")
    report = preflight(tmp_path, csv_path, trials)
    assert not report.ok and [f.headline for f in report.findings if f.error][0] == "malformed trial list"
    assert errors(report)[0].startswith(f"{trials}:2:")
    Path(csv_path).write_text("File,Speaker\na.wav,s,x\n")
    report = preflight(tmp_path, csv_path, "")
    assert not report.ok and report.findings[0].headline == "malformed training list"
    assert errors(report)[0].startswith(f"{csv_path}:2:")


def test_a_thousand_files_are_quick(tmp_path):
    sf.write(tmp_path / "0.wav", np.zeros(1600, dtype=np.int16), RATE, subtype="PCM_16")
    content = (tmp_path / "0.wav").read_bytes()
    for k in range(1, 1000):
        (tmp_path / f"{k}.wav").write_bytes(content)
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("File\n" + "".join(f"{k}.wav\n" for k in range(1000)))
    started = time.perf_counter()
    report = preflight(tmp_path, str(csv_path), "", workers=4)
    elapsed = time.perf_counter() - started
    assert report.ok and report.files_checked == 1000
    assert elapsed < 2.0, f"preflight of 1000 files took {elapsed:.2f} s"


@pytest.mark.skipif(not SPEECHOCEAN.is_dir(), reason=f"real speech data not found at {SPEECHOCEAN}")
def test_real_corpus_passes():
    report = check_data(str(SPEECHOCEAN), PAPER, "train.csv", "trials_dev.txt", allow_overlap=True, progress=False)
    assert report.ok, report.format()
    assert (report.utterances, report.speakers, report.trials, report.files_checked) == (850, 170, 3600, 1250)
    assert 1.1 < report.train_hours < 1.3
    assert not any("also appear in the trial list" in f.headline for f in report.findings)


def test_a_list_too_short_for_one_batch_is_an_error(tmp_path, capsys):
    """The trainer's sampler refuses a list that cannot fill one batch (e.g. one utterance): so does the check."""
    train, test = corpus(tmp_path)
    write_lists(tmp_path, train[:1], trial_lines(test))
    code, out = run_check(capsys, tmp_path, "--set", "batch_size=2")
    assert code == 1 and "Traceback" not in out
    assert (f"ERROR: training list {tmp_path}/train.csv: 1 utterances cannot fill one batch of 2: the trainer refuses"
            in out)
    write_lists(tmp_path, train, trial_lines(test))  # 6 utterances of 2 speakers: batches of 2 without collisions
    code, out = run_check(capsys, tmp_path, "--set", "batch_size=4", "--set", "prevent_class_collisions=true")
    assert code == 1 and "2 speakers cannot fill one batch of 4 without class collisions" in out


def test_a_nan_file_counts_among_the_unusable_training_files(tmp_path, capsys):
    """3 bad files of 103, one of them a float WAV with a NaN sample: all 3 are counted, as the trainer counts them."""
    train, test = corpus(tmp_path)
    bad = tmp_path / "voxceleb2" / "id00009" / "vid"
    bad.mkdir(parents=True)
    wave = np.full(RATE, 0.1, dtype=np.float32)
    wave[RATE // 2] = np.nan
    sf.write(bad / "nan.wav", wave, RATE, subtype="FLOAT")
    (bad / "empty.wav").write_bytes(b"")
    rows = [train[k % len(train)] for k in range(100)] + [f"voxceleb2/id00009/vid/{name}.wav" for name in
                                                          ("nan", "empty", "missing")]
    write_lists(tmp_path, rows, trial_lines(test))
    code, out = run_check(capsys, tmp_path)
    assert code == 1
    assert "ERROR: 3 of 103 training files (2.91%) are unusable; max_bad_files=0.01: the trainer refuses" in out
    assert f"  {bad}/nan.wav: 1 non-finite (nan/inf) samples" in out


def test_a_report_in_a_missing_folder_is_refused_before_checking(tmp_path, capsys):
    train, test = corpus(tmp_path)
    write_lists(tmp_path, train, trial_lines(test))
    code, out = run_check(capsys, tmp_path, "--report", str(tmp_path / "no" / "report.txt"))
    assert code == 2 and out == f"error: --report {tmp_path}/no/report.txt: the folder {tmp_path}/no does not exist\n"


def test_the_check_records_the_training_files_for_the_trials(tmp_path, capsys, cache):
    train, test = corpus(tmp_path)
    write_lists(tmp_path, train, trial_lines(test))
    (tmp_path / train[4]).write_bytes(b"broken")
    code, out = run_check(capsys, tmp_path, "--set", "max_bad_files=0.2")
    key = fingerprint(tmp_path / "train.csv", tmp_path)
    assert code == 0 and f"training files recorded for the trials: {record_path(key)}" in out
    checks, info = load_record(record_path(key), 6)
    assert checks.frames.tolist() == [int(4.5 * RATE)] * 4 + [0, int(4.5 * RATE)] and set(checks.reasons) == {4}
    assert info["rows"] == 6 and info["data_root"] == str(tmp_path)
    messages = []  # a trial on the same data: no check of its own, the record's findings
    files = read_train_list(tmp_path / "train.csv", tmp_path)
    again = load_or_check(files, str(tmp_path / "train.csv"), str(tmp_path), 0.2, messages.append)
    assert not any(m.startswith("checked") for m in messages) and set(again.reasons) == {4}
    (tmp_path / "train.csv").write_text((tmp_path / "train.csv").read_text() + f"{train[0]},id00001\n")
    assert fingerprint(tmp_path / "train.csv", tmp_path) != key  # a changed list is checked anew
