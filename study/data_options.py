"""The data options every command line shares (`--data-root`, `--train`, `--trials`, `--noise`, `--rir`) and the
config keys they set."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class DataOption:
    """One command-line option and the `TrainConfig` field it sets."""

    dest: str
    key: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")


DATA_OPTIONS = (
    DataOption("data_root", "data_root", "dataset folder the lists are relative to (default: the embedded corpus)"),
    DataOption("train", "train_manifest", "training list, File,Speaker CSV (default: train.csv in --data-root)"),
    DataOption("trials", "trials", "trial list, 'label path1 path2' lines"),
    DataOption("noise", "noise_dir", "MUSAN-style noise folder for augmentation (a relative path is under --data-root, like the lists)"),
    DataOption("rir", "rir_dir", "room impulse response folder for augmentation (a relative path is under --data-root)"),
)


def add_data_options(parser: argparse.ArgumentParser, root_required: bool = False,
                     helps: Mapping[str, str] | None = None) -> None:
    """Add the data options to `parser`; `helps` replaces the help of some, by `dest`."""
    for option in DATA_OPTIONS:
        extra = {"required": True} if root_required and option.dest == "data_root" else {}
        parser.add_argument(option.flag, help=(helps or {}).get(option.dest, option.help), **extra)


def data_overrides(args: argparse.Namespace, absolute_root: bool = False) -> dict[str, str]:
    """Config values of the data options given on the command line, by config key. `absolute_root` resolves
    `data_root` against this folder (for processes that run elsewhere, e.g. Ray workers)."""
    given = {option.key: getattr(args, option.dest) for option in DATA_OPTIONS if getattr(args, option.dest)}
    if absolute_root and "data_root" in given:
        given["data_root"] = str(Path(given["data_root"]).expanduser().resolve())
    return given
