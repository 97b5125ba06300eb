"""The Ray cluster a study runs on: a local instance on loopback (default) or an existing cluster (`--address`).

`--address` defaults to `$RAY_ADDRESS`, which Ray Jobs (and so KubeRay RayJobs) and docker/compose.yaml set.
The local instance binds to 127.0.0.1 only (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, read when Ray is imported),
starts with the dashboard (Ray Train's placement-group cleaner needs its state API) and is shut down at the end.
Workers get the project's code (PYTHONPATH locally, `py_modules` on a cluster) and the environment variables
the driver chooses; nothing set on the driver reaches them otherwise.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from study.launch.code_fingerprint import PACKAGES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
WORKER_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
"""Faster Train teardown (~1.5 s instead of ~6 s per trial); worker progress lines printed once, as written."""


@dataclass
class Cluster:
    """What the study can use."""

    address: str
    local: bool
    nodes: list[dict[str, Any]] = field(default_factory=list)
    cpus: float = 0.0
    gpus: float = 0.0

    @property
    def node_ips(self) -> list[str]:
        return sorted({n["ip"] for n in self.nodes})

    @property
    def multi_node(self) -> bool:
        return len(self.nodes) > 1

    @property
    def resources(self) -> str:
        return f"{len(self.nodes)} node(s), {self.cpus:g} CPU(s), {self.gpus:g} GPU(s)"


def default_address() -> str | None:
    """`$RAY_ADDRESS` when it names a cluster to join (host:port, auto, ray://...), else None (a local instance).
    A dashboard URL (http://...:8265, what `ray job submit` reads) is not a cluster address and is ignored."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if not address or address.startswith(("http://", "https://")):
        return None
    return address


def is_loopback(host: str) -> bool:
    """Whether `host` (an IP or 'localhost') is a loopback address."""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_env(address: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Environment variables every Ray worker of the study gets."""
    env = {**WORKER_ENV, **extra}
    if address is None:
        env.update(LOCAL_ENV)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


def connect(address: str | None, env: dict[str, str], log: Callable[[str], None] = print) -> Cluster:
    """Start a local Ray instance (address None) or join the cluster at `address`; describe its resources."""
    if address is None:
        os.environ.update(LOCAL_ENV)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # keep every trial's progress lines (read when Ray is imported)
    import ray  # heavy, and must come after the environment above: Ray reads it when imported

    runtime_env: dict[str, Any] = {"env_vars": env}
    if address is None:
        ray.init(address="local", runtime_env=runtime_env, dashboard_host="127.0.0.1", log_to_driver=True)
    else:
        runtime_env["py_modules"] = [importlib.import_module(name) for name in PACKAGES]
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    return describe(address or "local", address is None)


def describe(address: str, local: bool) -> Cluster:
    """The alive nodes and total CPUs/GPUs of the connected cluster."""
    import ray  # heavy: ray (imported by `connect` first, after its environment)

    nodes = [
        {"id": n["NodeID"], "ip": n["NodeManagerAddress"], "cpus": n["Resources"].get("CPU", 0.0),
         "gpus": n["Resources"].get("GPU", 0.0)}
        for n in ray.nodes()
        if n.get("Alive")
    ]
    return Cluster(
        address=address, local=local, nodes=nodes,
        cpus=sum(n["cpus"] for n in nodes), gpus=sum(n["gpus"] for n in nodes),
    )


def disconnect() -> None:
    """Shut down the local instance (and whatever a failed start left), or leave the cluster."""
    import ray  # heavy: ray

    ray.shutdown()


def local_resources() -> tuple[float, float]:
    """(CPUs, GPUs) a local instance would have, without starting it (for --dry-run)."""
    try:
        import torch  # heavy: torch, for --dry-run only

        gpus = float(torch.cuda.device_count())
    except Exception:  # a broken CUDA setup counts as no GPU
        gpus = 0.0
    return float(os.cpu_count() or 1), gpus
