"""Where a study's results go, and what a multi-node cluster refuses: storage or an MLflow store not every node reaches.

Ray Tune and Ray Train write trial results and checkpoints from every node, and rank 0 of a trial (on any node)
logs to MLflow: on more than one node, results must be on storage every node shares and MLflow must be a store
every node reaches. A URI (s3://, gs://, ...), a path on a network filesystem, or one under a folder declared in
`$MARGIN_STUDY_SHARED_PATHS` (mounted on every node, e.g. a compose volume or a Kubernetes PVC) is accepted; other
local paths are refused unless the user vouches for them (`--assume-shared-storage`, e.g. several Ray nodes on one
machine). A tracking server on loopback is refused when the nodes are on several machines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import pyarrow.fs

from study.launch.cluster import is_loopback
from study.tracking.store import store_path

SHARED_FILESYSTEMS = {
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs", "fuse.glusterfs",
    "fuse.cephfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs", "fuse.sshfs", "fuse.goofys", "fuse.mountpoint-s3",
    "efs", "9p", "virtiofs", "orangefs", "panfs", "wekafs", "afs",
}
"""Filesystem types whose files every node of a cluster can see (when mounted there too)."""
SHARED_PATHS_ENV = "MARGIN_STUDY_SHARED_PATHS"
"""Folders (separated by ':') that every node mounts at the same path, whatever their filesystem type."""


class StorageError(ValueError):
    """The results storage or the MLflow store cannot be used on this cluster; the message says why and what instead."""


def is_uri(path: str) -> bool:
    """A remote storage URI (not a local path or file://)."""
    return "://" in path and not path.startswith("file://")


def resolve(path: str, cwd: str | Path | None = None) -> str:
    """An absolute local path, or the URI unchanged."""
    if is_uri(path):
        return path
    if path.startswith("file://"):
        path = path[len("file://"):]
    return str((Path(cwd or os.getcwd()) / Path(path).expanduser()).resolve())


def filesystem_type(path: str | Path, mounts: str = "/proc/mounts") -> str:
    """The type of the filesystem holding `path` (its nearest existing parent), e.g. 'ext4', 'nfs4'; '' if unknown."""
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    best, kind = "", ""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def declared_shared(path: str | Path, declared: str | None = None) -> bool:
    """Whether `path` is in a folder that `$MARGIN_STUDY_SHARED_PATHS` (or `declared`) names as mounted on every node."""
    declared = os.environ.get(SHARED_PATHS_ENV, "") if declared is None else declared
    path = Path(path).resolve()
    for folder in filter(None, declared.split(os.pathsep)):
        folder = Path(folder).resolve()
        if path == folder or folder in path.parents:
            return True
    return False


def node_local(path: str) -> str | None:
    """Why `path` is only on this node ('on a node-local filesystem (ext4)'), or None when every node can see it."""
    if is_uri(path) or declared_shared(path):
        return None
    kind = filesystem_type(path)
    if kind in SHARED_FILESYSTEMS:
        return None
    return f"on a node-local filesystem ({kind or 'unknown type'})"


def spans_machines(node_ips: Sequence[str]) -> bool:
    """Whether the nodes are on more than one machine (nodes on loopback addresses share this one)."""
    return len(set(node_ips)) > 1 and not all(is_loopback(ip) for ip in node_ips)


def check_cluster_storage(storage: str, tracking_uri: str, node_ips: Sequence[str], assume_shared: bool) -> None:
    """Raise StorageError, naming what to use instead, when the results storage or the MLflow store is not
    reachable from every node of a multi-node cluster (`node_ips`: one entry per node)."""
    if len(node_ips) <= 1:
        return
    problems = []
    why = None if assume_shared else node_local(storage)
    if why:
        problems.append(
            f"results storage {storage} is {why}: trials on the other nodes would write their results and "
            "checkpoints elsewhere. Pass --storage a folder on a filesystem every node mounts (NFS, Lustre, CephFS, "
            f"...; or list its mount point in ${SHARED_PATHS_ENV}) or an object-store URI (s3://bucket/results, gs://...)."
        )
    store = store_path(tracking_uri)
    why = None if store is None or assume_shared else node_local(str(store))
    if why:
        problems.append(
            f"the MLflow store {tracking_uri} is a file {why}: trials on the other nodes would log to their own "
            "copy of it, or fail. Pass --tracking-uri http://HOST:5000 (or set MLFLOW_TRACKING_URI), an MLflow "
            "tracking server every node reaches: docker/compose.yaml runs one with a PostgreSQL backend."
        )
    host = urlparse(tracking_uri).hostname if tracking_uri.startswith(("http://", "https://")) else None
    if host is not None and is_loopback(host) and spans_machines(node_ips):
        problems.append(
            f"the MLflow tracking server {tracking_uri} is on loopback, which each node resolves to itself "
            f"(the nodes are {', '.join(sorted(set(node_ips)))}). Pass --tracking-uri with an address of the "
            "server every node reaches, e.g. http://mlflow:5000 in docker/compose.yaml."
        )
    if problems:
        vouch = ("\n(--assume-shared-storage accepts local paths that every node sees, e.g. when all nodes run on one "
                 "machine.)") if any("node-local" in problem for problem in problems) else ""
        raise StorageError(
            f"the Ray cluster has {len(node_ips)} nodes, and a study on several nodes needs storage they all reach:\n"
            + "\n".join(f"  - {problem}" for problem in problems) + vouch
        )


def write_text(location: str, text: str) -> None:
    """Write a small text file at a local path or storage URI (folders created)."""
    fs, path = _filesystem(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode())


def read_text(location: str) -> str:
    """Read a small text file from a local path or storage URI."""
    fs, path = _filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def subfolders(location: str, prefix: str) -> list[str]:
    """Names of the folders directly in `location` (a path or URI) that start with `prefix`, sorted."""
    fs, path = _filesystem(location)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return []
    return sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith(prefix))


def _filesystem(location: str):
    """The pyarrow filesystem of a local path or storage URI, and the path in it."""
    return pyarrow.fs.FileSystem.from_uri(location if is_uri(location) else str(Path(location).resolve()))
