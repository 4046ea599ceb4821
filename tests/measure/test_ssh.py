"""probe.measure.ssh against real asyncssh servers on 127.0.0.1
(tests/sshfleet.py). Loopback only."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
import socket
import time
from pathlib import Path

import asyncssh
import pytest

from probe.errors import HostError, InputError
from probe.measure.remote import remote_command
from probe.measure.ssh import HostConnection, SshOptions, SshPool, describe_connect_error
from probe.model import CellStatus, Host, Inventory, SshTarget
from tests.sshfleet import FAST, LOOPBACK, Fleet, Sshd, fan_out_fleet

pytestmark = pytest.mark.usefixtures("no_agent")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


async def connect_all(
    inventory: Inventory, options: SshOptions = FAST
) -> dict[str, HostConnection]:
    async with SshPool(inventory, options) as pool:
        return await pool.connect()


# ---- pure parts ---------------------------------------------------------------------------------

HOSTILE = ["; rm -rf /", "$(x)", "`id`", "a\nb", "two words", "-n", "'", '"', "", "*", "\\"]


def test_remote_command_quotes_every_argument() -> None:
    line = remote_command(["echo-argv", *HOSTILE], 4.2)
    assert shlex.split(line) == [
        "env",
        "LC_ALL=C",
        "timeout",
        "-k",
        "2",
        "5",
        "echo-argv",
        *HOSTILE,
    ]


@pytest.mark.parametrize(
    ("exc", "status", "transient"),
    [
        (ConnectionRefusedError(), CellStatus.UNREACHABLE, False),
        (TimeoutError(), CellStatus.UNREACHABLE, True),
        (asyncssh.ConnectionLost("gone"), CellStatus.UNREACHABLE, True),
        (asyncssh.PermissionDenied("no"), CellStatus.AUTH_FAILED, False),
        (asyncssh.HostKeyNotVerifiable("bad"), CellStatus.HOST_KEY, False),
        (
            asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "x"),
            CellStatus.UNREACHABLE,
            False,
        ),
        (asyncssh.ChannelOpenError(1, "prohibited"), CellStatus.ERROR, False),
        (OSError(113, "No route to host"), CellStatus.UNREACHABLE, False),
    ],
)
def test_describe_connect_error(exc: BaseException, status: CellStatus, transient: bool) -> None:
    got_status, reason, got_transient = describe_connect_error(exc, via="j", connect_timeout_s=3)
    assert (got_status, got_transient) == (status, transient)
    assert reason


def test_jump_chain_must_name_inventory_hosts(tmp_path: Path) -> None:
    target = Host("t", LOOPBACK, SshTarget(LOOPBACK, 22, via=("nowhere",)))
    inventory = Inventory("inv", "0", (target,))
    with pytest.raises(InputError, match="nowhere"):
        SshPool(inventory, SshOptions(known_hosts=str(tmp_path / "none")))


# ---- against the fleet --------------------------------------------------------------------------


async def test_hosts_behind_a_jump_host_share_one_jump_connection(fleet: Fleet) -> None:
    jump = await fleet.sshd("jump", jump=True)
    hosts = [fleet.host("jump", jump)]
    for i in range(5):
        hosts.append(fleet.host(f"t{i}", await fleet.sshd(f"t{i}"), via=("jump",)))
    async with SshPool(fleet.inventory(hosts), FAST) as pool:
        seen: list[str] = []
        results = await pool.connect(on_connected=lambda c: seen.append(c.host))
        assert all(r.ok for r in results.values()), results
        assert sorted(seen) == sorted(h.name for h in hosts)
        for i in range(5):
            out = await pool.run(f"t{i}", ["echo-argv", str(i)])
            assert json.loads(out.stdout)["argv"] == [str(i)]
    assert jump.stats.connections == 1
    assert len(jump.stats.forwards) == 5


async def test_chain_of_two_jump_hosts(fleet: Fleet) -> None:
    outer, inner, target = (
        await fleet.sshd("outer", jump=True),
        await fleet.sshd("inner", jump=True),
        await fleet.sshd("t"),
    )
    hosts = [
        fleet.host("outer", outer),
        fleet.host("inner", inner),
        fleet.host("t", target, via=("outer", "inner")),
        fleet.host("u", target, via=("outer", "inner"), user="other"),
    ]
    async with SshPool(fleet.inventory(hosts), FAST) as pool:
        results = await pool.connect(["t", "u"])
        assert set(results) == {"outer", "inner", "t", "u"}
        assert all(r.ok for r in results.values()), results
        assert (await pool.run("t", ["echo-argv", "deep"])).exit_status == 0
    assert (outer.stats.connections, inner.stats.connections, target.stats.connections) == (1, 1, 2)


async def test_unknown_host_key_is_rejected_with_its_fingerprint(fleet: Fleet) -> None:
    known, stranger = await fleet.sshd("known"), await fleet.sshd("stranger")
    inventory = fleet.inventory(
        [fleet.host("known", known), fleet.host("stranger", stranger)],
        fleet.write_known_hosts(known),
    )
    results = await connect_all(inventory)
    assert results["known"].ok
    bad = results["stranger"]
    assert bad.status is CellStatus.HOST_KEY
    assert stranger.host_key.get_fingerprint("sha256") in bad.reason
    assert "--accept-new" in bad.reason
    assert stranger.stats.connections == 1  # host-key failures are not retried


async def test_accept_new_records_the_key_then_the_store_is_trusted(fleet: Fleet) -> None:
    sshd = await fleet.sshd("new")
    empty = fleet.write_known_hosts(sshd, name="empty")
    empty.write_text("")
    inventory = fleet.inventory([fleet.host("new", sshd)], empty)
    store = fleet.tmp / "state" / "probe_known_hosts"
    accept = SshOptions(connect_timeout_s=5, accept_new=True, accept_new_store=str(store))

    first = await connect_all(inventory, accept)
    assert first["new"].ok
    assert "accepted new host key" in first["new"].reason
    assert sshd.host_key.get_fingerprint("sha256") in first["new"].reason
    assert store.read_text() == sshd.known_hosts_line()
    assert oct(store.stat().st_mode & 0o777) == "0o600"

    strict = SshOptions(connect_timeout_s=5, accept_new_store=str(store))
    second = await connect_all(inventory, strict)
    assert second["new"] == HostConnection("new", True, CellStatus.OK, "", second["new"].connect_s)
    assert store.read_text() == sshd.known_hosts_line()  # nothing new written
    assert (await connect_all(inventory, FAST))["new"].status is CellStatus.HOST_KEY


async def test_changed_host_key_is_refused_even_with_accept_new(fleet: Fleet) -> None:
    sshd = await fleet.sshd("changed")
    known = fleet.tmp / "known_hosts_old"
    known.write_text(sshd.known_hosts_line(asyncssh.generate_private_key("ssh-ed25519")))
    store = fleet.tmp / "store"
    options = SshOptions(connect_timeout_s=5, accept_new=True, accept_new_store=str(store))
    result = (await connect_all(fleet.inventory([fleet.host("c", sshd)], known), options))["c"]
    assert result.status is CellStatus.HOST_KEY
    assert "CHANGED" in result.reason
    assert sshd.host_key.get_fingerprint("sha256") in result.reason
    assert not store.exists()


async def test_wrong_client_key_is_auth_failed(fleet: Fleet) -> None:
    sshd = await fleet.sshd("locked")
    wrong = fleet.tmp / "id_wrong"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(wrong)
    host = Host("locked", LOOPBACK, SshTarget(LOOPBACK, sshd.port, "probe", (str(wrong),)))
    result = (await connect_all(fleet.inventory([host])))["locked"]
    assert result.status is CellStatus.AUTH_FAILED
    assert sshd.stats.connections == 1


async def test_unreachable_hosts_are_data_and_the_rest_connect(fleet: Fleet) -> None:
    jump, alive = await fleet.sshd("jump", jump=True), await fleet.sshd("alive")
    dead_port = closed_port()
    dead = SshTarget(LOOPBACK, dead_port, "probe", (str(fleet.client_key_path),))
    dead_jump = SshTarget(LOOPBACK, closed_port(), "probe", (str(fleet.client_key_path),))
    hosts = [
        fleet.host("jump", jump),
        fleet.host("alive", alive),
        fleet.host("behind", alive, via=("jump",), user="b"),
        Host("dead", LOOPBACK, dead),
        Host("dead-behind", LOOPBACK, dataclasses.replace(dead, via=("jump",))),
        Host("dead-jump", LOOPBACK, dead_jump),
        fleet.host("orphan", alive, via=("dead-jump",), user="o"),
    ]
    async with SshPool(fleet.inventory(hosts), FAST) as pool:
        results = await pool.connect()
        assert [n for n, r in results.items() if r.ok] == ["jump", "alive", "behind"]
        assert results["dead"].status is CellStatus.UNREACHABLE
        assert "refused" in results["dead"].reason
        assert results["dead-behind"].status is CellStatus.UNREACHABLE
        assert "jump host jump could not connect" in results["dead-behind"].reason
        assert results["orphan"].status is CellStatus.UNREACHABLE
        assert results["orphan"].reason.startswith("via bastion dead-jump: ")
        with pytest.raises(HostError) as err:
            await pool.run("dead", ["echo-argv"])
        assert err.value.status == CellStatus.UNREACHABLE


async def test_command_timeout_gives_no_exit_status(fleet: Fleet) -> None:
    sshd = await fleet.sshd("slow")
    async with SshPool(fleet.inventory([fleet.host("slow", sshd)]), FAST) as pool:
        await pool.connect()
        start = time.monotonic()
        result = await pool.run("slow", ["sleep", "30"], timeout_s=0.5)
        assert result.exit_status is None
        assert time.monotonic() - start < 0.5 + 1.0
        assert (await pool.run("slow", ["exit", "3"])).exit_status == 3  # connection still usable


@pytest.mark.parametrize("via_jump", [False, True])
async def test_handshakes_per_sshd_stay_under_the_bound(tmp_path: Path, via_jump: bool) -> None:
    async with Fleet(tmp_path, handshake_delay_s=0.05) as fleet:
        inventory = await fan_out_fleet(fleet, 24, via_jump=via_jump, users_per_sshd=24)
        options = SshOptions(connect_timeout_s=10, max_handshakes_per_server=4, connect_retries=0)
        results = await connect_all(inventory, options)
        assert all(r.ok for r in results.values()), results
        (shared,) = (s for s in fleet.sshds.values() if s.name != "jump")
        assert shared.stats.connections == 24
        assert 1 < shared.stats.max_unauthenticated <= 4


async def test_sessions_per_connection_stay_under_the_bound(fleet: Fleet) -> None:
    sshd = await fleet.sshd("busy")
    async with SshPool(fleet.inventory([fleet.host("busy", sshd)]), FAST) as pool:
        await pool.connect()
        async with asyncio.TaskGroup() as tg:
            for _ in range(20):
                tg.create_task(pool.run("busy", ["sleep", "0.1"]))
    assert sshd.stats.max_sessions_per_connection == FAST.max_channels_per_connection


async def test_hostile_argv_arrives_as_one_quoted_line(fleet: Fleet) -> None:
    sshd = await fleet.sshd("echo")
    async with SshPool(fleet.inventory([fleet.host("echo", sshd)]), FAST) as pool:
        await pool.connect()
        result = await pool.run("echo", ["echo-argv", *HOSTILE], timeout_s=3)
    assert result.exit_status == 0
    assert result.argv == ("echo-argv", *HOSTILE)
    (line,) = sshd.stats.commands
    assert line == remote_command(["echo-argv", *HOSTILE], 3 + 1)
    assert shlex.split(line)[6:] == ["echo-argv", *HOSTILE]
    assert json.loads(result.stdout)["argv"] == HOSTILE


async def test_accept_new_records_a_shared_sshd_once(fleet: Fleet) -> None:
    sshd = await fleet.sshd("shared")
    empty = fleet.tmp / "empty"
    empty.write_text("")
    hosts = [fleet.host(f"h{i}", sshd, user=f"u{i}") for i in range(3)]
    store = fleet.tmp / "store"
    options = SshOptions(connect_timeout_s=5, accept_new=True, accept_new_store=str(store))
    results = await connect_all(fleet.inventory(hosts, empty), options)
    assert all(r.ok for r in results.values()), results
    assert store.read_text() == sshd.known_hosts_line()


@pytest.mark.parametrize(("behaviour", "reason"), [("close", "closed"), ("silent", "timed out")])
async def test_transient_connect_failures_are_retried(
    fleet: Fleet, behaviour: str, reason: str
) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        if behaviour == "close":  # what sshd does past MaxStartups
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    host = Host("flaky", LOOPBACK, SshTarget(LOOPBACK, port, "probe"))
    options = SshOptions(connect_timeout_s=0.3, connect_retries=2, retry_backoff_s=0.01)
    try:
        result = (await connect_all(fleet.inventory([host]), options))["flaky"]
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert result.status is CellStatus.UNREACHABLE
    assert reason in result.reason
    assert len(accepted) == 3


# ---- a connection lost mid-run ------------------------------------------------------------------


async def _drop(sshd: Sshd) -> None:
    """What a rebooted jump host does to the connections through it."""
    for conn in list(sshd.connections):
        conn.abort()
    await asyncio.sleep(0.2)


async def test_a_lost_connection_is_reconnected_once_jump_host_first(fleet: Fleet) -> None:
    jump, target = await fleet.sshd("jump", jump=True), await fleet.sshd("t1")
    inventory = fleet.inventory([fleet.host("jump", jump), fleet.host("t1", target, via=("jump",))])
    async with SshPool(inventory, FAST) as pool:
        await pool.connect()
        assert (await pool.run("t1", ["exit", "0"])).exit_status == 0
        await _drop(jump)
        assert (await pool.run("t1", ["exit", "0"])).exit_status == 0
    assert jump.stats.connections == 2 and target.stats.connections == 2


async def test_a_host_whose_reconnect_fails_stays_lost_and_says_why(fleet: Fleet) -> None:
    jump, target = await fleet.sshd("jump", jump=True), await fleet.sshd("t1")
    inventory = fleet.inventory([fleet.host("jump", jump), fleet.host("t1", target, via=("jump",))])
    async with SshPool(inventory, FAST) as pool:
        await pool.connect()
        proc = await pool.spawn("t1", ["sleep", "30"], max_lifetime_s=30)
        jump.acceptor.close()  # the jump host's sshd is down: the reconnect cannot succeed
        await _drop(jump)
        assert await proc.read_until("never printed", 5) is False  # no exception escapes
        assert proc.connection_lost
        for _ in range(2):  # the second use fails at once, without another attempt
            with pytest.raises(HostError) as info:
                await pool.run("t1", ["exit", "0"])
            assert info.value.status == CellStatus.UNREACHABLE
            assert "connection lost" in str(info.value) and "via bastion jump" in str(info.value)
    assert jump.stats.connections == 1
