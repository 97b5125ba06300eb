"""Reading a study's runs: a --tracking-uri that is no MLflow store is refused with one line, and left untouched."""

import pytest

from analysis.__main__ import main


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("content", [b"", b"File,Speaker\na.wav,s\n"])
def test_a_file_that_is_no_sqlite_database_is_refused_and_left_as_it_was(tmp_path, capsys, content):
    path = tmp_path / "results.csv"
    path.write_bytes(content)
    assert main(["summary", "paper_table2", "--tracking-uri", f"sqlite:///{path}"]) == 2
    assert error_line(capsys).startswith(f"error: {path} is not an SQLite database")
    assert path.read_bytes() == content  # MLflow would have turned an empty file into a store


def test_a_file_given_as_a_file_store_is_refused(tmp_path, capsys):
    (tmp_path / "mlflow.db").write_bytes(b"SQLite format 3\x00")
    assert main(["summary", "paper_table2", "--tracking-uri", str(tmp_path / "mlflow.db")]) == 2
    assert error_line(capsys) == (f"error: {tmp_path / 'mlflow.db'} is a file, not an MLflow file store (a folder); "
                                  f"for an SQLite store pass --tracking-uri sqlite:///{tmp_path / 'mlflow.db'}")


def test_an_unsupported_scheme_is_refused(capsys):
    assert main(["summary", "paper_table2", "--tracking-uri", "bogus://host/store"]) == 2
    line = error_line(capsys)
    assert line.startswith("error: cannot open the MLflow store bogus://host/store: ") and "'sqlite'" in line
