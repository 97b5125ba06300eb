"""The data options: one table of flags and config keys, the same in every command line."""

import argparse
from pathlib import Path

from study.data_options import DATA_OPTIONS, add_data_options, data_overrides
from study.prepare import parser as prepare_parser
from study.run import parser as run_parser
from study.train import parser as train_parser
from trainables.config import TrainConfig

ARGV = ["--data-root", "data", "--train", "t.csv", "--trials", "trials.txt", "--noise", "musan", "--rir", "rirs"]
EXPECTED = {"data_root": "data", "train_manifest": "t.csv", "trials": "trials.txt", "noise_dir": "musan",
            "rir_dir": "rirs"}


def test_every_option_sets_a_config_field():
    fields = set(TrainConfig.__dataclass_fields__)
    assert {option.key for option in DATA_OPTIONS} <= fields
    p = argparse.ArgumentParser()
    add_data_options(p)
    assert data_overrides(p.parse_args(ARGV)) == EXPECTED
    assert data_overrides(p.parse_args(["--trials", "x"])) == {"trials": "x"}  # options not given set nothing


def test_absolute_root_resolves_against_this_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = argparse.ArgumentParser()
    add_data_options(p)
    given = data_overrides(p.parse_args(["--data-root", "data", "--train", "t.csv"]), absolute_root=True)
    assert given == {"data_root": str(tmp_path / "data"), "train_manifest": "t.csv"}  # lists stay relative to it
    assert data_overrides(p.parse_args(["--data-root", "~"]), absolute_root=True) == {"data_root": str(Path.home().resolve())}


def test_the_command_lines_read_the_same_options_the_same_way():
    assert data_overrides(run_parser().parse_args(["smoke", *ARGV])) == EXPECTED
    assert data_overrides(train_parser().parse_args(ARGV)) == EXPECTED
    assert data_overrides(prepare_parser().parse_args(["check", *ARGV])) == EXPECTED
