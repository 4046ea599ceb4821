"""The ``check`` use case with a fake connector (no SSH), and the table ``probe check`` prints."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from probe.cli.measure import render_check
from probe.errors import HostError
from probe.measure.check import HostCheck, check_hosts
from probe.model import CellStatus, CommandResult, Host, Inventory, SshTarget

IPUTILS = "version ping ping from iputils 20221126\n"
PREFLIGHT = {
    "full": f"have ping\nhave iperf3\nhave timeout\n{IPUTILS}"
    "version iperf3 iperf 3.12 (cJSON 1.7.15)\nping_group_range 0\t2147483647\n",
    "no-iperf3": f"have ping\nmissing iperf3\nhave timeout\n{IPUTILS}"
    "version iperf3 sh: iperf3: not found\n",
}


@dataclass
class Conn:
    host: str
    ok: bool
    status: CellStatus
    reason: str
    connect_s: float | None


class FakeConnector:
    """``down`` hosts refuse the connection; ``answers`` is each host's preflight output, an
    exit status (127: no coreutils ``timeout``) or a ``HostError``."""

    def __init__(self, down: set[str], answers: dict[str, str | int | HostError]) -> None:
        self.down, self.answers = down, answers
        self.commands: list[tuple[str, list[str]]] = []

    async def connect(
        self,
        names: Sequence[str] | None = None,
        *,
        on_connected: Callable[[Any], None] | None = None,
    ) -> dict[str, Conn]:
        out = {}
        for name in names or ():
            if name in self.down:
                out[name] = Conn(name, False, CellStatus.UNREACHABLE, "connection refused", None)
            else:
                out[name] = Conn(name, True, CellStatus.OK, "", 0.25)
            if on_connected:
                on_connected(out[name])
        return out

    async def run(
        self, host: str, argv: Sequence[str], *, timeout_s: float | None = None
    ) -> CommandResult:
        self.commands.append((host, list(argv)))
        answer = self.answers[host]
        if isinstance(answer, HostError):
            raise answer
        if isinstance(answer, int):
            return CommandResult(tuple(argv), answer, "", "timeout: not found", 0.1)
        return CommandResult(tuple(argv), 0, answer, "", 0.125)

    async def spawn(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("check arms nothing")


def _inventory(*names: str) -> Inventory:
    hosts = tuple(
        Host(name=n, address=f"10.0.0.{i}", ssh=SshTarget(host=f"10.0.0.{i}"), region=f"r{i % 2}")
        for i, n in enumerate(names, 1)
    )
    hosts += (
        Host(name="jump", address="10.0.0.99", ssh=SshTarget(host="10.0.0.99"), measure=False),
    )
    return Inventory(source="fake.yaml", sha256="0", hosts=hosts)


def _check(down: set[str], answers: dict[str, str | int | HostError]) -> tuple[HostCheck, ...]:
    inv = _inventory("a", "b", "c", "d", "e")
    return asyncio.run(check_hosts(inv, FakeConnector(down, answers)))


ANSWERS: dict[str, str | int | HostError] = {
    "a": PREFLIGHT["full"],
    "b": PREFLIGHT["no-iperf3"],
    "d": 127,
    "e": HostError("e", CellStatus.TIMEOUT, "preflight timed out"),
}


def test_every_measured_host_gets_one_row_in_inventory_order() -> None:
    checks = _check({"c"}, ANSWERS)
    assert [c.host for c in checks] == ["a", "b", "c", "d", "e"]  # not the jump host
    a, b, c, d, e = checks
    assert a.ready and a.reason is None and a.region == "r1"
    assert (a.ping, a.iperf3) == ("ping from iputils 20221126", "iperf 3.12 (cJSON 1.7.15)")
    assert (a.connect_s, a.command_s, a.ping_group_range) == (0.25, 0.125, "0\t2147483647")
    assert b.usable and not b.ready and b.iperf3 is None
    assert c.status is CellStatus.UNREACHABLE and c.reason == "connection refused"
    assert d.status is CellStatus.TOOL_MISSING and d.reason == "coreutils `timeout` missing on d"
    assert e.status is CellStatus.TIMEOUT and e.reason is not None and "timed out" in e.reason
    assert not any(x.ready for x in (c, d, e))


def test_check_runs_one_preflight_per_reachable_host_and_nothing_else() -> None:
    connector = FakeConnector({"c"}, ANSWERS)
    asyncio.run(check_hosts(_inventory("a", "b", "c", "d", "e"), connector))
    assert sorted(host for host, _ in connector.commands) == ["a", "b", "d", "e"]
    assert all(argv[:2] == ["sh", "-c"] for _, argv in connector.commands)


def test_the_table_says_missing_for_a_tool_and_the_reason_for_a_host() -> None:
    lines = render_check(_check({"c"}, ANSWERS)).splitlines()
    assert lines[0].split()[:3] == ["host", "region", "ssh"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert "MISSING" not in rows["a"] and "0.25" in rows["a"] and "0.12" in rows["a"]
    assert rows["b"].count("MISSING") == 1 and "iputils" in rows["b"]
    assert "unreachable" in rows["c"] and rows["c"].rstrip().endswith("connection refused")
    assert "MISSING" not in rows["c"] + rows["d"]  # an unusable host's tools are not judged


def _relayed_inventory() -> Inventory:
    """a direct; b behind the relay ``bastion``; c behind ``inner``, itself behind bastion."""

    def host(name: str, i: int, via: tuple[str, ...] = (), measure: bool = True) -> Host:
        ssh = SshTarget(host=f"10.0.0.{i}", via=via)
        return Host(name=name, address=f"10.0.0.{i}", ssh=ssh, region="r", measure=measure)

    return Inventory(
        source="fake.yaml",
        sha256="0",
        hosts=(
            host("bastion", 1, measure=False),
            host("a", 2),
            host("inner", 3, via=("bastion",), measure=False),
            host("b", 4, via=("bastion",)),
            host("c", 5, via=("bastion", "inner")),
            host("spare", 6, measure=False),  # nobody's jump host: never contacted
        ),
    )


def test_relays_get_a_row_with_their_reachability() -> None:
    answers: dict[str, str | int | HostError] = {h: PREFLIGHT["full"] for h in "abc"}
    checks = asyncio.run(check_hosts(_relayed_inventory(), FakeConnector({"inner"}, answers)))
    assert [(c.host, c.relay) for c in checks] == [
        ("bastion", True), ("a", False), ("inner", True), ("b", False), ("c", False)
    ]  # fmt: skip
    bastion, _, inner, _, _ = checks
    assert bastion.ready and bastion.status is CellStatus.OK and bastion.connect_s == 0.25
    assert bastion.reason is None and bastion.ping is None and bastion.iperf3 is None
    assert not inner.ready and inner.status is CellStatus.UNREACHABLE
    assert inner.reason == "connection refused"


def test_the_table_shows_relays_and_no_control_characters() -> None:
    version = "version iperf3 iperf 3.12\t(cJSON 1.7.15)\x1b[2J\n"
    answers: dict[str, str | int | HostError] = {
        h: PREFLIGHT["full"].replace("version iperf3 iperf 3.12 (cJSON 1.7.15)\n", version)
        for h in "abc"
    }
    checks = asyncio.run(check_hosts(_relayed_inventory(), FakeConnector({"inner"}, answers)))
    assert checks[1].iperf3 == "iperf 3.12\t(cJSON 1.7.15)\x1b[2J"  # kept as the host said it
    table = render_check(checks)
    assert "\t" not in table and "\x1b" not in table
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert list(rows) == ["bastion", "a", "inner", "b", "c"]
    assert rows["bastion"].startswith("bastion (relay)") and " ok " in rows["bastion"]
    assert "MISSING" not in rows["bastion"] + rows["inner"]  # a relay's tools are not asked
    assert rows["inner"].startswith("inner (relay)") and "connection refused" in rows["inner"]
    assert "iperf 3.12 (cJSON 1.7.15)\\x1b[2J" in rows["a"]
    assert "0 2147483647" in rows["a"]  # /proc's ping_group_range is tab-separated


def test_the_table_says_hung_for_a_tool_that_does_not_answer() -> None:
    hung = PREFLIGHT["full"].replace("version iperf3 iperf 3.12 (cJSON 1.7.15)", "hung iperf3")
    checks = _check({"c"}, {**ANSWERS, "a": hung})
    assert checks[0].hung == ("iperf3",) and checks[0].iperf3 is None and not checks[0].ready
    row = render_check(checks).splitlines()[2]
    assert row.split()[0] == "a" and "HUNG" in row and "MISSING" not in row


def test_check_says_which_hosts_can_authenticate_iperf3() -> None:
    features = (
        "features iperf3 CPU affinity setting, TCP congestion algorithm setting, "
        "authentication, bind to device\n"
    )
    old = PREFLIGHT["full"].replace("iperf 3.12 (cJSON 1.7.15)", "iperf 3.6 (cJSON 1.5.2)")
    answers: dict[str, str | int | HostError] = {
        "a": PREFLIGHT["full"] + features,  # 3.12 built with OpenSSL
        "b": PREFLIGHT["full"],  # 3.12 without: no "authentication" among its features
        "c": old + features,
        "d": PREFLIGHT["no-iperf3"],
        "e": PREFLIGHT["full"],
    }
    checks = {c.host: c for c in _check(set(), answers)}
    assert checks["a"].iperf3_auth == "yes"
    assert checks["b"].iperf3_auth == "iperf3 3.12 was built without authentication (OpenSSL)"
    assert checks["c"].iperf3_auth == "iperf3 3.6 has no authentication (3.7+)"
    assert checks["d"].iperf3_auth == ""
    lines = render_check(tuple(checks.values())).splitlines()
    assert "iperf3 auth" in lines[0]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert " yes " in rows["a"] and "built without authentication" in rows["b"]
