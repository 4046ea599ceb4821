"""Lab networks and NAT without root: topology parsing, truth per pair and network, the rendered
inventory, the emulator's per-network routing and the htb classes per destination address."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from probe.errors import InputError
from probe.lab import files, htb
from probe.lab.emulator import Emulator, packed
from probe.lab.files import LabPaths
from probe.lab.state import EmulatedHost, EmulatorConfig, LabTruth, PairTable, load, save
from probe.lab.topology import (
    MESH,
    EmulatorSettings,
    LinkParams,
    Network,
    load_topology,
    parse_topology,
)
from probe.lab.truth import PairStatus, PairTruth, expectations, pair_truth, truth_table
from tests.conftest import DEFAULT_TOPOLOGY, ROOT

FIELD = ROOT / "inventory" / "lab-field.yaml"

NETS = """
name: t3
prefix: pt-
jump: j
networks:
  eu: {subnet: 198.18.1.0/24}
  us: {subnet: 198.18.2.0/24}
  public: {subnet: 198.18.0.0/24, delay: 2ms}
  mesh: {subnet: 198.18.3.0/24, delay: 5ms, rate: 50mbit}
regions:
  eu:
    hosts:
      j: {addresses: {eu: 198.18.1.1, public: 198.18.0.1}}
      a: {addresses: {eu: 198.18.1.2, public: 198.18.0.2, mesh: 198.18.3.2}}
      g: {addresses: {public: 198.18.0.9}, measure: false}
      h: {address: 198.18.100.2, nat: g}
  us:
    hosts:
      b: {addresses: {us: 198.18.2.1, public: 198.18.0.3, mesh: 198.18.3.3}}
      k: {addresses: {public: 198.18.0.10}}
      n: {address: 198.18.100.6, nat: k}
links:
  default: {delay: 0.25ms, rate: 200mbit}
  eu-us: {delay: 20ms, rate: 100mbit}
"""


def test_hosts_sit_on_their_networks_in_preference_order() -> None:
    t = parse_topology(NETS, source="t.yaml")
    assert [n.name for n in t.networks] == ["eu", "us", "public", "mesh"]
    assert t.common_networks("j", "a") == ["eu", "public"]
    assert t.common_networks("a", "b") == ["public", "mesh"]  # private networks never cross
    assert t.common_networks("h", "b") == ["public"]  # behind NAT: its gateway's networks
    assert t.peer_addresses("h") == {"public": "198.18.0.9"}
    assert [h.name for h in t.emulated] == ["j", "a", "g", "b", "k"]
    assert t.host("h").lan == ("198.18.100.2", "198.18.100.1")
    assert t.host("n").lan == ("198.18.100.6", "198.18.100.5")
    assert t.host("h").via == "g" and t.chain("h") == ("j", "g")
    assert t.ssh_address("a") == "198.18.1.2"  # the first network it shares with j
    assert t.ssh_address("b") == "198.18.0.3" and t.ssh_address("h") == "198.18.100.2"


def test_one_network_topologies_are_network_mesh() -> None:
    t = load_topology(str(DEFAULT_TOPOLOGY))
    assert [n.name for n in t.networks] == [MESH] and t.networks[0].subnet == "198.18.0.0/16"
    assert all(h.addresses == ((MESH, h.address),) for h in t.hosts)
    figures, statuses = truth_table(t)
    assert statuses == () and len(figures) == 8 * 7
    assert {p.network for p in figures} == {MESH}


def test_truth_per_pair_and_network() -> None:
    t = parse_topology(NETS, source="t.yaml")
    ja = {e.network: e for e in expectations(t, "j", "a")}
    assert isinstance(ja["eu"], PairTruth) and isinstance(ja["public"], PairTruth)
    assert ja["eu"].rtt_ms == pytest.approx(0.5) and ja["public"].rtt_ms == pytest.approx(4.5)
    assert ja["public"].address == "198.18.0.2" and ja["eu"].status == "ok"
    ab = {e.network: e for e in expectations(t, "a", "b")}
    assert isinstance(ab["mesh"], PairTruth) and isinstance(ab["public"], PairTruth)
    assert ab["public"].rtt_ms == pytest.approx(44) and ab["mesh"].rtt_ms == pytest.approx(50)
    assert ab["mesh"].rate_fwd_bps == 50e6  # the overlay's rate in series: the lower wins


def test_truth_of_hosts_behind_nat() -> None:
    t = parse_topology(NETS, source="t.yaml")
    out = pair_truth(t, "h", "b")  # h's packets leave through g: g's links and address
    assert (out.status, out.network, out.address) == ("ok", "public", "198.18.0.3")
    assert out.rtt_ms == pytest.approx(pair_truth(t, "g", "b").rtt_ms)
    toward = pair_truth(t, "b", "h")
    assert toward.status == "from_reverse" and toward.address == "198.18.0.9"
    assert "h is behind NAT (g)" in toward.reason
    assert pair_truth(t, "h", "g").rtt_ms == 0.0  # its own gateway: the LAN
    both = expectations(t, "h", "n")
    assert both == [
        PairStatus("h", "n", "public", "not-measurable",
                   "both behind NAT (g, k): neither accepts inbound")
    ]  # fmt: skip
    figures, statuses = truth_table(t)
    keys = [(p.src, p.dst, p.network) for p in figures] + [
        (s.src, s.dst, s.network) for s in statuses
    ]
    assert len(keys) == len(set(keys))
    names = [h.name for h in t.hosts]
    assert {(a, b) for a, b, _ in keys} == {(a, b) for a in names for b in names if a != b}


def test_field_lab_has_the_promised_shape() -> None:
    t = load_topology(str(FIELD))
    assert len(t.hosts) <= 12  # namespaces on a 2-core machine
    unlike = {h.name for h in t.hosts if h.drop_tcp or h.user or h.tools == "busybox"}
    assert unlike == {"fw", "op", "bb"} and {h.cc for h in t.hosts} == {None, "cubic", "bbr"}
    assert [n.name for n in t.networks][-2:] == ["public", "mesh"]
    assert len({h.region for h in t.hosts}) >= 2
    behind = [h for h in t.hosts if h.nat is not None]
    assert len({h.nat for h in behind}) == 2 and all(not t.host(str(h.nat)).measure for h in behind)
    on_mesh = [h.name for h in t.hosts if MESH in dict(h.addresses)]
    assert len(on_mesh) == 2 and t.network(MESH).extra is not None
    for a in t.emulated:
        for b in t.emulated:
            if a.region != b.region:
                assert set(t.common_networks(a.name, b.name)) <= {"public", MESH}
    _, statuses = truth_table(t)
    assert {s.status for s in statuses} == {"not-measurable"} and statuses


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (("eu: 198.18.1.2, public", "eu: 198.18.2.9, public"), "outside eu 198.18.1.0/24"),
        (("eu: 198.18.1.2, public", "vpc: 198.18.1.2, public"), "network 'vpc' is not declared"),
        (("public: 198.18.0.3,", "public: 198.18.0.2,"), "already used by a"),
        (("us: {subnet: 198.18.2.0/24}", "us: {subnet: 198.18.1.128/25}"), "overlaps eu's"),
        (("us: {subnet: 198.18.2.0/24}",
          "us: {subnet: 198.18.2.0/24}\n  dmz: {subnet: 198.18.9.0/24}"),
         "network dmz: no host has an address on it"),
        (("public: {subnet: 198.18.0.0/24, delay: 2ms}", "public: {delay: 2ms}"),
         "'networks.public.subnet' is required"),
        (("nat: g}", "nat: gg}"), "(did you mean 'g'?)"),
        (("nat: g}", "nat: n}"), "the gateway n must be a host with addresses of its own"),
        (("nat: g}", "nat: g, via: a}"), "h is behind NAT: SSH reaches it through g only"),
        (("nat: g}", "nat: g, access: {up: {delay: 1ms}}}"), "give it the access"),
        (("198.18.100.2, nat: g", "198.18.0.5, nat: g"), "its NAT LAN 198.18.0.4/30 overlaps"),
        (("198.18.100.2, nat: g", "198.18.100.4, nat: g"), "must hold 2 free addresses"),
        (("198.18.100.2, nat: g", "198.18.100.5, nat: g"), "already used by h's NAT gateway"),
        (("jump: j", "jump: h"), "jump host h is behind NAT"),
        (("k: {addresses: {public: 198.18.0.10}}", "k: {addresses: {public: 198.18.0.10}, via: h}"),
         "via: h is behind NAT"),
        (("b: {addresses: {us: 198.18.2.1, public: 198.18.0.3, overlay: 198.18.3.3}}",
          "b: {addresses: {us: 198.18.2.1}}"), "host b shares no network with its jump host j"),
        (("a: {addresses:", "a: {address: 198.18.1.7, addresses:"), "give either 'address'"),
        (("overlay: 198.18.3.2}}", "overlay: 198.18.3.2}}\n      m: 198.18.5.5"),
         "overlaps addressing.mesh"),
    ],
)  # fmt: skip
def test_bad_networks_and_nat_name_file_line_and_why(patch: tuple[str, str], message: str) -> None:
    text = NETS.replace("mesh: {subnet", "overlay: {subnet").replace(
        "mesh: 198.18.3", "overlay: 198.18.3"
    )
    assert patch[0] in text, patch
    with pytest.raises(InputError, match=r"t\.yaml:\d+") as err:
        parse_topology(text.replace(*patch), source="t.yaml")
    assert message in str(err.value)


def test_the_inventory_of_a_lab_with_networks(tmp_path: Path) -> None:
    t = parse_topology(NETS, source="t.yaml")
    doc = files.inventory_doc(t, LabPaths(tmp_path))
    assert doc["networks"] == ["eu", "us", "public", "mesh"]
    hosts = {h["name"]: h for h in doc["hosts"]}  # type: ignore[attr-defined]
    assert hosts["a"]["addresses"] == {"eu": "198.18.1.2", "public": "198.18.0.2",
                                      "mesh": "198.18.3.2"}  # fmt: skip
    assert "address" not in hosts["a"] and "nat" not in hosts["a"]
    assert hosts["h"]["addresses"] == {"public": "198.18.0.9"} and hosts["h"]["nat"] is True
    assert hosts["h"]["ssh"] == {"host": "198.18.100.2", "via": ["j", "g"]}
    assert hosts["b"]["ssh"] == {"host": "198.18.0.3", "via": ["j"]}
    assert (
        "Host h\n  HostName 198.18.100.2\n  User root\n  ProxyJump j,g\n"
        in files.openssh_client_config(t, LabPaths(tmp_path))
    )


def test_a_one_network_lab_keeps_its_inventory(tmp_path: Path) -> None:
    doc = files.inventory_doc(load_topology(str(DEFAULT_TOPOLOGY)), LabPaths(tmp_path))
    assert "networks" not in doc
    assert all("address" in h and "addresses" not in h for h in doc["hosts"])  # type: ignore[attr-defined]


def test_truth_json_per_network_and_an_older_file_still_reads(tmp_path: Path) -> None:
    t = parse_topology(NETS, source="t.yaml")
    path = tmp_path / "truth.json"
    save(path, files.lab_truth(t))
    doc = json.loads(path.read_text())
    assert {(p["src"], p["dst"], p["network"]) for p in doc["pairs"]} >= {
        ("a", "b", "public"), ("a", "b", "mesh")
    }  # fmt: skip
    assert doc["statuses"][0]["status"] == "not-measurable"
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["h"]["nat"] == "g" and hosts["h"]["addresses"] == {"public": "198.18.0.9"}
    back = load(path, LabTruth)
    assert back == files.lab_truth(t)
    old = {  # a truth.json written before networks: one pair per ordered pair, no statuses
        "schema": "probe.lab-truth/1", "lab": "x", "topology": "t.yaml",
        "hosts": [{"name": "a", "region": "eu", "address": "198.18.0.1"}],
        "pairs": [{"src": "a", "dst": "b", "rtt_ms": 1, "rtt_std_ms": 0, "ipdv_ms": 0,
                   "loss_pct": 0, "rate_fwd_bps": 0, "rate_rev_bps": 0}],
    }  # fmt: skip
    path.write_text(json.dumps(old))
    back = load(path, LabTruth)
    assert back.pairs[0].network == MESH and back.pairs[0].status == "ok"
    assert back.hosts[0].addresses == {MESH: "198.18.0.1"} and back.statuses == ()


def _two_network_emulator(tmp_path: Path) -> Emulator:
    pairs = tmp_path / "pairs.json"
    link = LinkParams(delay_ms=10)
    save(pairs, PairTable({("a", "b"): link, ("b", "a"): link}))
    hosts = (
        EmulatedHost("a", "pt-a", {"eu": "198.18.1.1", "public": "198.18.0.1"}),
        EmulatedHost("b", "pt-b", {"eu": "198.18.1.2", "public": "198.18.0.2"}),
    )
    networks = (
        Network("eu", "198.18.1.0/24"),
        Network("public", "198.18.0.0/24", LinkParams(delay_ms=2, rate_bps=5e6)),
    )
    settings = EmulatorSettings(gso=False, rate_impl="userspace")
    return Emulator(EmulatorConfig(hosts, networks, settings, str(pairs), "", ""))


def _packet(src: str, dst: str) -> bytes:
    return bytes([0x45]) + bytes(11) + packed(src) + packed(dst) + bytes(8)


def test_the_emulator_carries_a_packet_only_within_one_network(tmp_path: Path) -> None:
    emu = _two_network_emulator(tmp_path)
    emu.load_pairs()
    assert emu.links["a", "b", "eu"].delay_s == pytest.approx(0.010)
    assert emu.links["a", "b", "public"].delay_s == pytest.approx(0.012)
    assert emu.links["a", "b", "public"].rate_bps == 5e6
    read, write = os.pipe()
    os.set_blocking(read, False)
    emu.by_fd[read] = "a"
    emu.known = {packed(a) for a in ("198.18.1.1", "198.18.0.1", "198.18.1.2", "198.18.0.2")}
    try:
        for src, dst in [
            ("198.18.1.1", "198.18.1.2"),  # eu → eu: carried
            ("198.18.0.1", "198.18.0.2"),  # public → public: carried
            ("198.18.1.1", "198.18.0.2"),  # eu → public: across networks, dropped
            ("198.18.0.2", "198.18.1.2"),  # b's address from a's tun0: dropped
            ("198.18.1.1", "198.18.7.7"),  # nobody's address: unroutable
        ]:
            os.write(write, _packet(src, dst))
            emu.receive(read, 0.0)
    finally:
        os.close(read)
        os.close(write)
    assert [link for *_, link in sorted(emu.heap)] == [
        emu.links["a", "b", "eu"], emu.links["a", "b", "public"]
    ]  # fmt: skip
    assert (emu.dropped_cross_network, emu.dropped_unroutable) == (2, 1)


def test_htb_has_a_class_per_destination_address_at_the_networks_rate(
    tmp_path: Path, tc_calls: list[tuple[str, ...]]
) -> None:
    emu = _two_network_emulator(tmp_path)
    table = load(Path(emu.config.pairs_path), PairTable)
    htb.install(emu.config, table.pairs)
    classes = {(c[0], c[8], c[11]) for c in tc_calls if c[1:3] == ("class", "add")}
    assert classes == {
        ("pt-a", htb.class_id(emu.config, "198.18.1.2"), "100gbit"),
        ("pt-a", htb.class_id(emu.config, "198.18.0.2"), "5000000bit"),
        ("pt-b", htb.class_id(emu.config, "198.18.1.1"), "100gbit"),
        ("pt-b", htb.class_id(emu.config, "198.18.0.1"), "5000000bit"),
    }
    assert len({c[1] for c in classes}) == 4
