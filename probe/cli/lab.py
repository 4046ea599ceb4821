"""``probe lab``: the emulated multi-region fleet on this machine."""

from __future__ import annotations

import subprocess

import click

from probe.cli import main
from probe.units import parse_duration_ms, parse_percent, parse_rate_bps

DEFAULT_TOPOLOGY = "inventory/lab-3regions.yaml"


@main.group()
def lab() -> None:
    """An emulated multi-region fleet: namespaces, real sshd, a jump host, a WAN emulator.

    Needs root. Everything it creates carries the lab prefix and is removed by `lab down`.
    """


@lab.command("up")
@click.argument("topology", default=DEFAULT_TOPOLOGY)
def lab_up(topology: str) -> int:
    """Bring the lab described by TOPOLOGY up (sweeping any earlier one first)."""
    from probe.lab import control
    from probe.lab.render import render_status

    info = control.up(topology)
    click.echo(render_status(info))
    return 0


@lab.command("down")
@click.option("--name", default=None, help="Only this lab (default: every lab, then a sweep).")
def lab_down(name: str | None) -> int:
    """Stop the lab and remove every namespace, link, route, process and file it made."""
    from probe.lab import control

    control.down(name)
    return 0


@lab.command("status")
@click.option("--links/--no-links", default=True, help="Print the resolved link matrix.")
def lab_status(links: bool) -> int:
    """Hosts, processes, emulator load, generated files and the link matrix of running labs."""
    from probe.lab import control
    from probe.lab.render import render_status

    labs = control.running()
    if not labs:
        click.echo("no lab is running")
        return 1
    for info in labs:
        click.echo(render_status(info, links=links))
    return 0


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def lab_exec(host: str, command: tuple[str, ...]) -> int:
    """Run COMMAND as HOST sees the machine, without SSH: probe lab exec eu1 -- hostname

    COMMAND runs in HOST's network, UTS and mount namespaces (its addresses and routes, its
    hostname, its empty tmpfs home, a `lab tool` fault) and in the current directory. The
    process IDs are this machine's: ps shows every process of this machine, not only HOST's.
    When HOST's sshd is down, only its network namespace is entered (said on stderr).
    """
    from probe.lab import control

    control.require_root()
    cmd = control.host_command(control.find_host(host), host, list(command))
    if not cmd.host_view:
        click.echo(
            f"lab exec: the sshd of {host} is not running: only its network namespace is "
            "entered (hostname and files are this machine's)",
            err=True,
        )
    return subprocess.run(cmd.argv, check=False).returncode


@lab.command("link")
@click.argument("src")
@click.argument("dst")
@click.option("--delay", help="One-way delay, e.g. 60ms.")
@click.option("--jitter", help="One-way jitter, e.g. 2ms.")
@click.option("--loss", help="One-way loss, e.g. 1%.")
@click.option("--rate", help="Rate, e.g. 20mbit (0mbit = unlimited).")
@click.option("--one-way", is_flag=True, help="Change SRC>DST only (default: both directions).")
def lab_link(
    src: str,
    dst: str,
    delay: str | None,
    jitter: str | None,
    loss: str | None,
    rate: str | None,
    one_way: bool,
) -> int:
    """Change a live link between SRC and DST; truth.json follows."""
    from probe.lab import control

    control.require_root()
    changes: dict[str, float] = {}
    if delay is not None:
        changes["delay_ms"] = parse_duration_ms(delay)
    if jitter is not None:
        changes["jitter_ms"] = parse_duration_ms(jitter)
    if loss is not None:
        changes["loss_pct"] = parse_percent(loss)
    if rate is not None:
        changes["rate_bps"] = parse_rate_bps(rate)
    if not changes:
        raise click.UsageError("give at least one of --delay, --jitter, --loss, --rate")
    info = control.find_host(src)
    control.set_link(info, src, dst, changes, both=not one_way)
    click.echo(
        f"{src}{'>' if one_way else '<>'}{dst}: "
        + ", ".join(f"{k}={v:g}" for k, v in changes.items())
    )
    return 0


@lab.command("sshd")
@click.argument("host")
@click.argument("action", type=click.Choice(["stop", "start", "drop"]))
def lab_sshd(host: str, action: str) -> int:
    """Stop or start HOST's sshd (new SSH logins fail, the host stays on the network), or drop
    its open SSH sessions (a reboot or a lost NAT mapping, as the connections see it)."""
    from probe.lab import control

    control.require_root()
    info = control.find_host(host)
    if action == "drop":
        click.echo(f"sshd on {host}: dropped {control.drop_sessions(info, host)} session(s)")
        return 0
    (control.stop_sshd if action == "stop" else control.start_sshd)(info, host)
    click.echo(f"sshd on {host}: {action}")
    return 0


@lab.command("tool")
@click.argument("host")
@click.argument("tool", type=click.Choice(["ping", "iperf3"]))
@click.argument("fault", type=click.Choice(["missing", "hang", "restore"]))
def lab_tool(host: str, tool: str, fault: str) -> int:
    """Fault injection: make TOOL missing or hang on HOST (for new SSH sessions), or restore it."""
    from probe.lab import control

    control.require_root()
    info = control.find_host(host)
    if fault == "restore":
        control.restore_tool(info, host, tool)
    else:
        control.break_tool(info, host, tool, fault)
    click.echo(f"{tool} on {host}: {fault}")
    return 0
