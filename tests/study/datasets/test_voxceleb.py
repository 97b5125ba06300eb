"""`study.prepare voxceleb`: exact lists from the real layouts, trial lists that round-trip, clear refusals."""

import os
import shutil

import pytest
import soundfile as sf

from study.datasets.root import PrepareError
from study.prepare import main
from study.datasets.voxceleb import prepare_voxceleb
from tests.study.fake_datasets import (
    FFMPEG, VOX1_DEV, VOX1_TEST, VOX2_DEV, make_vox1, make_vox2, official_lists, utterances,
)
from trainables.manifest import read_train_manifest, read_trials


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """VoxCeleb1 (wav) and VoxCeleb2 (m4a) prepared once into `root`."""
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed (.ci/run installs it; locally: apt-get install ffmpeg)")
    base = tmp_path_factory.mktemp("vox")
    vox1, vox2 = make_vox1(base / "VoxCeleb1"), make_vox2(base / "VoxCeleb2")
    summary = prepare_voxceleb(vox1, base / "root", vox2, workers=2, progress=False, log=lambda *_: None)
    return base, base / "root", summary


def test_training_lists_are_exactly_the_dev_sets(prepared):
    _, root, summary = prepared
    assert summary.ok and summary.conversion.converted == len(utterances(VOX2_DEV))
    expected2 = "File,Speaker\n" + "".join(f"voxceleb2/{n}.wav,{s}\n" for n, s in utterances(VOX2_DEV))
    assert (root / "voxceleb2_train.csv").read_text() == expected2  # id09999 of VoxCeleb2 test is left out
    expected1 = "File,Speaker\n" + "".join(f"voxceleb1/{n}.wav,{s}\n" for n, s in utterances(VOX1_DEV))
    assert (root / "voxceleb1_train.csv").read_text() == expected1  # the VoxCeleb1-O speakers are left out
    for name in ("voxceleb1_train.csv", "voxceleb2_train.csv"):
        for utterance in read_train_manifest(root / name, root):
            assert os.path.isfile(utterance.path), utterance.path


def test_converted_audio_is_verified_16k_mono_of_the_same_length(prepared):
    base, root, _ = prepared
    for name, _ in utterances(VOX2_DEV):
        info = sf.info(root / "voxceleb2" / f"{name}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.duration == pytest.approx(4.5, abs=0.1)
    assert not list((root / "voxceleb2").rglob("*.partial"))


def test_trial_lists_round_trip(prepared):
    base, root, summary = prepared
    originals = official_lists()
    for kind, official in (("O", "veri_test2.txt"), ("E", "list_test_all2.txt"), ("H", "list_test_hard2.txt")):
        written = (root / f"voxceleb1_test_{kind}").read_text().splitlines()
        source = originals[official].splitlines()
        assert len(written) == len(source)
        for line, original in zip(written, source):
            label, a, b = line.split()
            assert a.startswith("voxceleb1/") and b.startswith("voxceleb1/")
            assert f"{label} {a[len('voxceleb1/'):]} {b[len('voxceleb1/'):]}" == original
        for trial in read_trials(root / f"voxceleb1_test_{kind}"):
            assert (root / trial.enrol).is_file() and (root / trial.test).is_file()
    assert any(line.startswith("VoxCeleb1-O: 21 trials (the official list has 37,611)") for line in summary.lines)


def test_rerun_converts_nothing_and_writes_the_same_lists(prepared):
    base, root, _ = prepared
    before = {p: p.stat().st_mtime_ns for p in (root / "voxceleb2").rglob("*.wav")}
    csv = (root / "voxceleb2_train.csv").read_text()
    summary = prepare_voxceleb(base / "VoxCeleb1", root, base / "VoxCeleb2", workers=2, progress=False, log=lambda *_: None)
    assert summary.conversion.converted == 0 and summary.conversion.skipped == len(before)
    assert {p: p.stat().st_mtime_ns for p in (root / "voxceleb2").rglob("*.wav")} == before
    assert (root / "voxceleb2_train.csv").read_text() == csv


def test_vox2_already_in_wav_is_linked_without_ffmpeg(tmp_path):
    vox1, vox2 = make_vox1(tmp_path / "v1"), make_vox2(tmp_path / "v2", m4a=False)
    summary = prepare_voxceleb(vox1, tmp_path / "root", vox2, workers=1, progress=False, log=lambda *_: None)
    assert summary.conversion is None
    assert (tmp_path / "root" / "voxceleb2" / "id00012").is_symlink()
    rows = (tmp_path / "root" / "voxceleb2_train.csv").read_text().splitlines()[1:]
    assert rows == [f"voxceleb2/{n}.wav,{s}" for n, s in utterances(VOX2_DEV)]


def test_separate_dev_and_test_folders_are_both_found(tmp_path):
    make_vox1(tmp_path / "all")
    for part, spec in (("vox1_dev_wav", VOX1_DEV), ("vox1_test_wav", VOX1_TEST)):
        for speaker in spec:
            target = tmp_path / "vox1" / part / "wav" / speaker
            target.parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "all" / "wav" / speaker).rename(target)
    meta = tmp_path / "vox1" / "meta"
    meta.mkdir()
    (tmp_path / "all" / "veri_test2.txt").rename(meta / "veri_test2.txt")
    summary = prepare_voxceleb(tmp_path / "vox1", tmp_path / "root", progress=False)
    assert summary.lines[0].startswith("VoxCeleb1 in")
    assert "5 speakers, 12 utterances" in summary.lines[0]
    assert (tmp_path / "root" / "voxceleb1_test_O").is_file() and not (tmp_path / "root" / "voxceleb1_test_E").exists()
    assert any("list_test_all2.txt not found" in line for line in summary.lines)


def test_missing_o_list_names_the_expected_file_and_folders(tmp_path):
    vox1 = make_vox1(tmp_path / "v1", lists=False)
    (vox1 / "veri_test.txt").write_text(official_lists()["veri_test2.txt"])
    with pytest.raises(PrepareError) as error:
        prepare_voxceleb(vox1, tmp_path / "root", progress=False)
    message = str(error.value)
    assert "veri_test2.txt" in message and str(vox1) in message and "--trials-dir" in message
    assert "found the uncleaned" in message and "veri_test.txt" in message
    assert not (tmp_path / "root" / "voxceleb1_test_O").exists()


def test_trial_naming_absent_audio_is_refused_with_file_and_line(tmp_path):
    vox1 = make_vox1(tmp_path / "v1")
    lines = (vox1 / "veri_test2.txt").read_text().splitlines()
    lines[4] = "0 id10270/5r0dWxy17C8/00009.wav id10271/1gtz-CUIygI/00001.wav"
    (vox1 / "veri_test2.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(PrepareError, match=r"veri_test2.txt:5: id10270/5r0dWxy17C8/00009.wav is not in the VoxCeleb1"):
        prepare_voxceleb(vox1, tmp_path / "root", progress=False)


def test_malformed_official_lists_are_reported_with_file_and_line(tmp_path):
    vox1 = make_vox1(tmp_path / "v1")
    (vox1 / "list_test_hard2.txt").write_text("1 id10270/5r0dWxy17C8/00001.wav\n")
    summary = prepare_voxceleb(vox1, tmp_path / "root", progress=False)
    assert f"VoxCeleb1-H: voxceleb1_test_H not written: {vox1}/list_test_hard2.txt:1: expected 'label enrol test'" in (
        "\n".join(summary.lines))
    assert not (tmp_path / "root" / "voxceleb1_test_H").exists() and (tmp_path / "root" / "voxceleb1_test_E").exists()
    (vox1 / "veri_test2.txt").write_text("1 id10270/5r0dWxy17C8/00001.wav id10271/1gtz-CUIygI/00001.wav\n2 a b\n")
    with pytest.raises(PrepareError, match=r"veri_test2.txt:2: label must be 0 or 1, got '2'"):
        prepare_voxceleb(vox1, tmp_path / "root2", progress=False)


def test_cli_without_ffmpeg_says_what_to_install(tmp_path, monkeypatch, capsys):
    vox1 = make_vox1(tmp_path / "v1")
    m4a = tmp_path / "v2" / "dev" / "aac" / "id00012" / "21Uxsk56VDQ" / "00001.m4a"
    m4a.parent.mkdir(parents=True)
    m4a.write_bytes(b"\0" * 64)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # a machine without ffmpeg
    code = main(["voxceleb", "--vox1", str(vox1), "--vox2", str(tmp_path / "v2"), "--out", str(tmp_path / "root")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "ffmpeg is not installed" in err and "apt-get install ffmpeg" in err
    assert "conda install -c conda-forge ffmpeg" in err


def test_cli_prepares_and_reports(prepared, tmp_path, capsys):
    vox1, vox2 = prepared[0] / "VoxCeleb1", prepared[0] / "VoxCeleb2"
    code = main(["voxceleb", "--vox1", str(vox1), "--vox2", str(vox2), "--out", str(tmp_path / "root"), "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "voxceleb2_train.csv: 3 speakers, 7 utterances (the complete set has 5,994 and 1,092,009)" in out
    assert "conversion: 7 converted, 0 already done, 0 failed" in out
    assert f"prepared data root: {tmp_path / 'root'}" in out


def test_a_file_that_fails_conversion_is_left_out_and_retried(prepared, tmp_path):
    vox2 = tmp_path / "VoxCeleb2"
    shutil.copytree(prepared[0] / "VoxCeleb2", vox2)
    broken = vox2 / "dev" / "aac" / "id00015" / "0fijmz4vTVU" / "00002.m4a"
    good = broken.read_bytes()
    broken.write_bytes(good[:150])
    summary = prepare_voxceleb(prepared[0] / "VoxCeleb1", tmp_path / "root", vox2, workers=2, progress=False,
                               log=lambda *_: None)
    assert not summary.ok and summary.conversion.failed[0].startswith(f"{broken}: ffmpeg failed")
    rows = (tmp_path / "root" / "voxceleb2_train.csv").read_text().splitlines()[1:]
    assert "voxceleb2/id00015/0fijmz4vTVU/00002.wav,id00015" not in rows and len(rows) == 6
    assert any("leaves the failed files out; run the command again" in line for line in summary.lines)

    broken.write_bytes(good)  # e.g. downloaded again
    summary = prepare_voxceleb(prepared[0] / "VoxCeleb1", tmp_path / "root", vox2, workers=2, progress=False,
                               log=lambda *_: None)
    assert summary.ok and (summary.conversion.converted, summary.conversion.skipped) == (1, 6)
    assert len((tmp_path / "root" / "voxceleb2_train.csv").read_text().splitlines()) == 8


def test_an_output_inside_the_source_folder_is_not_read_back(tmp_path):
    vox1 = make_vox1(tmp_path / "vox")
    make_vox2(tmp_path / "v2", m4a=False)
    for _ in range(2):  # the second run sees prepared/voxceleb1 and prepared/voxceleb2 inside --vox1
        summary = prepare_voxceleb(vox1, vox1 / "prepared", tmp_path / "v2", progress=False)
        assert "5 speakers, 12 utterances" in summary.lines[0]
    rows = (vox1 / "prepared" / "voxceleb1_train.csv").read_text().splitlines()[1:]
    assert rows == [f"voxceleb1/{n}.wav,{s}" for n, s in utterances(VOX1_DEV)]
