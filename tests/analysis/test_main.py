"""`python -m analysis`: impossible options and an --out that cannot be a folder are refused before any run is read."""

import pytest

from analysis.__main__ import main


@pytest.mark.parametrize("command", ["tables", "figures"])
def test_an_out_that_is_a_file_is_refused(tmp_path, capsys, command):
    (tmp_path / "tables").write_text("a file\n")
    args = [command, "paper_table2", "--tracking-uri", f"sqlite:///{tmp_path / 'absent.db'}", "--out",
            str(tmp_path / "tables")]
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'tables'} is a file, not a folder\n"


@pytest.mark.parametrize("option, value, expected", [("--bootstrap", "-1", ">= 0"), ("--top", "0", ">= 1"),
                                                     ("--top", "ten", ">= 1")])
def test_impossible_counts_are_refused_by_the_parser(capsys, option, value, expected):
    with pytest.raises(SystemExit) as exit_:
        main(["tables", "paper_table2", option, value])
    assert exit_.value.code == 2
    assert f"error: argument {option}: expected an integer {expected}, got '{value}'" in capsys.readouterr().err
