"""A real `mlflow server` on 127.0.0.1 over a SQLite store, which a test can kill and restart on the same port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.study.processes import free_port, stop_tree


class MlflowServer:
    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{self.folder}/store.db",
             "--artifacts-destination", str(self.folder / "artifacts")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job runner: 8 fewer processes
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2)
                return
            except OSError:
                assert self.proc.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        raise AssertionError("mlflow server did not start in 90 s")

    def kill(self) -> None:
        """SIGTERM, then at once SIGKILL, the server and its workers."""
        if self.proc is not None:
            stop_tree([self.proc.pid], grace=0)
            self.proc.wait(timeout=30)
