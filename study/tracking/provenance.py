"""What a run records about its inputs: the project's git commit and a fingerprint of the data it reads."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

from trainables.manifest import read_train_manifest, read_trials, resolve, trial_files


def git_commit(repo: str | Path | None = None) -> str:
    """The project's git commit (with '-dirty' when the tree has changes), or 'unknown' outside a checkout."""
    repo = Path(repo or Path(__file__).resolve().parents[2])
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    """This machine in one line: CPU model and count, memory, GPUs, OS, Python and torch versions."""
    import torch  # heavy: only when a launch opens its parent run

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB memory"
    except (ValueError, OSError, AttributeError):
        memory = ""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    gpu = f"{len(gpus)} GPU(s): {', '.join(sorted(set(gpus)))}" if gpus else "no GPU"
    return (f"{model}, {os.cpu_count()} CPU(s){memory}, {gpu}; {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def data_fingerprint(paths: Mapping[str, Any], train_sample: int = 1000) -> str:
    """A short hash of what a run reads: the training and trial lists, the byte size of every trial file and
    of ~`train_sample` training files spread over the list, and the noise/RIR files' names and sizes. Cheap
    (a few thousand stats), and it changes when audio is regenerated or replaced even under the same names."""
    return data_fingerprints(paths, train_sample)[0]


def data_fingerprints(paths: Mapping[str, Any], train_sample: int = 1000) -> tuple[str, dict[str, str]]:
    """`data_fingerprint`, and in the same pass one per list (`train_manifest`, `trials`, where given): the list's
    bytes and the sizes of the files it names (the training list's ~`train_sample` of them)."""
    digest = hashlib.sha256()
    lists = {key: hashlib.sha256() for key in ("train_manifest", "trials") if paths.get(key)}
    root = paths.get("data_root") or ""

    def update(data: bytes, key: str | None = None) -> None:
        digest.update(data)
        if key in lists:
            lists[key].update(data)

    def add_size(path: str, key: str | None = None) -> None:
        try:
            update(f"{os.path.getsize(path)};".encode(), key)
        except OSError:
            update(b"missing;", key)

    for key in ("train_manifest", "trials"):
        path = paths.get(key)
        digest.update(key.encode())
        if path and Path(path).is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    update(block, key)
    try:  # the lists were checked by the worker already; a fingerprint never stops a run
        if paths.get("train_manifest") and Path(paths["train_manifest"]).is_file():
            utterances = read_train_manifest(paths["train_manifest"], root)
            for utterance in utterances[:: max(1, len(utterances) // train_sample)]:
                add_size(utterance.path, "train_manifest")
        if paths.get("trials") and Path(paths["trials"]).is_file():
            for name in trial_files(read_trials(paths["trials"])):
                add_size(resolve(root, name), "trials")
    except (ValueError, OSError):
        digest.update(b"unreadable lists;")
    for key in ("noise_dir", "rir_dir"):
        folder = paths.get(key)
        digest.update(key.encode())
        if folder and Path(folder).is_dir():
            for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
                digest.update(str(path.relative_to(folder)).encode())
                add_size(str(path))
    return digest.hexdigest()[:16], {key: h.hexdigest()[:16] for key, h in lists.items()}

