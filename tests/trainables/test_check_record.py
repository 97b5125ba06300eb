"""The check record: its fingerprint, its atomic write and merge, and the probe a trial makes from it."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trainables.check_record import fingerprint, load_or_check, load_record, record_checks, record_path
from trainables.corpus import CACHE_ENV
from trainables.dataset import DataError
from trainables.file_checks import FileChecks
from trainables.manifest import read_train_list

RATE = 16000


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def corpus(root: Path, count: int, rows: int) -> Path:
    """`count` short wavs (length 1000 + k samples) and a `rows`-row list cycling through them."""
    root.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        sf.write(root / f"{k}.wav", np.zeros(1000 + k, dtype=np.int16), RATE, subtype="PCM_16")
    (root / "train.csv").write_text("File,Speaker\n" + "".join(f"{i % count}.wav,s{i % 3}\n" for i in range(rows)))
    return root / "train.csv"


def quiet(_message: str) -> None:
    pass


def test_the_fingerprint_follows_the_manifest_bytes_and_the_root(tmp_path):
    manifest = corpus(tmp_path, 3, 6)
    key = fingerprint(manifest, tmp_path)
    assert key == fingerprint(str(manifest), str(tmp_path / "." )) and len(key) == 64
    assert fingerprint(manifest, tmp_path / "elsewhere") != key
    manifest.write_text(manifest.read_text() + "0.wav,s9\n")
    assert fingerprint(manifest, tmp_path) != key
    assert record_path(key).parent == tmp_path / "cache" / "checks"


def test_the_first_check_is_recorded_and_then_probed(tmp_path, cache):
    manifest = corpus(tmp_path, 4, 10)
    (tmp_path / "2.wav").write_bytes(b"broken")
    files = read_train_list(manifest, tmp_path)
    messages = []
    checks = load_or_check(files, str(manifest), str(tmp_path), 0.5, messages.append)
    assert messages[0].startswith("checked 4 training files in ") and str(cache / "checks") in messages[0]
    assert checks.frames.tolist() == [1000, 1001, 0, 1003] and checks.rates.tolist() == [RATE, RATE, 0, RATE]
    assert set(checks.reasons) == {2} and "unreadable" in checks.reasons[2]
    recorded, info = load_record(record_path(fingerprint(manifest, tmp_path)), 4)
    assert recorded.frames.tolist() == checks.frames.tolist() and recorded.reasons == checks.reasons
    assert info["rows"] == 10 and info["files"] == 4
    assert [p.name for p in (cache / "checks").iterdir()] == [f"{fingerprint(manifest, tmp_path)}.npz"]  # no temp left
    sf.write(tmp_path / "2.wav", np.zeros(500, dtype=np.int16), RATE, subtype="PCM_16")  # repaired since
    messages.clear()
    again = load_or_check(files, str(manifest), str(tmp_path), 0.5, messages.append)
    assert again.frames.tolist() == [1000, 1001, 500, 1003] and not again.reasons
    source = f"the check of {info['written']} ({record_path(fingerprint(manifest, tmp_path))})"
    assert messages == [f"1 of 4 training files reopened at start differ from {source}: {tmp_path / '2.wav'}: changed",
                        f"training files as recorded by {source}; a sample of them reopened"]


def test_a_partial_check_is_merged_into_the_record(tmp_path):
    manifest = corpus(tmp_path, 6, 6)
    files = read_train_list(manifest, tmp_path)
    load_or_check(files.head(2), str(manifest), str(tmp_path), 0.01, quiet)
    partial, _ = load_record(record_path(fingerprint(manifest, tmp_path)), 6)
    assert partial.checked.tolist() == [True, True, False, False, False, False]
    checks = FileChecks.unchecked(6)
    checks.fill(files, np.arange(3, 6))
    record_checks(str(manifest), str(tmp_path), files, checks)
    merged, _ = load_record(record_path(fingerprint(manifest, tmp_path)), 6)
    assert merged.checked.tolist() == [True, True, False, True, True, True]
    assert merged.frames.tolist() == [1000, 1001, 0, 1003, 1004, 1005]


@pytest.mark.parametrize("broken, refused", [(4, False), (150, True)])
def test_the_probe_refuses_only_a_list_clearly_worse_than_max_bad_files(tmp_path, broken, refused):
    """400 files, more than the probe reopens: 1 % broken since the record passes the probe (the dataset then
    counts them as they are met), 37.5 % is refused from the sample."""
    manifest = corpus(tmp_path, 400, 4000)
    files = read_train_list(manifest, tmp_path)
    load_or_check(files, str(manifest), str(tmp_path), 0.01, quiet)
    for k in range(broken):
        (tmp_path / f"{(k * 37) % 400}.wav").write_bytes(b"broken")
    if refused:
        with pytest.raises(DataError, match=r"of 256 training rows sampled at start \(\d+%\) are unreadable"):
            load_or_check(files, str(manifest), str(tmp_path), 0.01, quiet)
    else:
        checks = load_or_check(files, str(manifest), str(tmp_path), 0.01, quiet)
        assert 0 <= len(checks.reasons) <= broken
