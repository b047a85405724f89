"""Separate hosts on one machine: network namespaces joined to the root namespace by veth pairs.

For tests in which roles must not share anything but the network (docs/deployment.md, "Roles"): the
root namespace is one host (the data and web host, at ``network.address``), and each
``network.add_host(name)`` is another, with its own network stack (its own loopback, one veth link,
one address) and, for the processes started through ``host.argv``, its own hostname (a UTS namespace:
``socket.gethostname()`` there is ``name``). Needs root and iproute2 (``ip netns``).

Addressing: a private /24 (10.x.y.0/24, one that no interface or route of the machine uses). The root
end of every veth pair carries the same address, ``10.x.y.1`` (point-to-point, ``peer`` the host's),
so every host reaches the root namespace's servers at one address; host *i* is ``10.x.y.(10+i)``.
Servers in the root namespace listen on ``network.address`` only: nothing outside the machine (and
no other interface) reaches them, and the hosts reach nothing but that address and their own loopback.

``PrivateNetwork(routed=True)``: the hosts reach each other too (a proxy host in front of web hosts,
harness/cluster.py): the root namespace forwards between their links, and only between those (the
forwarding switch of each link's root end, not the machine's ``ip_forward``). ``add_addresses`` gives
one host many more addresses (many volunteers behind one host, each counted apart by per-address limits).

    network = PrivateNetwork()
    try:
        host = network.add_host("learner-a")
        proc = LiveProcess("learner-a", host.argv([sys.executable, "manage.py", ...]), env, log_dir)
    finally:
        network.close()      # kills what still runs in its namespaces, removes links and namespaces
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IP = "ip"
UNSHARE = "unshare"

# Run inside the host's UTS namespace: set its hostname, then become the command (same pid, same
# process group: killing the group kills the command).
_SET_HOSTNAME = "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def netns_missing() -> str | None:
    """Why no network namespaces can be made here (a sentence), or None if they can.

    Tries for real: makes a namespace and a veth pair, and removes them.
    """
    if shutil.which(IP) is None:
        return "ip not found: apt-get install iproute2"
    if shutil.which(UNSHARE) is None:
        return "unshare not found (util-linux)"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = f"soulsai-probe-{os.getpid()}"
    veth = f"ssp{os.getpid() % 1000000}"
    try:
        _ip("netns", "add", probe)
        try:
            _ip("link", "add", f"{veth}h", "type", "veth", "peer", "name", f"{veth}n")
            _ip("link", "del", f"{veth}h")
        finally:
            _ip("netns", "del", probe, check=False)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot make a network namespace with a veth pair here: {exc}"
    return None


@dataclass
class NetnsHost:
    """One host: a network namespace, its veth link to the root namespace, its address."""

    name: str  # its hostname (for processes started through argv)
    netns: str
    address: str
    gateway: str  # the root namespace's address, as this host reaches it
    veth: str  # the root end of its link

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run on this host: in its network namespace, with its own hostname."""
        return [IP, "netns", "exec", self.netns, UNSHARE, "--uts", "--",
                sys.executable, "-c", _SET_HOSTNAME, self.name, *argv]  # fmt: skip

    def pids(self) -> list[int]:
        """Processes running in this host's network namespace."""
        done = _ip("netns", "pids", self.netns, check=False)
        return [int(word) for word in done.stdout.split() if word.isdigit()]


def _used_prefixes() -> str:
    return _ip("-4", "-o", "addr").stdout + _ip("-4", "route", "show", "table", "all").stdout


class PrivateNetwork:
    """The root namespace plus hosts made by ``add_host``; ``close()`` removes everything it made."""

    def __init__(self, *, routed: bool = False) -> None:
        self.routed = routed
        self.tag = str(os.getpid() % 1000000)
        used = _used_prefixes()
        for n in range(256 * 50):
            k = (os.getpid() + n) % (256 * 50)
            prefix = f"10.{200 + k // 256}.{k % 256}."
            if prefix not in used:
                break
        else:
            raise RuntimeError("no free 10.x.y.0/24 for a private network")
        self.prefix = prefix
        self.subnet = f"{prefix}0/24"
        self.address = f"{prefix}1"  # the root namespace (data and web host), as every host reaches it
        self.hosts: list[NetnsHost] = []

    def add_host(self, name: str) -> NetnsHost:
        """A new host named ``name``: a network namespace with loopback and one veth link to the root."""
        i = len(self.hosts)
        host = NetnsHost(
            name=name,
            netns=f"soulsai-{self.tag}-{i}",
            address=f"{self.prefix}{10 + i}",
            gateway=self.address,
            veth=f"ss{self.tag}-{i}h",
        )
        inner = f"ss{self.tag}-{i}n"
        self.hosts.append(host)  # from here on close() removes it, whatever fails below
        _ip("netns", "add", host.netns)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", host.netns)
        _ip("addr", "add", f"{self.address}/32", "peer", f"{host.address}/32", "dev", host.veth)
        _ip("link", "set", host.veth, "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/32", "peer", f"{self.address}/32", "dev", inner)
        _ip("-n", host.netns, "link", "set", inner, "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        if self.routed:
            Path(f"/proc/sys/net/ipv4/conf/{host.veth}/forwarding").write_text("1\n")
            _ip("-n", host.netns, "route", "add", self.subnet, "via", self.address)
        return host

    def add_addresses(self, host: NetnsHost, count: int) -> list[str]:
        """``count`` (at most 191) more addresses for ``host``, from ``.64`` up (the hosts' own are below):
        its processes bind to them as sources. One host per network may have them."""
        if not 0 < count <= 191:
            raise ValueError(f"add_addresses: 1 to 191 addresses, not {count}")
        inner = self._inner(host)
        addresses = [f"{self.prefix}{64 + i}" for i in range(count)]
        batch = "".join(f"address add {a}/32 dev {inner}\n" for a in addresses)
        done = subprocess.run([IP, "-n", host.netns, "-batch", "-"], input=batch, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"ip -batch (addresses of {host.name}) failed: {done.stderr.strip()}")
        for block in ("64/26", "128/25"):  # the root namespace's way back to them
            _ip("route", "add", f"{self.prefix}{block}", "dev", host.veth)
        return addresses

    def _inner(self, host: NetnsHost) -> str:
        return host.veth[:-1] + "n"

    def close(self) -> None:
        """Kill what still runs in the hosts' namespaces (only processes started there), remove the
        links and the namespaces. Safe to call twice; never raises for what is already gone."""
        for host in reversed(self.hosts):
            for pid in host.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            _ip("link", "del", host.veth, check=False)  # removes its peer too
            _ip("netns", "del", host.netns, check=False)
        self.hosts.clear()
