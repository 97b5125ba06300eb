"""The code fingerprint: what changes it, and how the driver's and the nodes' fingerprints are compared.
(A real mismatch on a real two-node cluster: tests/study/test_cluster.py.)"""

from __future__ import annotations

import sys

import pytest

from study.launch import code_fingerprint as fingerprint

DRIVER = {"version": "0.1.0", "sources": "aaaa", "torch": "2.14.1"}


@pytest.fixture
def package(tmp_path, monkeypatch):
    """An importable package `fp_pkg` with one submodule, removed from sys.modules afterwards."""
    root = tmp_path / "fp_pkg"
    (root / "__pycache__").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "loss.py").write_text("MARGIN = 0.2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    sys.modules.pop("fp_pkg", None)


def test_source_hash_follows_contents_and_names_but_not_bytecode(package):
    before = fingerprint.source_hash(["fp_pkg"])
    assert fingerprint.source_hash(["fp_pkg"]) == before
    (package / "__pycache__" / "loss.cpython-311.pyc").write_bytes(b"\0" * 16)
    (package / "notes.txt").write_text("not code")
    assert fingerprint.source_hash(["fp_pkg"]) == before
    (package / "loss.py").write_text("MARGIN = 0.3\n")
    changed = fingerprint.source_hash(["fp_pkg"])
    assert changed != before
    (package / "loss.py").rename(package / "losses.py")
    assert fingerprint.source_hash(["fp_pkg"]) != changed


def test_this_checkout_has_a_fingerprint():
    found = fingerprint.fingerprint()
    assert set(found) == {"version", "sources", "torch"} and len(found["sources"]) == 16
    assert "+" not in found["torch"] and found["torch"][0].isdigit()


def test_nodes_agreeing_with_the_driver_pass():
    assert fingerprint.compare(DRIVER, {"10.0.0.1": dict(DRIVER), "10.0.0.2": dict(DRIVER)}) == []


def test_each_difference_is_named_per_node():
    nodes = {
        "10.0.0.1": dict(DRIVER),
        "10.0.0.2": {**DRIVER, "version": "0.0.9"},
        "10.0.0.3": {**DRIVER, "sources": "bbbb"},
        "10.0.0.4": {**DRIVER, "torch": "2.13.0"},
    }
    problems = fingerprint.compare(DRIVER, nodes)
    assert problems == [
        "node 10.0.0.2: margin-study 0.0.9, sources aaaa, torch 2.14.1 (differs in version)",
        "node 10.0.0.3: margin-study 0.1.0, sources bbbb, torch 2.14.1 (differs in sources)",
        "node 10.0.0.4: margin-study 0.1.0, sources aaaa, torch 2.13.0 (differs in torch, the other nodes have 2.14.1)",
    ]


def test_the_drivers_own_torch_does_not_matter():
    """The driver only plans and logs: a CPU laptop's torch may differ from the GPU nodes' as long as they agree."""
    assert fingerprint.compare({**DRIVER, "torch": "2.9.0"}, {"10.0.0.1": dict(DRIVER), "10.0.0.2": dict(DRIVER)}) == []
