"""The prepared data root: what `python -m study.prepare` writes there and what `--dataset` reads from it.

Every path in a list is relative to the data root (the `--out` folder of `study.prepare`), as in the authors'
sslsv layout, so the same lists work wherever the root is mounted:

    <root>/voxceleb1/<speaker>/<video>/<utt>.wav     links to the user's VoxCeleb1 speaker folders
    <root>/voxceleb2/<speaker>/<video>/<utt>.wav     VoxCeleb2 dev converted to 16 kHz mono wav (or links)
    <root>/voxceleb2_train.csv, voxceleb1_train.csv  `File,Speaker`, e.g. voxceleb2/id00012/21Uxsk56VDQ/00001.wav
    <root>/voxceleb1_test_O, _E, _H                  the official trial lists, each path prefixed `voxceleb1/`
    <root>/musan_split/{noise,speech,music}/...      MUSAN in 8 s chunks
    <root>/simulated_rirs -> .../RIRS_NOISES/simulated_rirs, and simulated_rirs.csv (its index)
"""

from __future__ import annotations

import os
from pathlib import Path

VOX1_DIR = "voxceleb1"
VOX2_DIR = "voxceleb2"
VOX1_TRAIN = "voxceleb1_train.csv"
VOX2_TRAIN = "voxceleb2_train.csv"
TRIAL_LISTS = {"O": "voxceleb1_test_O", "E": "voxceleb1_test_E", "H": "voxceleb1_test_H"}
"""Prepared VoxCeleb1 trial lists by name (O = the cleaned original test set, E = extended, H = hard)."""
MUSAN_DIR = "musan_split"
RIR_DIR = "simulated_rirs"
RIR_INDEX = "simulated_rirs.csv"

DATASETS = {
    "voxceleb2": {"train_manifest": VOX2_TRAIN, "trials": TRIAL_LISTS["O"], "noise_dir": MUSAN_DIR, "rir_dir": RIR_DIR},
    "voxceleb1": {"train_manifest": VOX1_TRAIN, "trials": TRIAL_LISTS["O"], "noise_dir": MUSAN_DIR, "rir_dir": RIR_DIR},
}
"""`--dataset` choices: config paths inside a prepared root. 'voxceleb2' is paper A's setup (train on VoxCeleb2
dev, test on VoxCeleb1-O); 'voxceleb1' trains on VoxCeleb1 dev instead (paper P's data, same test list)."""

_HOW = {
    VOX2_TRAIN: "python -m study.prepare voxceleb --vox1 DIR --vox2 DIR --out {root}",
    VOX1_TRAIN: "python -m study.prepare voxceleb --vox1 DIR --out {root}",
    TRIAL_LISTS["O"]: "python -m study.prepare voxceleb --vox1 DIR --out {root}",
    MUSAN_DIR: "python -m study.prepare musan --root DIR --out {root} [--download]",
    RIR_DIR: "python -m study.prepare rirs --root DIR --out {root} [--download]",
}
"""The command that makes each file or folder of a prepared root."""


class PrepareError(RuntimeError):
    """Data that cannot be prepared or used as asked; the message names the file or folder and what to do."""


def dataset_paths(name: str, data_root: str | Path, given: dict[str, str] | None = None) -> dict[str, str]:
    """Config paths of dataset `name` in a prepared `data_root`; entries in `given` win over the layout.

    Raises PrepareError naming each missing file or folder and the `study.prepare` command that makes it.
    """
    if name not in DATASETS:
        raise PrepareError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    root = Path(data_root).expanduser()
    paths = {key: (given or {}).get(key) or value for key, value in DATASETS[name].items()}
    missing = [
        f"{root / DATASETS[name][key]} is missing: run `{_HOW[DATASETS[name][key]].format(root=root)}`"
        for key, value in paths.items()
        if value == DATASETS[name][key] and not (root / value).exists()
    ]
    if missing:
        raise PrepareError(f"dataset {name!r} is not prepared in {root}:\n  " + "\n  ".join(missing))
    return paths


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary sibling, then rename it over `path`: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def link_folder(link: Path, target: Path) -> None:
    """Make `link` a symlink to `target` (replacing an older link); leave it when it already is that folder."""
    target = target.resolve()
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        if link.resolve() == target:
            return
        raise PrepareError(f"{link} exists and is not a link to {target}: move it away or choose another --out")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
