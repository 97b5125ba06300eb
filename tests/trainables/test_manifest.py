import os
from pathlib import Path

import pytest

from trainables.manifest import ManifestError, Trial, Utterance, read_train_manifest, read_trials, resolve, trial_files

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPEECHOCEAN = DATA / "speechocean762"


def text(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


def test_resolve(tmp_path):
    assert resolve(tmp_path, "a/b.wav") == str(tmp_path / "a" / "b.wav")
    assert resolve(tmp_path, "/abs/c.wav") == "/abs/c.wav"
    assert resolve("rel", "x.wav") == os.path.join(os.getcwd(), "rel", "x.wav")


def test_train_manifest_with_speakers(tmp_path):
    csv_path = text(tmp_path / "train.csv", "File,Speaker\nid1/v/1.wav,id1\n\n/abs/2.flac,id2\n")
    utts = read_train_manifest(csv_path, tmp_path / "root")
    assert utts == [
        Utterance(path=str(tmp_path / "root" / "id1" / "v" / "1.wav"), speaker="id1", name="id1/v/1.wav"),
        Utterance(path="/abs/2.flac", speaker="id2", name="/abs/2.flac"),
    ]


def test_train_manifest_without_speaker_column_and_extra_columns(tmp_path):
    utts = read_train_manifest(text(tmp_path / "a.csv", "File\na.wav\nb.wav\n"), tmp_path)
    assert [u.speaker for u in utts] == [None, None] and [u.name for u in utts] == ["a.wav", "b.wav"]
    meta = text(tmp_path / "m.csv", 'Speaker,Duration,File\ns1,3.2,"x,1.wav"\n,1.0,y.wav\n')
    utts = read_train_manifest(meta, tmp_path)
    assert [(u.name, u.speaker) for u in utts] == [("x,1.wav", "s1"), ("y.wav", None)]


def test_train_manifest_wrong_column_count_names_file_and_line(tmp_path):
    csv_path = text(tmp_path / "bad.csv", "File,Speaker\na.wav,s1\n\nb.wav,s2,extra\n")
    with pytest.raises(ManifestError, match=r"bad\.csv:4: expected 2 column\(s\).*b\.wav"):
        read_train_manifest(csv_path, tmp_path)


def test_train_manifest_empty_path(tmp_path):
    csv_path = text(tmp_path / "bad.csv", "File,Speaker\na.wav,s1\n ,s2\n")
    with pytest.raises(ManifestError, match=r"bad\.csv:3: empty path"):
        read_train_manifest(csv_path, tmp_path)


def test_train_manifest_header_without_file_column(tmp_path):
    csv_path = text(tmp_path / "bad.csv", "Path,Speaker\na.wav,s1\n")
    with pytest.raises(ManifestError, match=r"bad\.csv:1: header .* no 'File' column"):
        read_train_manifest(csv_path, tmp_path)


@pytest.mark.parametrize("content", ["", "File,Speaker\n", "\n\nFile,Speaker\n\n"])
def test_empty_train_manifest(tmp_path, content):
    with pytest.raises(ManifestError, match="no utterances"):
        read_train_manifest(text(tmp_path / "empty.csv", content), tmp_path)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match=r"nope\.csv: training list not found"):
        read_train_manifest(tmp_path / "nope.csv", tmp_path)
    with pytest.raises(ManifestError, match=r"nope\.txt: trial list not found"):
        read_trials(tmp_path / "nope.txt")


def test_trials(tmp_path):
    path = text(tmp_path / "t.txt", "1 a/1.wav a/2.wav\n\n0\ta/1.wav  b/1.wav\r\n1 b/1.wav b/2.wav")
    trials = read_trials(path)
    assert trials == [Trial(1, "a/1.wav", "a/2.wav"), Trial(0, "a/1.wav", "b/1.wav"), Trial(1, "b/1.wav", "b/2.wav")]
    assert trial_files(trials) == ["a/1.wav", "a/2.wav", "b/1.wav", "b/2.wav"]


def test_malformed_trial_line_names_file_line_and_text(tmp_path):
    path = text(tmp_path / "t.txt", "1 a/1.wav a/2.wav\n0 a/1.wav b/1.wav\n1 a/1.wav\n")
    with pytest.raises(ManifestError, match=r"t\.txt:3: expected 'label enrol test' \(3 fields\), got 2: '1 a/1\.wav'"):
        read_trials(path)


@pytest.mark.parametrize("label", ["2", "-1", "true", "1.0"])
def test_trial_label_must_be_0_or_1(tmp_path, label):
    path = text(tmp_path / "t.txt", f"1 a b\n0 a c\n{label} a d\n")
    with pytest.raises(ManifestError, match=rf"t\.txt:3: label must be 0 or 1, got '{label}'"):
        read_trials(path)


@pytest.mark.parametrize("labels, missing", [("00", "target"), ("11", "non-target")])
def test_trials_need_targets_and_non_targets(tmp_path, labels, missing):
    path = text(tmp_path / "t.txt", "".join(f"{lab} a b\n" for lab in labels))
    with pytest.raises(ManifestError, match=rf"no {missing} trials"):
        read_trials(path)


@pytest.mark.skipif(not SPEECHOCEAN.is_dir(), reason=f"real speech data not found at {SPEECHOCEAN}")
def test_real_lists():
    utts = read_train_manifest(SPEECHOCEAN / "train.csv", SPEECHOCEAN)
    assert len(utts) == 850 and len({u.speaker for u in utts}) == 170
    assert all(os.path.isabs(u.path) and u.path.endswith(u.name) for u in utts)
    trials = read_trials(SPEECHOCEAN / "trials_dev.txt")
    assert len(trials) == 3600 and sum(t.label for t in trials) == 1800


@pytest.mark.parametrize("root", ["/", "/data/vox/", "rel/root"])
def test_manifest_paths_equal_resolve_for_awkward_names(tmp_path, root):
    names = ["a/b.wav", "./a.wav", "a//b.wav", "a/../b.wav", "~/x.wav", "/abs/x.wav", ".hidden/x.wav", "a/.b/c.wav",
             "a/b/./c.wav", "id1/v/00001.wav"]
    csv_path = text(tmp_path / "train.csv", "File\n" + "".join(f"{n}\n" for n in names))
    assert [u.path for u in read_train_manifest(csv_path, root)] == [resolve(root, n) for n in names]


def test_a_row_the_csv_module_cannot_parse_names_file_and_line(tmp_path):
    """An oversized field (e.g. a binary file given as the list) is a ManifestError, not a csv.Error."""
    path = tmp_path / "train.csv"
    path.write_text("File,Speaker\na.wav,s\n\"" + "x" * 200_000 + "\",s\n")
    with pytest.raises(ManifestError, match=rf"^{path}:3: not a CSV row the list can hold \(field larger than"):
        read_train_manifest(path, tmp_path)
