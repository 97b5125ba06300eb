"""`python -m study.prepare`: an unusable option or output folder is one error line with exit 2, before any work."""

from pathlib import Path

import pytest

from study.prepare import main
from tests.study.fake_datasets import make_musan, make_rirs, make_vox1


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sources")
    make_vox1(base / "vox1")
    make_musan(base / "downloads")
    make_rirs(base / "downloads")
    return base


def command(name: str, sources: Path, out: Path) -> list[str]:
    root = ["--vox1", str(sources / "vox1")] if name == "voxceleb" else ["--root", str(sources / "downloads")]
    return [name, *root, "--out", str(out)]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("name", ["voxceleb", "musan", "rirs"])
def test_an_output_that_is_a_file_is_refused(sources, tmp_path, capsys, name):
    (tmp_path / "root").write_text("not a folder\n")
    assert main(command(name, sources, tmp_path / "root")) == 2
    assert error_line(capsys) == f"error: --out {tmp_path / 'root'} is a file, not a folder"


def test_an_output_that_cannot_be_created_is_refused(sources, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(command("rirs", sources, tmp_path / "file" / "root")) == 2
    assert error_line(capsys) == f"error: --out {tmp_path / 'file' / 'root'}: cannot create the folder (Not a directory)"


def test_a_missing_trials_folder_is_refused(sources, tmp_path, capsys):
    args = command("voxceleb", sources, tmp_path / "root") + ["--trials-dir", str(tmp_path / "gone")]
    assert main(args) == 2
    assert error_line(capsys) == f"error: trial list folder {tmp_path / 'gone'} (--trials-dir) is not a folder"


@pytest.mark.parametrize("option, value, expected", [("--chunk-seconds", "0", "a number > 0"),
                                                     ("--chunk-seconds", "nan", "a number > 0"),
                                                     ("--workers", "-2", "an integer >= 1")])
def test_impossible_numbers_are_refused_by_the_parser(sources, tmp_path, capsys, option, value, expected):
    with pytest.raises(SystemExit) as exit_:
        main(command("musan", sources, tmp_path / "root") + [option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: expected {expected}, got '{value}'" in err and "Traceback" not in err
    assert not (tmp_path / "root").exists()
