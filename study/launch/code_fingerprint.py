"""The code a study runs, identified the same way on the driver and on every node of a cluster.

A fingerprint is margin-study's installed version, a hash of the sources of the packages the trials import
(`study`, `trainables`, `search_spaces`, as found on that machine's import path) and the torch version. Before a
study starts on a cluster, one task per node reports its fingerprint: a node whose version or sources differ
from the driver's, or whose torch differs from the other nodes' (DDP needs one torch), stops the launch with a
message naming the node and the difference.
"""

from __future__ import annotations

import hashlib
import importlib
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

DISTRIBUTION = "margin-study"
PACKAGES = ("study", "trainables", "search_spaces")
"""The packages a trial imports on its nodes (what `study.launch.cluster.connect` ships)."""


class CodeMismatchError(RuntimeError):
    """Some node of the cluster would run other code than the driver; the message names the nodes and the fix."""


def installed_version(distribution: str = DISTRIBUTION) -> str:
    """The installed version of `distribution`, or 'not installed'."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def source_hash(packages: Sequence[str] = PACKAGES) -> str:
    """A short hash of the `.py` files (paths and contents) of `packages`, as imported here."""
    digest = hashlib.sha256()
    for name in packages:
        root = Path(importlib.import_module(name).__file__).parent
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def fingerprint() -> dict[str, str]:
    """This machine's margin-study version, source hash and torch version (no local build label)."""
    return {"version": installed_version(), "sources": source_hash(),
            "torch": installed_version("torch").split("+")[0]}


def describe(found: Mapping[str, str]) -> str:
    return f"margin-study {found['version']}, sources {found['sources']}, torch {found['torch']}"


def node_fingerprints(nodes: Sequence[Mapping[str, Any]], timeout: float = 180.0) -> dict[str, dict[str, str]]:
    """The fingerprint of every node (by IP; `nodes` as in `study.launch.cluster.Cluster.nodes`), each from a task pinned
    to that node: it imports this module, and so the packages, the way a trial on that node would."""
    import ray  # heavy: ray; the fingerprint itself (what the nodes import) runs without it
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(fingerprint)
    refs = {
        f"{node['ip']} ({node['id'][:8]})": task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["id"], soft=False)).remote()
        for node in nodes
    }
    ready, pending = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
    silent = [name for name, ref in refs.items() if ref in pending]
    if silent:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise CodeMismatchError(f"node(s) {', '.join(silent)} did not report which margin-study they run within "
                                f"{timeout:g} s; check that they are alive and can start Python workers")
    found = {}
    for name, ref in refs.items():
        try:
            found[name] = ray.get(ref)
        except Exception as error:  # e.g. the node cannot import margin-study at all
            raise CodeMismatchError(f"node {name} cannot load margin-study: {error}") from error
    return found


def compare(driver: Mapping[str, str], nodes: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One line per node whose version or sources differ from the driver's, or whose torch differs from the
    torch most nodes have; empty when they all agree."""
    problems = []
    torches = [found["torch"] for found in nodes.values()]
    common_torch = max(set(torches), key=torches.count) if torches else driver["torch"]
    for name, found in sorted(nodes.items()):
        differ = [key for key in ("version", "sources") if found[key] != driver[key]]
        if found["torch"] != common_torch:
            differ.append(f"torch, the other nodes have {common_torch}")
        if differ:
            problems.append(f"node {name}: {describe(found)} (differs in {', '.join(differ)})")
    return problems


def check_cluster(nodes: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Raise CodeMismatchError unless every node runs the driver's margin-study; return the driver's fingerprint."""
    driver = fingerprint()
    problems = compare(driver, node_fingerprints(nodes))
    if problems:
        raise CodeMismatchError(
            f"the Ray cluster would run other code than this driver ({describe(driver)}):\n"
            + "\n".join(f"  - {line}" for line in problems)
            + "\nRun the same margin-study everywhere: rebuild the image and restart every node with it "
            "(docker/README.md), or install this version on every node, then start the study again."
        )
    return driver
