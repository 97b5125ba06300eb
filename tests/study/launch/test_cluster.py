"""The study on a real two-node Ray cluster on this machine: a head on 127.0.0.2 and a node on 127.0.0.3.

(Ray rewrites 127.0.0.1 to the machine's routable address; other loopback addresses are kept.) The nodes are
`ray start --block` children of the test, stopped by pid at the end, whatever happens. One cluster serves every
test here: node-local storage refused, other code on the nodes refused, DDP across both nodes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from tests.study.conftest import run_study
from tests.study.processes import NetWatch, free_port, stop_tree

HEAD, NODE = "127.0.0.2", "127.0.0.3"


@dataclass
class TwoNodes:
    address: str
    env: dict
    watch: NetWatch


def _node_args(ip: str, temp_dir: str) -> list[str]:
    ports = {flag: free_port() for flag in ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
                                            "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                            "--runtime-env-agent-port")}
    args = ["--node-ip-address", ip, "--num-cpus", "1", "--num-gpus", "0", "--temp-dir", temp_dir,
            "--disable-usage-stats", "--block"]
    for flag, port in ports.items():
        args += [flag, str(port)]
    return args


def _wait_started(log: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ray runtime started" in log.read_text():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"ray start did not come up:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    logs = tmp_path_factory.mktemp("nodes")
    temp_dir = tempfile.mkdtemp(prefix="ms", dir="/tmp")  # short: unix socket paths live under it
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="1")
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # a real cluster: only the loopback node IPs keep it local
    ray_cli = [str(Path(sys.executable).with_name("ray"))]
    port = free_port()
    procs, handles = [], []
    watch = NetWatch([]).__enter__()
    try:
        head_log = logs / "head.log"
        handles.append(open(head_log, "w"))
        procs.append(subprocess.Popen(
            [*ray_cli, "start", "--head", "--port", str(port), "--dashboard-host", HEAD, "--dashboard-port",
             str(free_port()), "--ray-client-server-port", str(free_port()), *_node_args(HEAD, temp_dir)],
            env=env, stdout=handles[-1], stderr=subprocess.STDOUT, start_new_session=True))
        watch.add_root(procs[-1].pid)
        _wait_started(head_log, procs[-1])
        node_log = logs / "node.log"
        handles.append(open(node_log, "w"))
        procs.append(subprocess.Popen(
            [*ray_cli, "start", "--address", f"{HEAD}:{port}", *_node_args(NODE, temp_dir)],
            env=env, stdout=handles[-1], stderr=subprocess.STDOUT, start_new_session=True))
        watch.add_root(procs[-1].pid)
        _wait_started(node_log, procs[-1])
        driver_env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[3]),
                                                                       os.environ.get("PYTHONPATH", "")) if p)}
        yield TwoNodes(f"{HEAD}:{port}", driver_env, watch)
    finally:
        watch.__exit__()
        stop_tree([p.pid for p in reversed(procs)], grace=30, also=watch.seen)
        for proc in procs:
            proc.wait(timeout=30)
        for handle in handles:
            handle.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_node_local_results_and_sqlite_store_are_refused_on_two_nodes(two_nodes, tmp_path, start_study):
    """As `docker compose exec ray-head python -m study.run NAME` runs it: address, storage and tracking URI from
    the environment; here they name node-local paths, and the launch stops before anything is written."""
    env = {**two_nodes.env, "RAY_ADDRESS": two_nodes.address, "MARGIN_STUDY_STORAGE": str(tmp_path / "results"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    code, output = run_study(start_study, "smoke", env=env, timeout=300)
    assert code == 2, output
    assert "2 node(s)" in output
    assert f"results storage {tmp_path}/results is on a node-local filesystem" in output
    assert f"the MLflow store sqlite:///{tmp_path}/mlflow.db is a file on a node-local filesystem" in output
    assert "--tracking-uri http://HOST:5000" in output and "--assume-shared-storage" in output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "results").exists(), "nothing written before"


CHECK_CODE = """
import sys
import ray
from study.launch import cluster, code_fingerprint as fingerprint
address, modules = sys.argv[1], sys.argv[2:]
ray.init(address=address, runtime_env={"py_modules": modules}, log_to_driver=False)
try:
    print(fingerprint.describe(fingerprint.check_cluster(cluster.describe(address, local=False).nodes)))
except fingerprint.CodeMismatchError as error:
    print(error)
    sys.exit(3)
finally:
    ray.shutdown()
"""


@pytest.mark.slow
def test_nodes_running_other_code_than_the_driver_are_refused(two_nodes, tmp_path):
    """The nodes get a copy of the packages with one changed line (shipped as py_modules); the driver imports the
    original. It runs in an empty folder: Ray puts the driver's working directory first on the workers' path."""
    from study.launch.code_fingerprint import PACKAGES

    repo, copies, driver_dir = Path(__file__).resolve().parents[3], tmp_path / "nodes", tmp_path / "driver"
    driver_dir.mkdir()
    for name in PACKAGES:
        shutil.copytree(repo / name, copies / name, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copies / "trainables" / "config.py", "a") as handle:
        handle.write("\nEDITED_ON_THE_NODES = True\n")
    done = subprocess.run([sys.executable, "-c", CHECK_CODE, two_nodes.address, *(str(copies / n) for n in PACKAGES)],
                          cwd=driver_dir, env=two_nodes.env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert "the Ray cluster would run other code than this driver" in output
    assert f"node {HEAD} (" in output and f"node {NODE} (" in output and "(differs in sources)" in output
    assert "rebuild the image" in output


@pytest.mark.slow
def test_smoke_study_on_two_nodes_runs_ddp_across_both_and_stays_on_loopback(two_nodes, tmp_path, start_study):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    process = start_study("smoke", "--address", two_nodes.address, "--workers-per-trial", "2",
                          "--assume-shared-storage", "--storage", str(tmp_path / "results"), "--tracking-uri", uri,
                          env=two_nodes.env)
    code = process.wait(timeout=600)
    output = process.output()
    process.stop()
    assert code == 0, output
    assert "2 node(s), 2 CPU(s)" in output
    assert "code: margin-study" in output and "on every node" in output

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["smoke"], output_format="pandas")
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert len(children) == 2 and set(children["status"]) == {"FINISHED"}
    assert set(children["tags.world_size"]) == {"2"}  # each trial: DDP with one worker on each node
    assert set(children["tags.worker_nodes"]) == {f"{HEAD},{NODE}"}
    assert children["tags.model_uri"].str.startswith("models:/").all(), "each DDP trial logged its encoder model"

    assert two_nodes.watch.connections > 0 and process.net.connections > 0
    assert two_nodes.watch.outside == set(), two_nodes.watch.outside
    assert process.net.outside == set(), process.net.outside
    # Nodes from `ray start` serve Ray's own gRPC on every interface (worker ports 10002-19999 by default: Ray's
    # behaviour, see the README's ports); what a trial opens itself (the DDP rendezvous store, Gloo; ephemeral
    # ports) listens on the node's address only
    trial_ports = {(port, name) for port, name in two_nodes.watch.wildcard_listeners | process.net.wildcard_listeners
                   if "RayTrainWorker" in name and not 10002 <= port <= 19999}
    assert trial_ports == set(), trial_ports
