"""The lab's WAN emulator: one userspace process forwarding between the hosts' TUN devices.

This kernel has no netem, so per-directed-pair delay, jitter, loss and rate are applied here. Every
lab host has a ``tun0`` whose file descriptor this process holds, with its address on each of its
networks. A packet read from host A's TUN is routed by its IPv4 destination to host B's TUN only
when its source is A's address on the destination's network (a private network is not routed
across: anything else is dropped and counted), after the A→B link model over that network (the
pair's link, then the network's extra in series) has been applied:

    drop with probability loss
    departure = max(now, busy_until) + wire_bits / rate        (FIFO bottleneck, rate 0 = none)
    tail-drop when departure − now > queue                     (router buffer)
    arrival   = departure + delay + jitter − comp              (comp = measured path overhead)
    arrival   = max(arrival, previous arrival)   unless reorder (netem reorders; WANs rarely do)

Why the details (measured in LAB-NOTES.md on this VM): TUN ``vnet_hdr`` with TSO/GSO cuts packet
rate tenfold, so bulk iperf3 does not starve pings; sleeping until ``deadline − guard`` then
``deadline − spin`` then busy-polling removes the 0.1–0.2 ms late wake-ups of long sleeps;
SCHED_FIFO removes multi-ms hypervisor tails; ``comp_us`` cancels the fixed read/write cost.
The TUNs are non-persistent: when this process dies every tun0, address and route goes with it.

Run as ``python -m probe.lab.emulator CONFIG.json``; SIGHUP re-reads the pair table, SIGUSR1
writes counters to ``stats_path``, SIGTERM stops.
"""

from __future__ import annotations

import ctypes
import fcntl
import heapq
import math
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from probe.errors import LabError
from probe.lab import htb
from probe.lab.state import EmulatorConfig, EmulatorStats, LinkCounters, PairTable, load, save
from probe.lab.topology import LinkParams

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
CLONE_NEWNET = 0x40000000
VNET_HDR_LEN = 10  # struct virtio_net_hdr without num_buffers
GSO_NONE = 0
READ_BATCH = 64  # reads per fd per wake-up: 1.7x throughput vs 1 (LAB-NOTES 4f)
MAX_IDLE_S = 0.05  # bounds how late a signal flag is noticed


@dataclass(slots=True)
class Link:
    """One directed pair's model and counters. Times in seconds, rate in bit/s."""

    delay_s: float = 0.0
    jitter_s: float = 0.0
    jitter_dist: str = "normal"
    loss: float = 0.0  # probability, 0..1
    rate_bps: float = 0.0  # 0 = unlimited
    queue_s: float = 0.05
    reorder: bool = False
    busy_until: float = 0.0
    last_arrival: float = 0.0
    counters: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("packets", "bytes", "drop_loss", "drop_queue", "late_max_us", "late_sum_us"), 0.0
        )
    )

    @classmethod
    def from_params(cls, p: LinkParams) -> Link:
        return cls(
            delay_s=p.delay_ms / 1e3,
            jitter_s=p.jitter_ms / 1e3,
            jitter_dist=p.jitter_dist,
            loss=p.loss_pct / 100.0,
            rate_bps=p.rate_bps,
            queue_s=p.queue_ms / 1e3,
            reorder=p.reorder,
        )

    def update(self, other: Link) -> None:
        """Take new parameters, keep counters and queue state (a live ``lab link`` change)."""
        for name in ("delay_s", "jitter_s", "jitter_dist", "loss", "rate_bps", "queue_s"):
            setattr(self, name, getattr(other, name))
        self.reorder = other.reorder


def wire_bytes(pkt: memoryview | bytes, gso: bool) -> int:
    """Bytes on the wire: a GSO super-packet carries one IP+TCP header per segment."""
    if not gso:
        return len(pkt)
    gso_type = pkt[1]
    ip = pkt[VNET_HDR_LEN:]
    if gso_type == GSO_NONE or len(ip) < 40:
        return len(ip)
    gso_size = pkt[4] | (pkt[5] << 8)
    hdr = (ip[0] & 0x0F) * 4 + ((ip[(ip[0] & 0x0F) * 4 + 12] >> 4) * 4)
    payload = len(ip) - hdr
    if gso_size <= 0 or payload <= gso_size:
        return len(ip)
    segments = math.ceil(payload / gso_size)
    return len(ip) + (segments - 1) * hdr


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_tun(netns: str, gso: bool) -> int:
    """Create a non-persistent ``tun0`` inside ``netns`` and return its fd (we own its life)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if gso else 0)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", b"tun0", flags))
        if gso:
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    finally:
        _setns(own)
        os.close(own)
        os.close(target)
    os.set_blocking(fd, False)
    return fd


def configure_tun(netns: str, addresses: list[str]) -> None:
    """MTU and each ``ADDRESS/PREFIX``: the kernel then routes each network's subnet through
    tun0 with that address as source (and a NAT gateway's masquerade picks it); no default
    route exists in a lab namespace."""
    commands = [["link", "set", "tun0", "mtu", "1500", "up"]]
    commands += [["addr", "add", address, "dev", "tun0"] for address in addresses]
    for args in commands:
        subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True)


def packed(address: str) -> bytes:
    """An IPv4 address as it sits in a packet header."""
    return bytes(int(x) for x in address.split("."))


class Emulator:
    """The forwarding loop. Single-threaded: a heap of pending deliveries and ``epoll``."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        settings = config.settings
        self.gso = settings.gso
        self.guard_s = settings.guard_us / 1e6
        self.spin_s = settings.spin_us / 1e6
        self.comp_s = settings.comp_us / 1e6
        self.rng = random.Random(config.seed)
        self.kernel_rate = settings.rate_impl == "htb"
        self.fds: dict[str, int] = {}
        self.by_fd: dict[int, str] = {}
        self.known: set[bytes] = set()  # every host address
        self.links: dict[tuple[str, str, str], Link] = {}  # (src, dst, network)
        self.routes: dict[bytes, tuple[str, Link, int]] = {}  # src+dst address → src, link, fd
        self.heap: list[tuple[float, int, int, bytes, Link]] = []
        self.seq = 0
        self.flags = {"reload": False, "dump": False, "stop": False}
        self.dropped_unroutable = 0
        self.dropped_cross_network = 0

    def setup(self) -> None:
        prefix = {n.name: n.subnet.split("/")[1] for n in self.config.networks}
        for host in self.config.hosts:
            fd = open_tun(host.netns, self.gso)
            self.fds[host.name] = fd
            self.by_fd[fd] = host.name
            self.known |= {packed(a) for a in host.addresses.values()}
            configure_tun(host.netns, [f"{a}/{prefix[n]}" for n, a in host.addresses.items()])
        table = self.load_pairs()
        if self.kernel_rate:
            htb.install(self.config, table.pairs)

    def load_pairs(self) -> PairTable:
        """Read the pair table and make each pair's link over each network both are on."""
        table = load(Path(self.config.pairs_path), PairTable)  # whole or not at all
        if table.comp_us is not None:
            self.comp_s = table.comp_us / 1e6
        hosts = {h.name: h for h in self.config.hosts}
        for (src, dst), params in table.pairs.items():
            for network in self.config.shared_networks(src, dst):
                new = Link.from_params(network.over(params))
                key = (src, dst, network.name)
                if key in self.links:
                    self.links[key].update(new)
                else:
                    self.links[key] = new
                route = packed(hosts[src].addresses[network.name])
                route += packed(hosts[dst].addresses[network.name])
                # -1: no TUN yet (a table read before setup, in tests): never written to
                self.routes[route] = (src, self.links[key], self.fds.get(dst, -1))
        return table

    def reload(self) -> bool:
        """Apply the pair table again (SIGHUP): a parse and an update in memory, never a ``tc``
        (``lab link`` changes the kernel rate classes itself), so the other links' packets wait
        well under 1 ms. A table that cannot be read keeps the links as they were: the data
        plane of a running lab never dies of a bad edit."""
        try:
            self.load_pairs()
        except (OSError, ValueError, LabError) as exc:
            print(f"emulator: reload failed, links unchanged: {exc}", file=sys.stderr, flush=True)
            return False
        return True

    def on_signal(self, signum: int, _frame: object) -> None:
        names = {int(signal.SIGHUP): "reload", int(signal.SIGUSR1): "dump"}
        name = names.get(signum, "stop")
        self.flags[name] = True

    def receive(self, fd: int, now: float) -> None:
        src = self.by_fd[fd]
        off = VNET_HDR_LEN if self.gso else 0
        for _ in range(READ_BATCH):
            try:
                pkt = os.read(fd, 65536 + off)
            except BlockingIOError:
                return
            if len(pkt) < off + 20 or pkt[off] >> 4 != 4:
                continue  # IPv6 is off in the lab; anything else is noise
            route = self.routes.get(pkt[off + 12 : off + 20])
            if route is None or route[0] != src:
                if pkt[off + 16 : off + 20] in self.known:
                    self.dropped_cross_network += 1
                else:
                    self.dropped_unroutable += 1
                continue
            self.enqueue(pkt, route[1], route[2], now)

    def enqueue(self, pkt: bytes, link: Link, dst_fd: int, now: float) -> None:
        c = link.counters
        if link.loss > 0.0 and self.rng.random() < link.loss:
            c["drop_loss"] += 1
            return
        departure = now
        if link.rate_bps > 0.0 and not self.kernel_rate:
            departure = max(now, link.busy_until) + wire_bytes(pkt, self.gso) * 8 / link.rate_bps
            if departure - now > link.queue_s:
                c["drop_queue"] += 1
                return
            link.busy_until = departure
        jitter = 0.0
        if link.jitter_s > 0.0:
            if link.jitter_dist == "uniform":
                jitter = self.rng.uniform(-link.jitter_s, link.jitter_s)
            else:
                jitter = self.rng.gauss(0.0, link.jitter_s)
        arrival = departure + max(0.0, link.delay_s + jitter - self.comp_s)
        if not link.reorder:
            arrival = max(arrival, link.last_arrival)
            link.last_arrival = arrival
        self.seq += 1
        heapq.heappush(self.heap, (arrival, self.seq, dst_fd, pkt, link))

    def deliver(self, now: float) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            due, _, fd, pkt, link = heapq.heappop(heap)
            try:
                os.write(fd, pkt)
            except OSError:
                link.counters["drop_queue"] += 1
                continue
            c = link.counters
            c["packets"] += 1
            c["bytes"] += len(pkt)
            late_us = (time.monotonic() - due) * 1e6
            c["late_sum_us"] += late_us
            c["late_max_us"] = max(c["late_max_us"], late_us)

    def wait_time(self, now: float) -> float:
        """How long select may sleep: wake ``guard`` early, then ``spin`` early, then poll."""
        if not self.heap:
            return MAX_IDLE_S
        left = self.heap[0][0] - now
        if left > self.guard_s:
            return min(left - self.guard_s, MAX_IDLE_S)
        if left > self.spin_s:
            return left - self.spin_s
        return 0.0

    def loop(self) -> None:
        """epoll for the polls and the long sleeps: near a deadline the loop polls without
        sleeping, and select's cost grows with the TUN count (61 in the large lab) on each of
        those polls. But epoll sleeps whole milliseconds (rounded up): a sleep shorter than one,
        the last before a sub-millisecond link's delivery, is select's (microseconds), else an
        intra-region 0.25 ms hop arrived ~1 ms late."""
        poller = select.epoll()
        fds = list(self.by_fd)
        for fd in fds:
            poller.register(fd, select.EPOLLIN)
        while not self.flags["stop"]:
            now = time.monotonic()
            self.deliver(now)
            wait = self.wait_time(now)
            if 0.0 < wait < 1e-3:
                readable = select.select(fds, [], [], wait)[0]
            else:  # whole milliseconds, rounded down: the guard and the spin take the rest
                readable = [fd for fd, _ in poller.poll(math.floor(wait * 1e3) / 1e3)]
            now = time.monotonic()
            for fd in readable:
                self.receive(fd, now)
            if self.flags["reload"]:
                self.flags["reload"] = False
                self.reload()
            if self.flags["dump"]:
                self.flags["dump"] = False
                self.dump_stats()

    def dump_stats(self) -> None:
        usage = os.times()
        stats = EmulatorStats(
            time_monotonic_s=time.monotonic(),
            cpu_s=usage.user + usage.system,
            dropped_unroutable=self.dropped_unroutable,
            comp_us=self.comp_s * 1e6,
            pairs=self.pair_counters(),
            dropped_cross_network=self.dropped_cross_network,
        )
        save(Path(self.config.stats_path), stats)

    def pair_counters(self) -> dict[tuple[str, str], LinkCounters]:
        """Each directed pair's counters, summed over its networks."""
        sums: dict[tuple[str, str], dict[str, float]] = {}
        for (src, dst, _), link in self.links.items():
            total = sums.setdefault((src, dst), dict.fromkeys(link.counters, 0.0))
            for name, value in link.counters.items():
                total[name] = (
                    max(total[name], value) if name == "late_max_us" else total[name] + value
                )
        return {pair: LinkCounters(**c) for pair, c in sums.items()}


def _realtime(priority: int) -> None:
    """SCHED_FIFO removes multi-ms wake-up tails; refusal (no CAP_SYS_NICE) is not fatal."""
    if priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except OSError as exc:
            print(f"emulator: SCHED_FIFO refused ({exc}); timing will be coarser", file=sys.stderr)


def main(argv: list[str]) -> int:
    config = load(Path(argv[0]), EmulatorConfig)
    emu = Emulator(config)
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, emu.on_signal)
    emu.setup()
    _realtime(config.settings.sched_fifo)
    Path(config.ready_path).write_text(str(os.getpid()))
    emu.loop()
    emu.dump_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
