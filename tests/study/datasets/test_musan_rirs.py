"""`study.prepare musan` (8 s chunks by category) and `study.prepare rirs` (the simulated set, indexed)."""

import numpy as np
import pytest
import soundfile as sf

from study.datasets.root import PrepareError
from study.datasets.musan import split_musan
from study.prepare import main
from study.datasets.rirs import index_rirs
from tests.study.fake_datasets import RIR_FILES, make_musan, make_rirs
from trainables.augment import NoiseBank, RirBank


def test_musan_chunks_are_exact(tmp_path):
    source = make_musan(tmp_path / "src")
    report = split_musan(source, tmp_path / "split", workers=2, progress=False)
    chunks = sorted(p.relative_to(tmp_path / "split").as_posix() for p in (tmp_path / "split").rglob("*.wav"))
    assert chunks == [
        "music/fma/music-fma-0000_00000.wav",
        "music/fma/music-fma-0000_00008.wav",
        "music/fma/music-fma-0000_00016.wav",
        "noise/free-sound/noise-free-sound-0000_00000.wav",
        "noise/free-sound/noise-free-sound-0000_00008.wav",
        "noise/sound-bible/noise-sound-bible-0001_00000.wav",
        "speech/librivox/speech-librivox-0000_00000.wav",
    ]
    original, _ = sf.read(source / "musan" / "music/fma/music-fma-0000.wav", dtype="int16")
    second, rate = sf.read(tmp_path / "split" / "music/fma/music-fma-0000_00008.wav", dtype="int16")
    assert rate == 16000 and np.array_equal(second, original[8 * 16000 : 16 * 16000])
    assert {k: (c.files, c.chunks, c.too_short) for k, c in report.categories.items()} == {
        "noise": (2, 3, 0), "speech": (2, 1, 1), "music": (1, 3, 0),
    }
    assert report.written == 7 and report.errors == []
    assert any("noise bank will hold" in line for line in report.lines())

    again = split_musan(source, tmp_path / "split", workers=2, progress=False)
    assert again.written == 0 and again.categories["music"].chunks == 3

    bank = NoiseBank.from_dir(tmp_path / "split", 16000)
    assert bank.categories == ("noise", "speech", "music")
    assert [length for _, length in bank.spans] == [3 * 8 * 16000, 8 * 16000, 3 * 8 * 16000]


def test_musan_cli_refuses_a_folder_without_musan(tmp_path, capsys):
    with pytest.raises(PrepareError, match="no MUSAN folder with noise/, speech/, music/ subfolders"):
        split_musan(tmp_path, tmp_path / "out", progress=False)
    assert main(["musan", "--root", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "add --download" in capsys.readouterr().err


def test_rirs_indexes_only_the_simulated_set(tmp_path):
    report = index_rirs(make_rirs(tmp_path / "src"), tmp_path / "root", workers=2, progress=False)
    assert report.errors == [] and report.counts == {"largeroom": 2, "mediumroom": 2, "smallroom": 2}
    assert (tmp_path / "root" / "simulated_rirs").is_symlink()
    lines = (tmp_path / "root" / "simulated_rirs.csv").read_text().splitlines()
    assert lines[0] == "File,Room,Size,Seconds,SampleRate"
    assert [line.split(",")[0] for line in lines[1:]] == sorted(f"simulated_rirs/{name}" for name in RIR_FILES)
    assert lines[1] == "simulated_rirs/largeroom/Room002/Room002-00001.wav,Room002,largeroom,0.5000,16000"
    bank = RirBank.from_dir(tmp_path / "root" / "simulated_rirs", 16000)
    assert bank.rirs.shape[0] == len(RIR_FILES)  # the point-source noises and real RIRs are not in it


def test_rirs_with_a_broken_file_are_not_indexed(tmp_path, capsys):
    source = make_rirs(tmp_path / "src")
    broken = source / "RIRS_NOISES" / "simulated_rirs" / RIR_FILES[0]
    broken.write_bytes(b"")
    assert main(["rirs", "--root", str(source), "--out", str(tmp_path / "root"), "--workers", "2"]) == 1
    assert f"error: {broken}: empty file (0 bytes)" in capsys.readouterr().out
    assert not (tmp_path / "root" / "simulated_rirs.csv").exists()
