"""iperf3 authentication for real, on loopback: probe's SSH pool, a real shell and iperf3 3.x on
this machine. The run's credential is uploaded through stdin into private files under $TMPDIR,
an authenticated test measures, a client without the credential is refused, and the files are
gone after the phase — and after an interruption."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from probe.measure.bandwidth import ArmedTest, BandwidthOptions
from probe.measure.credentials import HostCredentials
from probe.measure.ssh import SshPool
from probe.model import CellStatus, PortRange
from probe.plan import BandwidthTest
from probe.store.records import encode_record
from probe.tools.iperf3 import iperf3_client_argv, iperf3_outcome, iperf3_server_argv
from probe.tools.iperf3auth import RunCredential, cannot_authenticate
from tests.sshfleet import FAST, Fleet

pytestmark = pytest.mark.usefixtures("no_agent")


def _iperf3_version() -> tuple[str, str | None]:
    out = subprocess.run(["iperf3", "--version"], capture_output=True, text=True, check=False)
    lines = out.stdout.splitlines()
    features = next((ln.split(":", 1)[1] for ln in lines if ln.startswith("Optional")), None)
    return lines[0], features


needs_auth_iperf3 = pytest.mark.skipif(
    shutil.which("iperf3") is None
    or shutil.which("timeout") is None
    or cannot_authenticate(*_iperf3_version()) is not None,
    reason="needs coreutils timeout and an iperf3 that can authenticate",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _two_hosts(tmp_path: Path) -> AsyncIterator[SshPool]:
    """Hosts ``srv`` and ``cli``: one sshd whose sessions run a real shell on this machine."""
    async with Fleet(tmp_path, real_shell=True) as fleet:
        sshd = await fleet.sshd("real")
        hosts = [fleet.host("srv", sshd, user="srv"), fleet.host("cli", sshd, user="cli")]
        async with SshPool(fleet.inventory(hosts), FAST) as pool:
            await pool.connect()
            yield pool


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The account's $TMPDIR, as the real shell sees it."""
    tmp = tmp_path / "account-tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp


@needs_auth_iperf3
async def test_an_authenticated_test_measures_and_leaves_nothing(
    tmp_path: Path, tmpdir_env: Path
) -> None:
    version, _ = _iperf3_version()
    credential = RunCredential.generate()
    port = _free_port()
    options = BandwidthOptions(duration_s=1, omit_s=0, iperf3_ports=PortRange(port, port))
    async with _two_hosts(tmp_path) as pool:
        async with HostCredentials(pool, credential, lifetime_s=60) as creds:
            auth = await creds.pair("cli", version, "srv", version)
            files = {
                auth.server.private_key_path: credential.private_key_pem,
                auth.server.users_path: credential.users_file(),
                auth.client.public_key_path: credential.public_key_pem,
            }
            await asyncio.to_thread(_private_files, files, tmpdir_env)
            async with ArmedTest(
                pool, client="cli", server="srv", server_address="127.0.0.1", reverse=True,
                options=options, port_index=0, bind="127.0.0.1", auth=auth,
            ) as armed:  # fmt: skip
                outcome = await armed.fire()
        assert outcome.status is CellStatus.OK, outcome.reason
        assert outcome.authenticated and outcome.result is not None
        assert outcome.result.sender_cc and outcome.result.receiver_cc  # Linux reports both
        assert "--username" in outcome.argv
        line = encode_record(
            outcome.record(BandwidthTest("cli", "srv", reverse=True), 0.0, "127.0.0.1")
        )
        assert credential.password not in line and credential.password not in " ".join(outcome.argv)
        assert '"authenticated":true' in line
    assert await asyncio.to_thread(_listing, tmpdir_env) == []  # the phase's end removed them


@needs_auth_iperf3
async def test_a_client_without_the_credential_is_refused(tmp_path: Path, tmpdir_env: Path) -> None:
    version, _ = _iperf3_version()
    port = _free_port()
    credential = RunCredential.generate()
    async with (
        _two_hosts(tmp_path) as pool,
        HostCredentials(pool, credential, lifetime_s=60) as creds,
    ):
        auth = await creds.pair("cli", version, "srv", version)
        argv = iperf3_server_argv(port, idle_timeout_s=10, bind="127.0.0.1", auth=auth.server)
        async with await pool.spawn("srv", argv, max_lifetime_s=20) as server:
            assert await server.read_until("Server listening", 5)
            scanner = iperf3_client_argv("127.0.0.1", port, duration_s=1, omit_s=0)
            refused = iperf3_outcome(await pool.run("cli", scanner, timeout_s=10))
            assert refused == (CellStatus.ERROR, "test authorization failed")
            assert not server.ended  # the one-off slot is still the run's
    assert await asyncio.to_thread(_listing, tmpdir_env) == []


@needs_auth_iperf3
async def test_an_interrupted_phase_removes_the_files(tmp_path: Path, tmpdir_env: Path) -> None:
    version, _ = _iperf3_version()
    async with _two_hosts(tmp_path) as pool:
        creds = HostCredentials(pool, RunCredential.generate(), lifetime_s=60)
        uploaded = asyncio.Event()

        async def phase() -> None:
            async with creds:
                await creds.pair("cli", version, "srv", version)
                uploaded.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(phase())
        await uploaded.wait()
        assert len(await asyncio.to_thread(_listing, tmpdir_env)) == 2  # server's, client's
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await asyncio.to_thread(_listing, tmpdir_env) == []


def _listing(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def _private_files(files: dict[str, str], tmpdir: Path) -> None:
    """Each file holds its content, mode 0600, in a 0700 folder of the account's $TMPDIR."""
    for name, content in files.items():
        path = Path(name)
        assert path.parent.parent == tmpdir
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == content


@needs_auth_iperf3
async def test_a_server_whose_address_is_not_its_own_listens_on_every_address(
    tmp_path: Path,
) -> None:
    """-B with a cloud's 1:1 NAT public address fails ("Cannot assign requested address"):
    the server then listens unbound rather than the test failing."""
    port = _free_port()
    options = BandwidthOptions(duration_s=1, omit_s=0, iperf3_ports=PortRange(port, port))
    async with (
        _two_hosts(tmp_path) as pool,
        ArmedTest(
            pool, client="cli", server="srv", server_address="127.0.0.1", reverse=False,
            options=options, port_index=0, bind="203.0.113.7",
        ) as armed,
    ):  # fmt: skip
        outcome = await armed.fire()
    assert outcome.status is CellStatus.OK, outcome.reason
    assert armed.bind is None and not outcome.authenticated
    # and the record says so: the figure is right, but the server was open on every address
    assert outcome.bound is False


@needs_auth_iperf3
async def test_files_whose_holder_ended_are_uploaded_again(
    tmp_path: Path, tmpdir_env: Path
) -> None:
    """A host's sshd restart ends its holder (and removes its files); after the reconnect the
    next test must not be handed the removed directory."""
    version, _ = _iperf3_version()
    async with (
        _two_hosts(tmp_path) as pool,
        HostCredentials(pool, RunCredential.generate(), lifetime_s=60) as creds,
    ):
        first = await creds.pair("cli", version, "srv", version)
        again = await creds.pair("cli", version, "srv", version)
        assert again.server.private_key_path == first.server.private_key_path  # alive: reused
        await creds._holder_of["srv", "server"].stop()  # as a dropped connection would
        assert creds.lost("cli", "srv") == "srv" and creds.lost("cli") is None
        third = await creds.pair("cli", version, "srv", version)
        assert third.server.private_key_path != first.server.private_key_path
        assert await asyncio.to_thread(Path(third.server.private_key_path).exists)
        assert third.client.public_key_path == first.client.public_key_path
    assert await asyncio.to_thread(_listing, tmpdir_env) == []
