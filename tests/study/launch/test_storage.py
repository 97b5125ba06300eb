"""Results storage and MLflow stores on a multi-node cluster: node-local paths, file stores and loopback servers are
refused with what to use instead; shared filesystems, declared shared folders, URIs and reachable servers pass.
(The same rules against a real two-node cluster: tests/study/test_cluster.py.)"""

from __future__ import annotations

import pytest

from study.launch.storage import (
    SHARED_PATHS_ENV, StorageError, check_cluster_storage, declared_shared, filesystem_type, is_uri, resolve,
)

TWO_LOOPBACK_NODES = ["127.0.0.2", "127.0.0.3"]
TWO_MACHINES = ["10.0.0.1", "10.0.0.2"]

@pytest.fixture
def mounts(tmp_path):
    (tmp_path / "shared" / "scratch").mkdir(parents=True)
    (tmp_path / "sharedness").mkdir()
    path = tmp_path / "mounts"
    path.write_text(f"/dev/vda1 / ext4 rw 0 0\nserver:/export {tmp_path}/shared nfs4 rw 0 0\n"
                    f"tmpfs {tmp_path}/shared/scratch tmpfs rw 0 0\n")
    return str(path)


def test_filesystem_type_is_that_of_the_innermost_mount(mounts, tmp_path):
    assert filesystem_type(tmp_path / "shared" / "results" / "not-yet-made", mounts) == "nfs4"
    assert filesystem_type(tmp_path / "shared" / "scratch" / "results", mounts) == "tmpfs"
    assert filesystem_type(tmp_path / "sharedness", mounts) == "ext4"
    assert filesystem_type("/", mounts) == "ext4"


def test_node_local_results_and_sqlite_store_are_refused_only_on_several_nodes(tmp_path, monkeypatch):
    monkeypatch.delenv(SHARED_PATHS_ENV, raising=False)
    local, store = str(tmp_path / "results"), f"sqlite:///{tmp_path}/mlflow.db"
    check_cluster_storage(local, store, ["127.0.0.2"], assume_shared=False)
    with pytest.raises(StorageError) as error:
        check_cluster_storage(local, store, TWO_LOOPBACK_NODES, assume_shared=False)
    message = str(error.value)
    assert "2 nodes" in message
    assert f"results storage {local} is on a node-local filesystem" in message and "s3://" in message
    assert f"MLflow store {store} is a file on a node-local filesystem" in message
    assert "--tracking-uri http://HOST:5000" in message and "docker/compose.yaml" in message
    assert "--assume-shared-storage" in message
    check_cluster_storage(local, store, TWO_LOOPBACK_NODES, assume_shared=True)


def test_each_refusal_names_only_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.delenv(SHARED_PATHS_ENV, raising=False)
    with pytest.raises(StorageError) as error:
        check_cluster_storage("s3://bucket/results", f"sqlite:///{tmp_path}/mlflow.db", TWO_MACHINES, False)
    assert "MLflow store" in str(error.value) and "results storage" not in str(error.value)
    with pytest.raises(StorageError) as error:
        check_cluster_storage(str(tmp_path / "results"), "http://mlflow:5000", TWO_MACHINES, False)
    assert "results storage" in str(error.value) and "MLflow" not in str(error.value)
    check_cluster_storage("gs://bucket/results", "http://mlflow:5000", TWO_MACHINES, False)


def test_a_loopback_tracking_server_is_refused_only_across_machines(tmp_path):
    for uri in ("http://127.0.0.1:5000", "http://localhost:5000"):
        with pytest.raises(StorageError, match="on loopback, which each node resolves to itself") as error:
            check_cluster_storage("s3://bucket/results", uri, TWO_MACHINES, assume_shared=True)
        assert "10.0.0.1, 10.0.0.2" in str(error.value) and "--assume-shared-storage" not in str(error.value)
        check_cluster_storage("s3://bucket/results", uri, TWO_LOOPBACK_NODES, assume_shared=False)
        check_cluster_storage("s3://bucket/results", uri, ["10.0.0.1", "10.0.0.1"], assume_shared=False)


def test_declared_shared_folders_are_accepted(tmp_path, monkeypatch):
    volume = tmp_path / "volume"
    assert declared_shared(volume / "results", f"/elsewhere:{volume}")
    assert declared_shared(volume, str(volume)) and not declared_shared(tmp_path / "volume2", str(volume))
    monkeypatch.setenv(SHARED_PATHS_ENV, str(volume))
    check_cluster_storage(str(volume / "results"), f"sqlite:///{volume}/mlflow.db", TWO_MACHINES, False)
    with pytest.raises(StorageError, match="results storage"):
        check_cluster_storage(str(tmp_path / "results"), "http://mlflow:5000", TWO_MACHINES, False)


def test_uris_stay_and_paths_become_absolute(tmp_path):
    assert is_uri("gs://b/p") and not is_uri("file:///x") and not is_uri("results")
    assert resolve("s3://b/p") == "s3://b/p"
    assert resolve("results", tmp_path) == str(tmp_path / "results")
    assert resolve("file:///data/r") == "/data/r"
