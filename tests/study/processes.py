"""Test helpers reading /proc: the processes a test started (and their descendants), and their TCP sockets."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":  # zombies are gone already; only their parent can reap them
                parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(roots) -> set[int]:
    """The live processes among `roots` and everything they (transitively) started."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [r for r in roots if r in parents]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = ipaddress.IPv4Address(raw[::-1])
    else:
        words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
        ip = ipaddress.IPv6Address(b"".join(words))
        ip = ip.ipv4_mapped or ip
    return str(ip), int(port, 16)


def tcp_sockets(pids) -> list[tuple[int, str, int, str, int, str]]:
    """(pid, local ip, local port, remote ip, remote port, state) of every TCP socket the processes hold."""
    inode_pid = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inode_pid[target[8:-1]] = pid
        except OSError:
            continue
    states = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "0A": "LISTEN"}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            inode = fields[9]
            if inode in inode_pid:
                local, remote = _address(fields[1]), _address(fields[2])
                found.append((inode_pid[inode], *local, *remote, states.get(fields[3], fields[3])))
    return found


def is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


class NetWatch:
    """Samples, in a thread, the TCP sockets of a process tree: `outside` keeps connections and listeners on a
    non-loopback address, `wildcard_listeners` (port, process) the sockets listening on every interface (0.0.0.0
    or ::, so off loopback too), `seen` every process of the tree."""

    def __init__(self, roots, interval: float = 0.25):
        self.roots = list(roots)
        self.interval = interval
        self.outside: set[tuple] = set()
        self.seen: set[int] = set()
        self.samples = 0
        self.connections = 0
        self.wildcard_listeners: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add_root(self, pid: int) -> None:
        self.roots.append(pid)

    def __enter__(self) -> "NetWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = descendants(self.roots)
            self.seen |= tree
            for pid, lip, lport, rip, rport, state in tcp_sockets(tree):
                if state == "LISTEN":
                    if lip in ("0.0.0.0", "::"):
                        self.wildcard_listeners.add((lport, _name(pid)))
                    elif not is_loopback(lip):
                        self.outside.add(("listen", lip, lport, _name(pid)))
                    continue
                self.connections += 1
                if not (is_loopback(lip) and is_loopback(rip)):
                    self.outside.add((state, lip, lport, rip, rport))
            self.samples += 1
            time.sleep(self.interval)


def stop_tree(pids, grace: float = 20.0, also=()) -> list[str]:
    """SIGTERM the given processes; give them, their descendants and the processes in `also` (e.g. every pid
    seen in their tree, orphans included) `grace` seconds to end; SIGKILL the rest and return them as
    'pid command' strings."""
    tree = descendants(pids) | set(also)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and descendants(tree):
        time.sleep(0.5)
    left = sorted(descendants(tree))
    names = [f"{pid} {_name(pid)}" for pid in left]
    for pid in left:
        _signal(pid, signal.SIGKILL)
    return names


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:80]
    except OSError:
        return "?"
