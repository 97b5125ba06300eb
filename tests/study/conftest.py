"""Shared fixtures: running `python -m study.run` as a real subprocess, isolated Ray temp dirs, a loopback Ray."""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.study.mlflow_server import MlflowServer
from tests.study.processes import NetWatch, stop_tree

# Read by Ray when it is imported: a local instance in this process binds to 127.0.0.1 only.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ray_tmp():
    """A short private Ray temp dir (unix socket paths must stay short), removed afterwards."""
    folder = tempfile.mkdtemp(prefix="ms", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def study_env(ray_tmp):
    """Environment of a study subprocess: the project importable, its own Ray temp dir, no inherited MLflow URI."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env["RAY_TMPDIR"] = ray_tmp
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env


class StudyProcess:
    """`python -m study.run ...` started in its own session and watched (`net`: its process tree's TCP
    sockets off loopback); `stop()` ends it and every process it started, by pid. With `terminal` its output
    goes to a pseudo-terminal (`columns` wide), copied to `log` as it comes."""

    def __init__(self, args, cwd, env, log: Path, terminal: bool = False, columns: int = 200):
        self.log = log
        self.reader: threading.Thread | None = None
        if terminal:
            self.handle = open(log, "wb")
            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
            self.proc = subprocess.Popen([sys.executable, "-m", "study.run", *args], cwd=cwd, env=env, stdout=slave,
                                         stderr=slave, start_new_session=True)
            os.close(slave)
            self.reader = threading.Thread(target=self._copy, args=(master,), daemon=True)
            self.reader.start()
        else:
            self.handle = open(log, "w")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "study.run", *args], cwd=cwd, env=env, stdout=self.handle,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.net = NetWatch([self.proc.pid]).__enter__()

    def _copy(self, master: int) -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # every writer closed the terminal
                data = b""
            if not data:
                break
            self.handle.write(data)
            self.handle.flush()
        os.close(master)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.reader is not None:
                self.reader.join(timeout=10)
            self.handle.flush()

    def output(self) -> str:
        self.handle.flush()
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the driver alone (as a crash would), leaving what it started to fend for itself."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> list[str]:
        """End the driver and whatever it started that is still running; return those that needed killing."""
        self.net.__exit__()
        left = stop_tree([self.proc.pid], grace=10, also=self.net.seen)
        self.proc.wait(timeout=30)
        self.handle.close()
        return left


@pytest.fixture
def start_study(tmp_path, study_env):
    """Start study subprocesses; each is stopped (with all it started) when the test ends, even on failure."""
    started: list[StudyProcess] = []

    def start(*args, env=None, name="study", terminal=False) -> StudyProcess:
        process = StudyProcess(list(args), tmp_path, env or study_env, tmp_path / f"{name}-{len(started)}.log",
                               terminal=terminal)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def run_study(start_study, *args, timeout: float = 600, env=None) -> tuple[int, str]:
    """Run a study to completion; return (exit status, output)."""
    process = start_study(*args, env=env)
    code = process.wait(timeout)
    return code, process.output()


@dataclass
class SmokeStudy:
    """A finished `python -m study.run smoke` on a terminal: its exit status, console output, what was still
    running after it ended, its network watch, and where its MLflow store and results are."""

    code: int
    output: str
    left: list[str]
    net: NetWatch
    uri: str
    folder: Path


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> SmokeStudy:
    """The smoke study run once per test session (local Ray, SQLite store, the embedded corpus), on a
    pseudo-terminal as a user would run it; the tests that read its console, runs, models and checkpoints share
    it."""
    folder = tmp_path_factory.mktemp("smoke")
    ray_tmp = tempfile.mkdtemp(prefix="ms", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env.update(PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
               RAY_TMPDIR=ray_tmp, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    uri = f"sqlite:///{folder}/store/mlflow.db"
    process = StudyProcess(["smoke", "--storage", str(folder / "results"), "--tracking-uri", uri], folder, env,
                           folder / "study.log", terminal=True)
    try:
        code = process.wait(600)
        output = process.output()
    finally:
        left = process.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return SmokeStudy(code, output, left, process.net, uri, folder)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 (killed at the end; a test may kill and restart it)."""
    server = MlflowServer(tmp_path / "mlflow-server")
    server.start()
    yield server
    server.kill()
