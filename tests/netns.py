"""Machines of their own on one host: Linux network namespaces joined to the host by veths.

`Network(nodes=2, services=N)` (root only) makes, for node ``i``, a network
namespace with one end of a veth pair, ``10.213.<i>.2/24`` on it and a default
route through the host's end, ``10.213.<i>.1``; and on the host an interface
of its own (a veth pair with both ends on the host: containers often lack the
``dummy`` kind) carrying ``services`` addresses (``10.213.0.1``,
``10.213.0.2``, …): local addresses of the host, which every node reaches
through its veth, for a shared PostgreSQL, Redis and the web sites a crawl
fetches. A process started with `Network.run_argv(i, argv)` sees only its
node's network: its own loopback, its address, the host's addresses.

Everything is removed on `close()` (also after a failure half-way through
`open()`): the processes left in the namespaces (which the caller started)
are killed, the namespaces and the host's interface deleted, which takes the
veths with them. Names carry this process's id, so two runs do not collide on
names; two runs at once would on the addresses (`ip` then fails, saying so).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

PREFIX = "10.213"


def ip(*args: str) -> str:
    """Run `ip ARGS` (AssertionError with its message if it fails); its output."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


class Network:
    """`nodes` network namespaces on veths, and `services` host addresses they reach."""

    def __init__(self, nodes: int = 2, services: int = 1) -> None:
        tag = os.getpid() % 100_000
        self.namespaces = [f"cg{tag}n{i}" for i in range(1, nodes + 1)]
        self.dummy = f"cg{tag}s"
        self.services = [f"{PREFIX}.0.{k}" for k in range(1, services + 1)]

    def node_address(self, node: int) -> str:
        """The address of node `node` (0-based), inside its namespace."""
        return f"{PREFIX}.{node + 1}.2"

    def open(self) -> Network:
        try:
            ip("link", "add", self.dummy, "type", "veth", "peer", "name", f"{self.dummy}p")
            for address in self.services:
                ip("addr", "add", f"{address}/32", "dev", self.dummy)
            ip("link", "set", f"{self.dummy}p", "up")
            ip("link", "set", self.dummy, "up")
            for i, ns in enumerate(self.namespaces):
                host_end, node_end = f"{ns}h", f"{ns}v"
                ip("netns", "add", ns)
                ip("link", "add", host_end, "type", "veth", "peer", "name", node_end,
                   "netns", ns)
                ip("addr", "add", f"{PREFIX}.{i + 1}.1/24", "dev", host_end)
                ip("link", "set", host_end, "up")
                ip("-n", ns, "addr", "add", f"{self.node_address(i)}/24", "dev", node_end)
                ip("-n", ns, "link", "set", node_end, "up")
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", ns, "route", "add", "default", "via", f"{PREFIX}.{i + 1}.1")
        except BaseException:
            self.close()
            raise
        return self

    def run_argv(self, node: int, argv: list[str]) -> list[str]:
        """`argv` to run inside node `node`'s namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespaces[node], *argv]

    def pids(self, node: int) -> list[int]:
        """Every process inside node `node`'s namespace."""
        try:
            out = ip("netns", "pids", self.namespaces[node])
        except AssertionError:
            return []
        return [int(p) for p in out.split()]

    def kill(self, node: int, timeout: float = 10.0) -> list[int]:
        """`kill -9` every process of node `node` (the node dies); the pids killed."""
        pids = self.pids(node)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.pids(node) and time.monotonic() < deadline:
            time.sleep(0.1)
        return pids

    def close(self) -> None:
        existing = set(ip("netns", "list").split()) if _ip_works() else set()
        for i, ns in enumerate(self.namespaces):
            if ns in existing:
                self.kill(i)
                with contextlib.suppress(AssertionError):
                    ip("netns", "del", ns)
        with contextlib.suppress(AssertionError):
            ip("link", "del", self.dummy)

    def __enter__(self) -> Network:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ip_works() -> bool:
    try:
        ip("netns", "list")
    except AssertionError:
        return False
    return True
