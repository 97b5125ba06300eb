"""Command-line values checked before any work starts, each refused with one line naming the option: numbers with
bounds, the folder a command writes into, the training device."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


def number_type(kind: type[int] | type[float], minimum: float, exclusive: bool = False):
    """An argparse `type`: a finite `kind` >= `minimum` (> with `exclusive`)."""
    what = "an integer" if kind is int else "a number"
    bound = f"{'>' if exclusive else '>='} {minimum:g}"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def output_folder_problem(folder: str | os.PathLike, flag: str) -> str | None:
    """Create `folder` (and its parents) if new; why it cannot be written into, naming `flag`, else None."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        return f"{flag} {path} is a file, not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{flag} {path}: cannot create the folder ({exc.strerror})"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{flag} {path}: the folder is not writable"
    return None


def device_problem(name: str) -> str | None:
    """Why `--device NAME` cannot train here (None when it can): auto, cpu, or an available cuda[:N]."""
    import torch  # heavy: only the commands that train load it

    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        return f"--device {name!r} is not auto, cpu, cuda or cuda:N"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"--device {name}: no CUDA device is available here (use auto or cpu)"
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        return f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None
