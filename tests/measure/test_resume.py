"""``probe run --resume`` continues a run with its own options, on its own fleet, and keeps every
attempt (fake connector: no SSH, no lab)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest

from probe.errors import InputError
from probe.measure import execute as execute_module
from probe.measure.bandwidth import BandwidthOptions
from probe.measure.context import RunOptions
from probe.measure.execute import RunSummary, execute
from probe.measure.resume import fleet_differences, resume_options
from probe.model import Host, Inventory, PortRange, SshTarget
from probe.store.records import Iperf3Record, SampleRecord
from probe.store.rundir import RunStore, read_run, read_samples, utc_iso
from probe.store.rundoc import (
    ControllerVantage,
    Imported,
    InventoryRef,
    RunDoc,
    RunHost,
    RunOptionsDoc,
    SshRoute,
)
from tests.measure.test_measurement import FakePool, inventory, measure
from tests.sshfleet import FAST

#: The options ``measure`` runs with: what the runs written here recorded.
RECORDED = RunOptions(count=3, bw=BandwidthOptions(duration_s=1, omit_s=0))


def write_run(
    root: Path, inv: Inventory, records: Sequence[SampleRecord], options: RunOptions = RECORDED
) -> Path:
    """A run directory as an older probe left it (no attempts kept), holding ``records``."""
    store = RunStore.create(root)
    store.write_run(
        RunDoc(
            run_id=store.run_id,
            probe_version="0.1.0",
            inventory=InventoryRef(inv.source, inv.sha256),
            started_utc=utc_iso(),
            hosts=tuple(RunHost.of(h) for h in inv.hosts),
            options=options.as_doc(),
        )
    )
    for record in records:
        store.append(record)
    store.close()
    return store.dir


class Connector(FakePool):
    """The fake pool where ``probe run`` makes its ``SshPool``; ``made`` lists every one."""

    made: ClassVar[list[Connector]] = []

    def __init__(self, inv: Inventory, _ssh: object) -> None:
        super().__init__(inv.hosts)
        self.connects = 0
        Connector.made.append(self)

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def connect(self, names: Sequence[str] | None = None, **kw: Any) -> dict[str, Any]:
        self.connects += 1
        return await super().connect(names, **kw)


@pytest.fixture
def fake_fleet(monkeypatch: pytest.MonkeyPatch) -> list[Connector]:
    """``execute`` connects through :class:`Connector`; the controller measures nothing."""

    async def no_vantage(_inv: Inventory, _count: int) -> ControllerVantage:
        return ControllerVantage("unavailable")

    Connector.made = []
    monkeypatch.setattr(execute_module, "SshPool", Connector)
    monkeypatch.setattr(execute_module, "controller_vantage", no_vantage)
    return Connector.made


def resume(
    inv: Inventory,
    run_dir: Path,
    options: RunOptions = RECORDED,
    given: dict[str, str] | None = None,
    said: list[str] | None = None,
) -> RunSummary:
    return asyncio.run(
        execute(
            inv,
            out_root=run_dir.parent,
            options=options,
            ssh=FAST,
            say=(said if said is not None else []).append,
            resume=run_dir,
            given={} if given is None else given,
        )
    )


def partial(tmp_path: Path, n: int = 4, missing: int = 3) -> tuple[Inventory, Path]:
    """A run killed with ``missing`` bandwidth tests still to do."""
    records, _ = measure(n)
    last = [i for i, r in enumerate(records) if isinstance(r, Iperf3Record)][-missing]
    return inventory(n), write_run(tmp_path / "reports", inventory(n), records[:last])


def iperf3_records(run_dir: Path) -> list[Iperf3Record]:
    return [r for r in read_samples(run_dir).records if isinstance(r, Iperf3Record)]


# --- options -----------------------------------------------------------------------------------


def test_a_resume_measures_with_the_options_the_run_recorded(
    tmp_path: Path, fake_fleet: list[Connector]
) -> None:
    inv, run_dir = partial(tmp_path)
    before = len(iperf3_records(run_dir))
    said: list[str] = []
    asked = RunOptions(count=20, bw=BandwidthOptions(duration_s=10, omit_s=2))  # the defaults
    summary = resume(inv, run_dir, asked, given={}, said=said)
    assert summary.complete
    new = iperf3_records(run_dir)[before:]
    assert len(new) == 3 and all(r.argv[r.argv.index("-t") + 1] == "1" for r in new)
    assert all(r.argv[r.argv.index("-O") + 1] == "0" for r in new)
    assert read_run(run_dir).options == RECORDED.as_doc()
    assert (
        f"resuming {run_dir.name}: 12/12 RTT cells, 9/12 bandwidth cells already measured" in said
    )
    plan = next(s for s in said if s.startswith("bandwidth plan"))
    assert " 3 tests, " in plan and plan.endswith("(3 of the plan's 12 tests left)")


def test_a_resume_counts_the_rtt_cells_of_the_runs_ping_plan(
    tmp_path: Path, fake_fleet: list[Connector]
) -> None:
    """h0, h1 in r1 and h2, h3 in r2 with ``--ping-pairs intra-region``: 4 RTT cells, not 12;
    the 8 cross-region pairs are not-planned, and the resume measures with the run's plan."""
    options = replace(RECORDED, ping_pairs="intra-region")
    records, _ = measure(4, ping_pairs="intra-region")
    last = [i for i, r in enumerate(records) if isinstance(r, Iperf3Record)][-3]
    inv = inventory(4)
    run_dir = write_run(tmp_path / "reports", inv, records[:last], options)
    said: list[str] = []
    summary = resume(inv, run_dir, RunOptions(), given={}, said=said)
    assert summary.complete and (summary.rtt_ok, summary.rtt_not_planned) == (4, 8)
    assert f"resuming {run_dir.name}: 4/4 RTT cells, 9/12 bandwidth cells already measured" in said
    assert read_run(run_dir).options == options.as_doc()


def test_an_option_given_with_another_value_is_refused_before_connecting(
    tmp_path: Path, fake_fleet: list[Connector]
) -> None:
    inv, run_dir = partial(tmp_path)
    run_json, samples = (run_dir / "run.json").read_text(), (run_dir / "samples.jsonl").read_text()
    asked = replace(RECORDED, bw=BandwidthOptions(duration_s=2, omit_s=0), bandwidth=False)
    given = {"duration_s": "--duration 2", "bandwidth": "--no-bandwidth", "count": "--count 3"}
    with pytest.raises(InputError) as err:
        resume(inv, run_dir, asked, given=given)
    assert str(err.value) == (
        f"{run_dir}: --no-bandwidth differs from the run's true (run.json options.bandwidth); "
        "--duration 2 differs from the run's 1 (run.json options.duration_s); "
        "resume with the run's options or start a new run"
    )  # --count 3 is the run's own value: fine
    assert fake_fleet == []
    assert (run_dir / "run.json").read_text() == run_json
    assert (run_dir / "samples.jsonl").read_text() == samples


def test_options_given_with_the_run_values_are_fine(
    tmp_path: Path, fake_fleet: list[Connector]
) -> None:
    inv, run_dir = partial(tmp_path)
    before = len(iperf3_records(run_dir))
    asked = RunOptions(count=3, bw=BandwidthOptions(duration_s=1))  # --omit not given: 2
    given = {"duration_s": "--duration 1", "count": "--count 3", "pairs": "--pairs all"}
    assert resume(inv, run_dir, asked, given=given).complete
    new = iperf3_records(run_dir)[before:]
    assert new and all(r.argv[r.argv.index("-O") + 1] == "0" for r in new)  # the run's omit


def test_without_a_command_line_every_option_counts_as_given() -> None:
    asked = replace(RECORDED, exclusive_by="zone", under_load=True)
    with pytest.raises(InputError) as err:
        resume_options(RECORDED.as_doc(), asked, None, Path("run"))
    assert str(err.value).startswith(
        "run: options.exclusive_by zone differs from the run's none "
        "(run.json options.exclusive_by); options.under_load true differs from the run's false "
        "(run.json options.under_load);"
    )
    same = resume_options(RECORDED.as_doc(), RECORDED, None, Path("run"))
    assert same == RECORDED


def test_a_resume_takes_every_option_run_json_records() -> None:
    recorded = RunOptions(
        count=7, interval_s=0.3, reply_timeout_s=5, pinger="fping", ping_pairs="sample:2",
        bandwidth=False, pairs="cross-region",
        exclusive_by="zone", under_load=True, compare_streams=4, network="mesh",
        bw=BandwidthOptions(duration_s=3, omit_s=1, streams=2, congestion="bbr", auth="required",
                            iperf3_ports=PortRange(6000, 6009)),
    ).as_doc()  # fmt: skip
    every = RunOptions(networks="all").as_doc()  # --network and --networks exclude each other
    default = RunOptions().as_doc()
    assert all(
        getattr(recorded, f) != getattr(default, f)
        for f in _names(RunOptionsDoc)
        if f != "networks"
    )
    assert every.networks != default.networks
    assert RunOptions().following(recorded).as_doc() == recorded
    assert RunOptions().following(every).as_doc() == every


def _names(cls: type[Any]) -> list[str]:
    return [f.name for f in fields(cls)]


def test_options_run_json_does_not_record_are_kept() -> None:
    asked = RunOptions(bw=BandwidthOptions(connect_timeout_ms=900))
    used = resume_options(RECORDED.as_doc(), asked, {}, Path("run"))
    assert used.as_doc() == RECORDED.as_doc()
    assert used.bw.connect_timeout_ms == 900


def test_the_iperf3_ports_are_recorded_they_decide_which_hosts_can_serve() -> None:
    """A host that accepts TCP on some ports only can serve or not depending on the run's ports:
    which bandwidth cells are measurable, so a resume takes the run's and refuses others."""
    asked = RunOptions(bw=BandwidthOptions(iperf3_ports=PortRange(6000, 6063)))
    used = resume_options(RECORDED.as_doc(), RECORDED, {}, Path("run"))
    assert used.bw.iperf3_ports == PortRange(5201, 5264)
    with pytest.raises(InputError, match="--iperf3-ports 6000-6063 differs from the run's "):
        resume_options(RECORDED.as_doc(), asked, {"iperf3_ports": "--iperf3-ports 6000-6063"},
                       Path("run"))  # fmt: skip


# --- inventory ---------------------------------------------------------------------------------


def _host(name: str, address: str, **labels: Any) -> RunHost:
    return RunHost(name, address, **labels)


def test_fleet_differences_name_what_differs() -> None:
    before = [
        _host("eu1", "198.18.1.11", zone="eu-a"),
        _host("eu2", "198.18.1.12", tags={"gpu": "a100"}),
        _host("us1", "198.18.2.11"),
        _host("ap1", "198.18.3.11"),
        _host("bastion", "198.18.1.1", measure=False),
    ]
    after = [
        _host("eu1", "198.18.1.99"),
        _host("eu2", "198.18.1.12", region="eu", tags={"gpu": "h100"}),
        _host("us1", "198.18.2.11", measure=False),
        _host("x", "198.18.9.1"),
        _host("y", "198.18.9.2"),
    ]
    assert fleet_differences(before, after) == [
        "hosts added: x, y",
        "removed: ap1",
        "eu1 address 198.18.1.11 → 198.18.1.99",
        "eu1 zone eu-a → none",
        "eu2 region default → eu",
        "eu2 tags {gpu: a100} → {gpu: h100}",
        "us1 measure true → false",
    ]
    many = [_host(f"n{i}", f"10.0.0.{i}") for i in range(13)]
    assert fleet_differences(many, []) == [
        "hosts removed: n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 3 more"
    ]


def test_routes_and_relay_hosts_are_no_part_of_the_fleet() -> None:
    before = [
        _host("j1", "192.0.2.1", measure=False),
        _host("a", "10.0.0.1", ssh=SshRoute("10.0.0.1", 22, "root", ("j1",))),
    ]
    after = [  # another jump host, port and user
        _host("a", "10.0.0.1", ssh=SshRoute("10.0.0.1", 2222, "probe", ("j2",))),
        _host("j2", "192.0.2.2", measure=False),
    ]
    assert fleet_differences(before, after) == []


def test_another_fleet_is_refused_before_connecting(
    tmp_path: Path, fake_fleet: list[Connector]
) -> None:
    inv, run_dir = partial(tmp_path)
    hosts = list(inv.hosts)
    hosts[0] = replace(hosts[0], address="10.0.9.9")
    bigger = Inventory("big.yaml", "1", (*hosts[:3], *inventory(6).hosts[4:]))
    samples = (run_dir / "samples.jsonl").read_text()
    with pytest.raises(InputError) as err:
        resume(bigger, run_dir, RECORDED)
    run_id = run_dir.name
    assert str(err.value) == (
        f"big.yaml: the inventory differs from run {run_id} ({run_dir}): hosts added: h4, h5; "
        "removed: h3; h0 address 10.0.0.1 → 10.0.9.9; "
        "resume with the run's inventory (fake.yaml) or start a new run"
    )
    assert fake_fleet == [] and (run_dir / "samples.jsonl").read_text() == samples


def test_an_imported_run_is_not_resumed(tmp_path: Path, fake_fleet: list[Connector]) -> None:
    inv, run_dir = partial(tmp_path)
    doc = read_run(run_dir)
    RunStore.reopen(run_dir).write_run(replace(doc, imported=Imported("m.csv", "square-csv")))
    samples = (run_dir / "samples.jsonl").read_text()
    with pytest.raises(InputError) as err:
        resume(inv, run_dir, RECORDED)
    assert str(err.value) == (
        f"{run_dir}: run {run_dir.name} was imported from m.csv (square-csv): --resume adds "
        "probe's measurements only to probe's own runs; start a new run"
    )
    assert fake_fleet == [] and (run_dir / "samples.jsonl").read_text() == samples


def test_another_file_with_the_same_hosts_is_resumed_with_a_note(
    tmp_path: Path, fake_fleet: list[Connector]
) -> None:
    inv, run_dir = partial(tmp_path)
    jump = Host(name="j", address="192.0.2.1", measure=False, ssh=SshTarget(host="192.0.2.1"))
    rerouted = tuple(replace(h, ssh=replace(h.ssh, port=2222, via=("j",))) for h in inv.hosts)
    edited = Inventory("edited.yaml", "f" * 64, (jump, *rerouted))
    said: list[str] = []
    assert resume(edited, run_dir, RECORDED, said=said).complete
    assert any(
        s.startswith(f"note: edited.yaml is not the file run {run_dir.name} recorded (fake.yaml")
        for s in said
    )
    doc = read_run(run_dir)
    assert [h.name for h in doc.hosts] == ["j", "h0", "h1", "h2", "h3"]
    assert all(h.ssh is not None and h.ssh.via == ("j",) for h in doc.hosts[1:])
    assert doc.inventory == InventoryRef("fake.yaml", "0")  # the run's; the attempt has its own
    assert doc.attempts[-1].inventory == InventoryRef("edited.yaml", "f" * 64)


# --- nothing left; every attempt kept ----------------------------------------------------------


def test_nothing_left_finishes_the_run_without_connecting(
    tmp_path: Path, fake_fleet: list[Connector]
) -> None:
    records, _ = measure(4)
    run_dir = write_run(tmp_path / "reports", inventory(4), records)
    said: list[str] = []
    summary = resume(inventory(4), run_dir, RECORDED, said=said)
    assert summary.complete and (summary.rtt_ok, summary.bw_ok) == (12, 12)
    assert (
        "nothing left to measure: 12/12 RTT cells, 12/12 bandwidth cells already measured" in said
    )
    assert not any(s.startswith(("bandwidth plan", "ping:")) for s in said)
    assert [pool.connects for pool in fake_fleet] == [0]
    assert (run_dir / "matrix.csv").exists() and (run_dir / "anchors.json").exists()
    assert (tmp_path / "reports" / "latest").resolve() == run_dir.resolve()
    doc = read_run(run_dir)
    assert doc.complete and len(doc.attempts) == 2
    assert doc.attempts[-1].phases is None and doc.attempts[-1].ended_utc is not None


def test_every_attempt_is_kept(tmp_path: Path, fake_fleet: list[Connector]) -> None:
    inv, run_dir = partial(tmp_path, missing=6)
    old = read_run(run_dir)
    assert old.attempts == () and len(old.history) == 1  # an older file: its one attempt
    resume(inv, run_dir, RECORDED)
    first = read_run(run_dir)
    resume(inv, run_dir, RECORDED)  # nothing left now
    doc = read_run(run_dir)
    assert len(first.attempts) == 2 and doc.attempts[:2] == first.attempts
    original, measured, idle = doc.attempts
    assert original.started_utc == old.started_utc and original.ended_utc is None
    assert measured.phases is not None and measured.phases.bandwidth_s is not None
    assert measured.ended_utc is not None and not measured.interrupted
    assert idle.phases is None and idle.started_utc > measured.started_utc
    assert doc.resumed_utc == idle.started_utc and doc.phases is None  # the latest, on top
    assert doc.started_utc == old.started_utc and doc.probe_version == "0.1.0"
