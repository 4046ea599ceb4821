"""``lab up | down | status | exec | link``: the lab's life cycle.

``up`` is idempotent (it first sweeps anything left by an earlier lab with the same prefix) and
records every object in ``state.json`` before it exists. ``down`` never trusts that record alone:
it sweeps by prefix and by state-directory marker, so a crashed test or a SIGKILLed supervisor
still ends with nothing left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from probe.errors import InputError, LabError, NeedsRootError
from probe.lab import files, hostsetup, htb, netns
from probe.lab.files import LabPaths
from probe.lab.state import (
    ChildPids,
    ChildSpec,
    EmulatorConfig,
    EmulatorStats,
    LabState,
    PairTable,
    SuperviseSpec,
    load,
    save,
)
from probe.lab.topology import LinkParams, Topology, load_topology

STATE_ROOT = Path(os.environ.get("PROBE_LAB_STATE", "/run/probe-lab"))
READY_TIMEOUT_S = 20.0
DEFAULT_PREFIX = "pl-"
_NO_PREFIX = "\0"  # matches no namespace or link name: sweep by the state marker only


@dataclass(frozen=True, slots=True)
class LabInfo:
    """A running lab as later commands see it."""

    name: str
    prefix: str
    paths: LabPaths
    topology: str
    hosts: tuple[str, ...]
    jump: str

    @property
    def inventory(self) -> Path:
        return self.paths.inventory

    def netns(self, host: str) -> str:
        return f"{self.prefix}{host}"

    def exec_argv(self, host: str, *argv: str) -> list[str]:
        """The command that runs ``argv`` in ``host``'s network namespace (bypassing SSH); its
        hostname and files are this machine's (``host_command`` gives the host's view)."""
        return ["ip", "netns", "exec", self.netns(host), *argv]


def require_root() -> None:
    if os.geteuid() != 0:
        raise NeedsRootError(
            "the lab needs root (it creates network namespaces and runs sshd): run it with sudo"
        )


def up(topology_path: str, *, echo: bool = True) -> LabInfo:
    """Bring a lab up from a topology file; returns where its inventory and truth are."""
    require_root()
    topo = load_topology(topology_path)
    paths = LabPaths(STATE_ROOT / topo.name)
    _down_one(topo.prefix, paths)
    started = time.monotonic()
    STATE_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.root.mkdir(mode=0o700)
    state = LabState(
        name=topo.name,
        prefix=topo.prefix,
        topology=str(Path(topology_path).resolve()),
        hosts=tuple(h.name for h in topo.hosts),
        jump=topo.jump,
    )
    save(paths.state, state)
    try:
        if not Path("/run/sshd").exists():  # sshd's compiled-in privilege separation directory
            Path("/run/sshd").mkdir(mode=0o755)
            state = replace(state, created_run_sshd=True)
            save(paths.state, state)
        netns.add_guard_route()
        if allow := hostsetup.cc_to_allow(topo.hosts):
            state = replace(state, allowed_cc=allow)
            save(paths.state, state)
            hostsetup.change_allowed_cc(add=allow)
        for h in topo.hosts:
            netns.create_netns(topo.netns(h.name))
            hostsetup.configure(topo.netns(h.name), h)
        _add_users(topo, paths, state)
        ctl_addr, jump_addr = topo.controller_addresses
        if f" {ctl_addr}/" in netns.ip("-o", "addr", "show").stdout:
            raise LabError(
                f"controller address {ctl_addr} is in use (another lab?): pick another "
                "addressing.controller_link"
            )
        netns.create_controller_link(
            f"{topo.prefix}ctl", topo.netns(topo.jump), ctl_addr, jump_addr
        )
        _start_nat(topo)
        files.write_keys_and_configs(topo, paths)
        files.write_inventory_and_truth(topo, paths)
        _start_supervisor(topo, paths)
        _wait_ready(topo, paths)
        _check_ssh(topo, paths)
    except BaseException:
        _down_one(topo.prefix, paths)
        raise
    paths.ready.write_text(f"{time.time():.3f}\n")
    if echo:
        print(f"lab {topo.name} up in {time.monotonic() - started:.1f}s: {len(topo.hosts)} hosts")
    return _info(paths)


def _add_users(topo: Topology, paths: LabPaths, state: LabState) -> None:
    """The login accounts the topology names and this machine lacks, each recorded before it
    exists (``down`` deletes them by their marker, whatever the record says)."""
    marker = hostsetup.account_marker(paths)
    for name in hostsetup.missing_users(topo.hosts):
        state = replace(state, created_users=(*state.created_users, name))
        save(paths.state, state)
        hostsetup.add_user(name, marker)


def _start_nat(topo: Topology) -> None:
    """Each host behind NAT: its LAN to the gateway; each gateway: its masquerade."""
    gateways: set[str] = set()
    for h in topo.hosts:
        if h.nat is not None:
            netns.create_nat_lan(topo.netns(h.nat), topo.netns(h.name), h.name, h.lan)
            gateways.add(h.nat)
    for gateway in sorted(gateways):
        netns.start_nat(topo.netns(gateway))


#: Run in each host's own mount namespace before its sshd (``sh -c SCRIPT sh HOSTNAME CONFIG
#: USER [SOURCE TARGET]...``): a hostname, an empty home for root, for a ``user:`` host an empty
#: /home with that account's home, then the tool bind mounts. Every SSH command runs the login
#: shell, and Debian's bash sources ~/.bashrc for SSH commands: this machine's (pyenv init) cost
#: 140 ms of CPU per command, a property of the controller machine that an emulated host must
#: not inherit. Propagation is private (unshare's default), so nothing is mounted outside.
HOST_INIT_SCRIPT = (
    'hostname "$1" && home=$(getent passwd root | cut -d: -f6) && '
    'mount -t tmpfs -o size=16m,mode=0700 probe-lab-home "${home:-/root}" && '
    "config=$2 && user=$3 && shift 3 && "
    'if [ -n "$user" ]; then mount -t tmpfs -o size=16m,mode=0755 probe-lab-users /home && '
    'install -d -m 0700 -o "$user" -g "$(id -g "$user")" "/home/$user"; fi && '
    'while [ $# -ge 2 ]; do mount --bind "$1" "$2" && shift 2 || exit 1; done && '
    'exec /usr/sbin/sshd -D -e -f "$config"'
)


def _start_supervisor(topo: Topology, paths: LabPaths) -> None:
    emu_config, pairs = files.emulator_files(topo, paths)
    save(paths.emulator_config, emu_config)
    save(paths.pairs, pairs)
    children = {
        "emulator": ChildSpec(
            (sys.executable, "-m", "probe.lab.emulator", str(paths.emulator_config)),
            str(paths.logs / "emulator.log"),
        )
    }
    for h in topo.hosts:
        children[f"sshd_{h.name}"] = ChildSpec(
            # unshare --uts gives each host its own hostname; exec keeps sshd the direct child,
            # so its PID (children.json) names the namespaces `lab exec` and `lab tool` enter.
            (
                "ip",
                "netns",
                "exec",
                topo.netns(h.name),
                "unshare",
                "--uts",
                "--mount",  # private mounts: `lab tool` can break a tool on this host only
                "sh",
                "-c",
                HOST_INIT_SCRIPT,
                "sh",
                h.name,
                str(paths.sshd_config(h.name)),
                h.user or "",
                *(part for bind in hostsetup.tool_binds(h, paths) for part in bind),
            ),
            str(paths.sshd_log(h.name)),
        )
    save(paths.root / "supervise.json", SuperviseSpec(children, critical=("emulator",)))
    # setsid --fork: the supervisor is nobody's child here, so it outlives this command and
    # leaves no zombie or "still running" Popen behind; it reports its own PID.
    with (paths.logs / "supervisor.log").open("ab") as log:
        subprocess.run(
            ["setsid", "--fork", sys.executable, "-m", "probe.lab.supervisor", str(paths.root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": _package_root()},
            check=True,
        )
    pid_file = paths.root / "supervisor.pid"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not pid_file.exists():
        if time.monotonic() > deadline:
            raise LabError(f"supervisor did not start: {_tail(paths.logs / 'supervisor.log')}")
        time.sleep(0.02)
    state = load(paths.state, LabState)
    save(paths.state, replace(state, supervisor_pid=int(pid_file.read_text())))


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _wait_ready(topo: Topology, paths: LabPaths) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = {h.name for h in topo.hosts}
    while time.monotonic() < deadline:
        if paths.emulator_ready.exists():
            waiting = {h for h in waiting if "Server listening" not in _read(paths.sshd_log(h))}
            if not waiting:
                return
        if _supervisor_pid(paths) is None:
            break
        time.sleep(0.05)
    raise LabError(f"lab did not become ready; {_diagnose(paths, waiting)}")


def _diagnose(paths: LabPaths, waiting: set[str]) -> str:
    if not paths.emulator_ready.exists():
        return f"emulator: {_tail(paths.logs / 'emulator.log')}"
    host = sorted(waiting)[0]
    return f"sshd on {host}: {_tail(paths.sshd_log(host))}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(path: Path) -> str:
    lines = [ln for ln in _read(path).splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _check_ssh(topo: Topology, paths: LabPaths) -> None:
    """One real login through the controller link proves keys, known_hosts and sshd agree; one
    more per ``user:`` host, whose account and key lookup are its own."""
    users = [h.name for h in topo.hosts if h.user is not None and h.name != topo.jump]
    for host in [topo.jump, *users]:
        proc = subprocess.run(
            ["ssh", "-F", str(paths.ssh_config), host, "true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode != 0:
            raise LabError(f"ssh to {host} failed: {proc.stderr.strip()}")


def _supervisor_pid(paths: LabPaths) -> int | None:
    """The recorded supervisor PID if that process is still ours (cmdline carries our path)."""
    state = _state(paths)
    if state is None or state.supervisor_pid is None:
        return None
    pid = state.supervisor_pid
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    return pid if str(paths.root) in cmdline else None


def down(name: str | None = None, *, echo: bool = True) -> list[str]:
    """Stop one lab (or every lab) and sweep what is left; safe to run any number of times."""
    require_root()
    removed: list[str] = []
    labs = (
        [STATE_ROOT / name] if name else sorted(STATE_ROOT.glob("*")) if STATE_ROOT.exists() else []
    )
    prefixes = {DEFAULT_PREFIX}
    for root in labs:
        paths = LabPaths(root)
        state = _state(paths)
        if state is None:  # no record of it: never guess a prefix (it may be another lab's)
            removed += netns.sweep(_NO_PREFIX, str(paths.root))
            removed += hostsetup.remove_users(hostsetup.account_marker(paths))
            if paths.root.exists():
                shutil.rmtree(paths.root)
            continue
        prefixes.add(state.prefix)
        removed += _down_one(state.prefix, paths)
    if name is None:
        for prefix in prefixes:  # labs whose state directory is already gone
            removed += netns.sweep(prefix, str(STATE_ROOT))
    if not any(STATE_ROOT.glob("*")) if STATE_ROOT.exists() else True:
        netns.remove_guard_route()
    if echo:
        print("lab down: " + (", ".join(removed) if removed else "nothing was running"))
    return removed


def _state(paths: LabPaths) -> LabState | None:
    """The lab's record; None when missing or damaged (``down`` then sweeps by marker only)."""
    try:
        return load(paths.state, LabState)
    except LabError:
        return None


def _down_one(prefix: str, paths: LabPaths) -> list[str]:
    removed: list[str] = []
    pid = _supervisor_pid(paths)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        removed.append("supervisor")
    removed += netns.sweep(prefix, str(paths.root))
    removed += hostsetup.remove_users(hostsetup.account_marker(paths))  # none runs a process now
    state = _state(paths)
    created_run_sshd = state is not None and state.created_run_sshd
    if state is not None and state.allowed_cc:
        hostsetup.change_allowed_cc(remove=state.allowed_cc)
        removed.append(f"allowed congestion control {' '.join(state.allowed_cc)}")
    if paths.root.exists():
        shutil.rmtree(paths.root)
        removed.append(f"state {paths.root}")
    if created_run_sshd and not any(STATE_ROOT.glob("*")):
        shutil.rmtree("/run/sshd", ignore_errors=True)
    return removed


def _info(paths: LabPaths) -> LabInfo:
    state = load(paths.state, LabState)
    return LabInfo(state.name, state.prefix, paths, state.topology, state.hosts, state.jump)


def running() -> list[LabInfo]:
    """Every lab with a ready state directory."""
    if not STATE_ROOT.exists():
        return []
    return [_info(LabPaths(p)) for p in sorted(STATE_ROOT.glob("*")) if (p / "lab.ready").exists()]


def find_host(host: str) -> LabInfo:
    for lab in running():
        if host in lab.hosts:
            return lab
    raise InputError(f"no running lab has a host named {host!r}")


@dataclass(frozen=True, slots=True)
class HostCommand:
    """A command that runs as a lab host sees the machine (``lab exec``)."""

    argv: tuple[str, ...]
    host_view: bool  # False: the host's sshd is down, so only its network namespace is entered


def host_command(lab: LabInfo, host: str, argv: list[str]) -> HostCommand:
    """``argv`` in ``host``'s network, UTS and mount namespaces — those its sshd runs in: its
    hostname, its tmpfs home, its `lab tool` faults — and in the caller's directory. The PID
    namespace is this machine's (``ps`` lists every process). With the sshd down, the network
    namespace alone."""
    if host not in lab.hosts:
        raise InputError(f"lab {lab.name} has no host {host!r}")
    pid = _host_sshd(lab, host)
    if pid is None:
        return HostCommand(tuple(lab.exec_argv(host, *argv)), host_view=False)
    enter = ("nsenter", "-t", str(pid), "-n", "-u", "-m", f"--wd={Path.cwd()}", "--")
    return HostCommand((*enter, *argv), host_view=True)


def _host_sshd(lab: LabInfo, host: str) -> int | None:
    """The PID of ``host``'s running sshd, checked to be in the host's network namespace (a
    recorded PID may be dead, or its number reused by any process of this machine)."""
    try:
        pid = _children(lab).get(f"sshd_{host}")
    except LabError:
        return None
    return pid if pid is not None and netns.in_netns(pid, lab.netns(host)) else None


def emulator_pid(lab: LabInfo) -> int | None:
    try:
        return int(lab.paths.emulator_ready.read_text().strip())
    except (OSError, ValueError):
        return None


def emulator_stats(lab: LabInfo, timeout_s: float = 2.0) -> EmulatorStats:
    """Ask the emulator for its counters (SIGUSR1) and read them."""
    pid = emulator_pid(lab)
    if pid is None:
        raise LabError(f"lab {lab.name}: the emulator is not running")
    before = lab.paths.stats.stat().st_mtime_ns if lab.paths.stats.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if lab.paths.stats.exists() and lab.paths.stats.stat().st_mtime_ns != before:
            return load(lab.paths.stats, EmulatorStats)
        time.sleep(0.02)
    raise LabError(f"lab {lab.name}: the emulator did not answer SIGUSR1")


def set_link(lab: LabInfo, src: str, dst: str, changes: dict[str, float], *, both: bool) -> None:
    """Change a live link (``lab link``): set the kernel rate class of each pair whose rate
    changed (here, not in the emulator, whose one forwarding thread must never wait on ``tc``),
    rewrite the pair table, SIGHUP the emulator, and keep truth.json in step so later
    comparisons use the new figures. ``changes`` maps :class:`LinkParams` fields to values."""
    table = load(lab.paths.pairs, PairTable)
    links = dict(table.pairs)
    changed: dict[tuple[str, str], LinkParams] = {}
    for pair in [(src, dst)] + ([(dst, src)] if both else []):
        if pair not in links:
            raise InputError(f"lab {lab.name} has no pair {pair[0]}>{pair[1]}")
        changed[pair] = LinkParams(**{**asdict(links[pair]), **changes})
    pid = emulator_pid(lab)
    if pid is None:
        raise LabError(f"lab {lab.name}: the emulator is not running")
    config = load(lab.paths.emulator_config, EmulatorConfig)
    if config.settings.rate_impl == "htb":  # userspace: the emulator applies the rate itself
        htb.change(config, {p: n for p, n in changed.items() if n.rate_bps != links[p].rate_bps})
    links.update(changed)
    save(lab.paths.pairs, replace(table, pairs=links))
    os.kill(pid, signal.SIGHUP)
    _rewrite_truth(lab, links)


def _rewrite_truth(lab: LabInfo, links: Mapping[tuple[str, str], LinkParams]) -> None:
    topo = load_topology(lab.topology)
    save(lab.paths.truth, files.lab_truth(replace(topo, links=links)))


def _children(lab: LabInfo) -> Mapping[str, int]:
    """The supervisor's children by name (``children.json``)."""
    return load(lab.paths.root / "children.json", ChildPids).pids


def stop_sshd(lab: LabInfo, host: str) -> None:
    """Stop ``host``'s sshd (a fault for tests: the host stays up, SSH to it fails)."""
    pid = _children(lab).get(f"sshd_{host}")
    if pid is None:
        raise InputError(f"lab {lab.name} has no host {host!r}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and netns.alive(pid):
        time.sleep(0.02)


def drop_sessions(lab: LabInfo, host: str) -> int:
    """Kill every SSH session on ``host`` but its listening sshd: what a jump host's reboot or a
    dropped NAT mapping does to the connections that ran through it. Returns how many died."""
    listener = _children(lab).get(f"sshd_{host}")
    if listener is None:
        raise InputError(f"lab {lab.name} has no host {host!r}")
    sessions = []
    for pid in netns.netns_pids(lab.netns(host)):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if pid != listener and comm.startswith("sshd"):
            sessions.append(pid)
    for pid in sessions:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(sessions)


def start_sshd(lab: LabInfo, host: str) -> None:
    """Start every stopped sshd again (the supervisor restarts dead children on SIGUSR2)."""
    log = lab.paths.sshd_log(host)
    before = _read(log).count("Server listening")
    pid = _supervisor_pid(lab.paths)
    if pid is None:
        raise LabError(f"lab {lab.name}: the supervisor is not running")
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while _read(log).count("Server listening") <= before:
        if time.monotonic() > deadline:
            raise LabError(f"sshd on {host} did not start again: {_tail(log)}")
        time.sleep(0.02)


HANG_SCRIPT = (
    "#!/bin/sh\n# probe lab: a tool that never answers (fault injection)\nexec sleep 86400\n"
)


def _in_host_mounts(lab: LabInfo, host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    pid = _host_sshd(lab, host)
    if pid is None:
        raise LabError(f"lab {lab.name}: sshd of {host!r} is not running")
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-m", *argv], capture_output=True, text=True, check=False
    )


def break_tool(lab: LabInfo, host: str, tool: str, how: str) -> None:
    """Make ``tool`` look ``missing`` (not executable) or ``hang`` (never exits) for every
    command that ``host``'s sshd starts from now on; ``restore_tool`` undoes it."""
    path = shutil.which(tool)
    if path is None:
        raise LabError(f"{tool} is not installed on this machine")
    if how == "missing":
        source = "/dev/null"
    elif how == "hang":
        hang = lab.paths.root / "hang.sh"
        hang.write_text(HANG_SCRIPT)
        hang.chmod(0o755)
        source = str(hang)
    else:
        raise InputError(f"unknown fault {how!r}: use missing or hang")
    proc = _in_host_mounts(lab, host, "mount", "--bind", source, path)
    if proc.returncode != 0:
        raise LabError(f"could not break {tool} on {host}: {proc.stderr.strip()}")


def restore_tool(lab: LabInfo, host: str, tool: str) -> None:
    path = shutil.which(tool)
    while path and _in_host_mounts(lab, host, "umount", path).returncode == 0:
        pass


def heal(lab: LabInfo) -> list[str]:
    """Start again every sshd that is not running (after a fault test); returns their hosts."""
    children = _children(lab)
    dead = [h for h in lab.hosts if not netns.alive(children.get(f"sshd_{h}", -1))]
    for host in dead:
        start_sshd(lab, host)
    return dead
