import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trainables.manifest import ManifestError
from trainables.preflight import preflight

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPEECHOCEAN = DATA / "speechocean762"
RATE = 16000


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


def test_clean_corpus(tmp_path):
    train = [(wav(tmp_path, f"id{s}/v/{k}.wav", 1.5), f"id{s}") for s in range(3) for k in range(2)]
    tests = [wav(tmp_path, f"id9{k}/v/0.wav", 3.0) for k in range(2)]
    csv_path, trials = lists(tmp_path, train, [(1, tests[0], tests[0]), (0, tests[0], tests[1])])
    report = preflight(csv_path, trials, str(tmp_path), RATE, min_samples=RATE)
    assert report.ok and report.errors == [] and report.warnings == []
    assert (report.utterances, report.speakers, report.trials, report.files_checked) == (6, 3, 2, 8)
    assert report.train_hours == pytest.approx(6 * 1.5 / 3600)
    assert report.trial_hours == pytest.approx(2 * 3.0 / 3600)
    assert report.format().startswith("preflight: ok: 6 training utterances (3 speakers")


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
    report = preflight(csv_path, trials, str(tmp_path), RATE, min_samples=RATE)
    assert not report.ok
    reasons = {Path(e.split(": ", 1)[0]).name: e.split(": ", 1)[1] for e in report.errors}
    assert set(reasons) == {"garbage.wav", "empty.wav", "zero.wav", "missing.wav", "cut.flac"}
    assert reasons["missing.wav"].startswith("missing")
    assert reasons["empty.wav"].startswith("empty file")
    assert reasons["zero.wav"].startswith("zero-length")
    assert "unreadable" in reasons["garbage.wav"]
    assert "truncated" in reasons["cut.flac"]
    assert all(e.startswith(str(tmp_path)) for e in report.errors)
    resample = [w for w in report.warnings if "resampled" in w]
    padded = [w for w in report.warnings if "wrap-padded" in w]
    assert len(resample) == 1 and resample[0].startswith("1 file(s) not at 16000 Hz")
    assert "low.wav: 8000 Hz" in resample[0]
    assert len(padded) == 1 and padded[0].startswith("1 file(s) shorter than 16000 samples")
    assert "short.wav: 3200 samples" in padded[0]
    text = report.format()
    assert text.startswith("preflight: FAILED") and "5 error(s)" in text and "missing.wav: missing" in text


def test_speakers_shared_by_training_and_trials_are_flagged(tmp_path):
    train = [(wav(tmp_path, f"id{s}/v/0.wav", 1.0), f"id{s}") for s in range(4)]
    csv_path, trials = lists(tmp_path, train, [(1, "id2/v/0.wav", "id2/v/0.wav"), (0, "id3/v/0.wav", "id2/v/0.wav")])
    report = preflight(csv_path, trials, str(tmp_path), RATE, min_samples=0)
    assert report.ok
    overlap = [w for w in report.warnings if "also appear in the trials" in w]
    assert len(overlap) == 1 and overlap[0].startswith("2 training speaker(s)") and "id2, id3" in overlap[0]


def test_either_list_may_be_absent(tmp_path):
    train = [(wav(tmp_path, "s/a.wav", 1.0), "s")]
    csv_path, trials = lists(tmp_path, train, [(1, "t/x.wav", "t/y.wav"), (0, "t/x.wav", "t/z.wav")])
    only_train = preflight(csv_path, None, str(tmp_path), RATE, 0)
    assert only_train.ok and only_train.trials == 0 and only_train.files_checked == 1
    only_trials = preflight(None, trials, str(tmp_path), RATE, 0)
    assert not only_trials.ok and only_trials.files_checked == 3 and len(only_trials.errors) == 3


def test_malformed_lists_are_fatal(tmp_path):
    csv_path, trials = lists(tmp_path, [("a.wav", "s")], [(1, "a.wav", "a.wav")])
    Path(trials).write_text("1 a.wav a.wav\n0 a.wav\n")
    with pytest.raises(ManifestError, match=r"trials\.txt:2:"):
        preflight(csv_path, trials, str(tmp_path), RATE, 0)
    Path(csv_path).write_text("File,Speaker\na.wav,s,x\n")
    with pytest.raises(ManifestError, match=r"train\.csv:2:"):
        preflight(csv_path, None, str(tmp_path), RATE, 0)


def test_a_thousand_files_are_quick(tmp_path):
    sf.write(tmp_path / "0.wav", np.zeros(1600, dtype=np.int16), RATE, subtype="PCM_16")
    content = (tmp_path / "0.wav").read_bytes()
    for k in range(1, 1000):
        (tmp_path / f"{k}.wav").write_bytes(content)
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("File\n" + "".join(f"{k}.wav\n" for k in range(1000)))
    started = time.perf_counter()
    report = preflight(str(csv_path), None, str(tmp_path), RATE, 0, workers=4)
    elapsed = time.perf_counter() - started
    assert report.ok and report.files_checked == 1000
    assert elapsed < 2.0, f"preflight of 1000 files took {elapsed:.2f} s"


@pytest.mark.skipif(not SPEECHOCEAN.is_dir(), reason=f"real speech data not found at {SPEECHOCEAN}")
def test_real_corpus_passes():
    report = preflight(
        str(SPEECHOCEAN / "train.csv"), str(SPEECHOCEAN / "trials_dev.txt"), str(SPEECHOCEAN), RATE, 2 * 32000
    )
    assert report.ok, report.format()
    assert (report.utterances, report.speakers, report.trials, report.files_checked) == (850, 170, 3600, 1250)
    assert 1.1 < report.train_hours < 1.3
    assert not any("also appear in the trials" in w for w in report.warnings)
