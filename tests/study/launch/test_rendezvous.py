"""The DDP rendezvous listens on the given address only, not on every interface as PyTorch's default does."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from study.launch.rendezvous import bind_listener, interface_of, join_process_group
from tests.study.processes import tcp_sockets


def test_the_store_and_gloo_listen_on_loopback_only(monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # what join_process_group sets on a loopback node
    for name in ("MASTER_ADDR", "MASTER_PORT", "NCCL_SOCKET_IFNAME"):  # it sets these: restored afterwards
        monkeypatch.setenv(name, "")
    address, port = bind_listener("127.0.0.1")
    join_process_group("gloo", address, port, world_rank=0, world_size=1, timeout_s=30)
    try:
        listening = [(ip, lport) for _, ip, lport, _, _, state in tcp_sockets([os.getpid()]) if state == "LISTEN"]
        assert ("127.0.0.1", port) in listening
        assert all(ip == "127.0.0.1" for ip, _ in listening), listening
        total = torch.ones(2)
        dist.all_reduce(total)  # the group works
        assert total.tolist() == [1.0, 1.0]
    finally:
        dist.destroy_process_group()


def test_loopback_addresses_map_to_the_loopback_interface():
    assert interface_of("127.0.0.1") == interface_of("127.0.0.3") == "lo"
    assert interface_of("203.0.113.9") is None  # an address no interface holds
