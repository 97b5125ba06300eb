"""A DDP rendezvous that listens on the node's cluster address only.

Ray Train's torch backend lets `init_process_group("env://")` create the rendezvous `TCPStore`, and PyTorch's
store listens on every interface (IPv4 and IPv6) whatever address it is given: an unauthenticated port, open to
any network the node is on, for as long as the trial trains. Here rank 0 binds the store's socket itself, to the
address Ray knows the node by (127.0.0.1 on a loopback cluster, the node IP on a real one), and hands it to the
store as `master_listen_fd`. Gloo and NCCL open their own ports on the interface that holds that address
(GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME, unless already set).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
from datetime import timedelta

import ray
import torch.distributed as dist
from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _TorchBackend  # no public hook for the store

SIOCGIFADDR = 0x8915
"""Linux ioctl: the IPv4 address of an interface."""

_listener: socket.socket | None = None
"""Rank 0's bound rendezvous socket, kept open until the store owns it."""


class NodeBoundTorchConfig(TorchConfig):
    """Ray Train's TorchConfig whose rendezvous listens on the rank-0 node's address only."""

    @property
    def backend_cls(self):
        return NodeBoundBackend


class NodeBoundBackend(_TorchBackend):
    """Ray Train's torch backend with the rendezvous of `bind_listener` / `join_process_group`."""

    def on_start(self, worker_group, backend_config: TorchConfig) -> None:
        gpus = worker_group.get_resources_per_worker().get("GPU", 0)
        backend = backend_config.backend or ("nccl" if gpus > 0 else "gloo")
        address, port = worker_group.execute_single(0, bind_listener)
        worker_group.execute(_set_torch_distributed_env_vars)
        size = len(worker_group)
        ray.get([worker_group.execute_single_async(rank, join_process_group, backend=backend, address=address,
                                                   port=port, world_rank=rank, world_size=size,
                                                   timeout_s=backend_config.timeout_s)
                 for rank in range(size)])

    def on_shutdown(self, worker_group, backend_config: TorchConfig) -> None:
        try:
            super().on_shutdown(worker_group, backend_config)
        except ray.exceptions.RayActorError:  # a dead worker has no process group left to close
            pass


def bind_listener(address: str | None = None) -> tuple[str, int]:
    """Bind and listen on (`address`, a free port) in this process; (address, port). Default address: this
    node's Ray address."""
    global _listener
    address = address or ray.util.get_node_ip_address()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((address, 0))
    listener.listen(128)
    _listener = listener
    return address, listener.getsockname()[1]


def join_process_group(backend: str, address: str, port: int, world_rank: int, world_size: int, timeout_s: int) -> None:
    """Join the trial's process group; rank 0 serves the store on the socket `bind_listener` opened."""
    global _listener
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = address, str(port)
    interface = interface_of(ray.util.get_node_ip_address())
    if interface:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", interface)
    timeout = timedelta(seconds=timeout_s)
    listen_fd = _listener.fileno() if world_rank == 0 and _listener is not None else None
    store = dist.TCPStore(address, port, world_size, world_rank == 0, timeout=timeout, master_listen_fd=listen_fd)
    dist.init_process_group(backend, store=store, rank=world_rank, world_size=world_size, timeout=timeout)
    if world_rank == 0:
        _listener.detach()  # the store's server owns the descriptor now
        _listener = None


def interface_of(address: str) -> str | None:
    """The name of the network interface holding IPv4 `address` (for any 127.x address: the one holding
    127.0.0.1), or None (IPv6, or not found)."""
    if ipaddress.ip_address(address).is_loopback and ":" not in address:
        address = "127.0.0.1"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            if socket.inet_ntoa(answer[20:24]) == address:
                return name
    finally:
        probe.close()
    return None
