"""What makes one lab host unlike the others — the topology's ``firewall``, ``user``,
``unprivileged_icmp``, ``tools`` and ``cc`` — as the fleets probe measures have them: a security
group dropping the iperf3 ports, a non-root login, a host without unprivileged ICMP, busybox
tools, another TCP congestion control.

Sysctls and the nftables table live in the host's network namespace and the tool bind mounts in
its mount namespace, so they vanish with them. The login account is the machine's: the lab adds
it only when missing, with the lab's state directory in its GECOS field, and ``lab down`` deletes
every account carrying that marker, so even a lab whose state.json is lost leaves none behind.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from probe.errors import LabError
from probe.lab.files import LabPaths
from probe.lab.topology import LabHost, ports_text

ALLOWED_CC = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
AVAILABLE_CC = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")
FIREWALL_TABLE = "probe_lab_firewall"
NO_GROUP = "1 0"  # a ping_group_range that admits no group (the kernel's own default)
BUSYBOX_TOOLS = ("ping", "timeout")
ABSENT_ON_BUSYBOX = ("fping",)  # a busybox-only host has no fping: probe must use busybox ping


def sysctls(host: LabHost) -> tuple[str, ...]:
    """The host's own settings, applied after the lab's defaults (``netns.create_netns``)."""
    out = []
    if host.cc is not None:
        out.append(f"net.ipv4.tcp_congestion_control={host.cc}")
    if not host.unprivileged_icmp:
        out.append(f"net.ipv4.ping_group_range={NO_GROUP}")
    return tuple(out)


def cc_to_allow(hosts: tuple[LabHost, ...]) -> tuple[str, ...]:
    """The congestion controls the hosts set that this machine restricts: a namespace but the
    machine's own may only default to one in ``tcp_allowed_congestion_control`` (EPERM; here
    "reno bbr" while cubic is built in), a machine-wide list the lab extends while it runs."""
    wanted = dict.fromkeys(h.cc for h in hosts if h.cc is not None)
    available = AVAILABLE_CC.read_text().split()
    for cc in wanted:
        if cc not in available:
            raise LabError(f"congestion control {cc} is not in this kernel ({' '.join(available)})")
    allowed = ALLOWED_CC.read_text().split()
    return tuple(cc for cc in wanted if cc not in allowed)


def change_allowed_cc(*, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> None:
    allowed = [cc for cc in ALLOWED_CC.read_text().split() if cc not in remove]
    ALLOWED_CC.write_text(" ".join([*allowed, *(cc for cc in add if cc not in allowed)]) + "\n")


def nft_ruleset(host: LabHost) -> str:
    """Inbound TCP to the dropped ports is dropped (no reset: a client's connect times out, as
    behind a cloud security group); ICMP, SSH and the host's own outbound connections pass."""
    return (
        f"table inet {FIREWALL_TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f"    tcp dport {{ {ports_text(host.drop_tcp)} }} drop\n"
        "  }\n"
        "}\n"
    )


def configure(netns: str, host: LabHost) -> None:
    """Apply the host's sysctls and firewall inside its network namespace."""
    for setting in sysctls(host):
        _run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", setting], f"{host.name}: sysctl")
    if host.drop_tcp:
        _run(["ip", "netns", "exec", netns, "nft", "-f", "-"], f"{host.name}: nft",
             stdin=nft_ruleset(host))  # fmt: skip


def tool_binds(host: LabHost, paths: LabPaths) -> tuple[tuple[str, str], ...]:
    """(source, target) bind mounts for the host's mount namespace: busybox over ping and
    timeout and no fping (``tools: busybox``), or a ping without its file capability
    (``unprivileged_icmp: false``: iputils ping is ``cap_net_raw=ep`` here, so
    ping_group_range alone withholds nothing)."""
    if host.tools == "busybox":
        busybox = shutil.which("busybox")
        if busybox is None:
            raise LabError(f"{host.name}: tools: busybox needs busybox (make sysdeps)")
        applets = [(busybox, target) for tool in BUSYBOX_TOOLS for target in _installed(tool)]
        absent = [("/dev/null", t) for tool in ABSENT_ON_BUSYBOX for t in _installed(tool)]
        return tuple(applets + absent)  # /dev/null: not executable, so `command -v` skips it
    if not host.unprivileged_icmp:
        plain = paths.root / "ping-without-capability"
        if not plain.exists():
            targets = _installed("ping")
            if not targets:
                raise LabError(f"{host.name}: ping is not installed on this machine")
            shutil.copy(targets[0], plain)  # copies the mode, not the capability xattr
        return tuple((str(plain), target) for target in _installed("ping"))
    return ()


def _installed(tool: str) -> tuple[str, ...]:
    """Every file ``tool`` runs as from a usual PATH, once each (/bin may be /usr/bin)."""
    found: list[str] = []
    for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        path = Path(directory) / tool
        if path.is_file() and (real := os.path.realpath(path)) not in found:
            found.append(real)
    return tuple(found)


def account_marker(paths: LabPaths) -> str:
    """The GECOS field of the accounts this lab adds (a state directory names one lab)."""
    return f"probe lab {paths.root}"


def missing_users(hosts: tuple[LabHost, ...]) -> tuple[str, ...]:
    """The login accounts the hosts name that this machine lacks, once each."""
    names = dict.fromkeys(h.user for h in hosts if h.user is not None)
    return tuple(name for name in names if not _exists(name))


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def add_user(name: str, marker: str) -> None:
    """A system account with its own group and a shell; its home, /home/NAME, exists only in
    the hosts it logs into (a tmpfs each). Password ``*``: none works, and unlike useradd's
    ``!`` it is not a locked account, which sshd without PAM refuses even for a key login."""
    home = ["--no-create-home", "--home-dir", f"/home/{name}"]
    argv = ["useradd", "--system", "--user-group", *home, "--shell", "/bin/bash"]
    _run([*argv, "--password", "*", "--comment", marker, name], f"useradd {name}")


def remove_users(marker: str) -> list[str]:
    """Delete every account this lab added (its GECOS is ``marker``); what was removed."""
    removed = []
    for entry in pwd.getpwall():
        if entry.pw_gecos == marker:
            _run(["userdel", entry.pw_name], f"userdel {entry.pw_name}")
            removed.append(f"user {entry.pw_name}")
    return removed


def _run(argv: list[str], what: str, stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"{what} failed: {proc.stderr.strip() or proc.returncode}")
