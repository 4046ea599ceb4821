"""Inventory loading and validation: good files resolve, every bad one names file:line."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.errors import InputError
from probe.inventory import check_address, load_inventory, parse_inventory
from probe.model import Inventory, SshTarget

FIXTURES = Path(__file__).parent / "fixtures" / "inventory"
EXAMPLE = Path(__file__).parents[1] / "inventory" / "example-fleet.yaml"
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))


def parse(text: str, tmp_path: Path | None = None) -> Inventory:
    return parse_inventory(text, source="inv.yaml", base_dir=tmp_path or Path("/base"))


def raises(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        parse(text)
    return info.value


# --- good files ---------------------------------------------------------------------------


def test_example_fleet_resolves_chains_aliases_and_defaults() -> None:
    inv = load_inventory(EXAMPLE)
    assert inv.source == str(EXAMPLE)
    assert inv.sha256 == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert inv.known_hosts == str(EXAMPLE.parent / "keys" / "known_hosts")
    assert inv.regions == ("ap", "eu", "us")
    assert [h.name for h in inv.measured] == ["eu-gpu1", "eu-gpu2", "us-gpu1", "us-gpu2", "ap-gpu1"]
    assert inv.host("eu-gpu1").ssh.via == ("eu-bastion",)
    assert inv.host("us-gpu1").ssh.via == ("us-edge", "us-inner")  # us-inner's own chain + it
    assert inv.host("us-gpu2").ssh.via == ("us-edge", "us-inner")  # written out as a list
    assert inv.host("us-gpu2").tags == {"owner": "research", "gpu": "h100"}
    eu1 = inv.host("eu-gpu1")
    assert eu1.ssh.host == eu1.address == "10.10.1.11"  # ssh.host defaults to address
    assert (eu1.ssh.user, eu1.ssh.port, eu1.provider) == ("root", 22, "aws")
    assert eu1.ssh.identity == (str(Path("~/.ssh/id_ed25519").expanduser()),)
    ap = inv.host("ap-gpu1")
    assert (ap.ssh.host, ap.ssh.port, ap.ssh.user, ap.ssh.via) == (
        "10.30.1.31",
        2222,
        "ubuntu",
        ("ap-bastion",),
    )
    bastion = inv.host("ap-bastion")
    assert (bastion.address, bastion.measure, bastion.ssh.user) == ("198.51.100.20", False, "jump")


def test_minimal_file_uses_builtin_defaults() -> None:
    inv = load_inventory(FIXTURES / "good" / "minimal.yaml")
    a = inv.host("a")
    assert a.ssh == SshTarget(host="10.0.0.1")
    assert (a.region, a.zone, a.provider, dict(a.tags), a.measure) == (
        "default",
        None,
        None,
        {},
        True,
    )


def test_alias_layers_own_keys_then_ssh_config_then_defaults() -> None:
    base = FIXTURES / "good"
    inv = load_inventory(base / "alias.yaml")
    bastion = inv.host("bastion")
    assert bastion.address == "203.0.113.5"  # measure: false, no address → HostName
    assert bastion.ssh == SshTarget("203.0.113.5", 2200, "jump", ("/keys/default",))
    gpu1 = inv.host("gpu1").ssh
    assert gpu1.host == "gpu1-box.internal.example"  # %h is the alias
    assert (gpu1.user, gpu1.port) == ("ubuntu", 22)  # Port: from defaults (config has none)
    assert gpu1.identity == ("/keys/ubuntu_gpu1-box", "/keys/default")  # IdentityFile adds up
    assert gpu1.via == ("bastion",)  # ProxyJump jump@bast:2200 → the host whose alias is bast
    gpu2 = inv.host("gpu2").ssh
    assert (gpu2.user, gpu2.via) == ("admin", ())  # the host's own keys win, via: [] = direct
    plain = inv.host("plain").ssh
    assert plain == SshTarget("10.1.0.7", 22, "root", (str(base / "keys" / "fleet"),), ("bastion",))


def test_via_chain_is_the_jump_hosts_chain_then_the_jump_host() -> None:
    inv = parse(
        "hosts:\n"
        "  - {name: b1, address: 10.0.0.1, measure: false}\n"
        "  - {name: b2, address: 10.0.0.2, measure: false, ssh: {via: b1}}\n"
        "  - {name: b3, address: 10.0.0.3, measure: false, ssh: {via: b2}}\n"
        "  - {name: h, address: 10.0.0.4, ssh: {via: b3}}\n"
        "  - {name: g, address: 10.0.0.5, ssh: {via: [b2, b3]}}\n"  # b3's own via is not used
    )
    assert inv.host("b2").ssh.via == ("b1",)
    assert inv.host("h").ssh.via == ("b1", "b2", "b3")
    assert inv.host("g").ssh.via == ("b1", "b2", "b3")


def test_null_at_the_host_clears_an_inherited_default() -> None:
    inv = parse(
        "defaults: {zone: z1, tags: {rack: r1, gpu: a100}, ssh: {via: j, user: root}}\n"
        "hosts:\n"
        "  - {name: j, address: 10.0.0.9, measure: false, ssh: {via: []}}\n"
        "  - {name: a, address: 10.0.0.1, zone: null, tags: {rack: null}, ssh: {user: null}}\n"
    )
    a = inv.host("a")
    assert (a.zone, dict(a.tags), a.ssh.user, a.ssh.via) == (None, {"gpu": "a100"}, None, ("j",))


def test_yaml_1_1_surprises_are_read_as_written() -> None:
    inv = parse(
        "hosts:\n"
        "  - {name: a, address: 2001:db8::1, zone: no, tags: {rack: 012}, ssh: {port: 022}}\n"
    )
    a = inv.host("a")
    assert (a.zone, a.tags["rack"], a.ssh.port, a.address) == ("no", "012", 22, "2001:db8::1")


def test_anchors_and_merge_keys_work() -> None:
    inv = parse(
        "defaults: {region: eu}\n"
        "hosts:\n"
        "  - &a {name: a, address: 10.0.0.1, region: us, tags: {gpu: h100}}\n"
        "  - {<<: *a, name: b, address: 10.0.0.2}\n"  # own keys beat merged ones
    )
    assert [(h.address, h.region, dict(h.tags)) for h in inv.hosts] == [
        ("10.0.0.1", "us", {"gpu": "h100"}),
        ("10.0.0.2", "us", {"gpu": "h100"}),
    ]


def test_relative_paths_are_relative_to_the_inventory_file(tmp_path: Path) -> None:
    inv = parse(
        "known_hosts: keys/kh\n"
        "hosts:\n  - {name: a, address: 10.0.0.1, ssh: {identity: [k1, /k2]}}\n",
        tmp_path,
    )
    assert inv.known_hosts == str(tmp_path / "keys" / "kh")
    assert inv.host("a").ssh.identity == (str(tmp_path / "k1"), "/k2")


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "fe80::1%eth0", "::1", "gpu-1.example.com", "gpu1", "host.example."],
)
def test_good_addresses(address: str) -> None:
    assert check_address(address, "address", "f:1") == address


@pytest.mark.parametrize(
    "address",
    ["10.0.0.256", "1.2.3", "fe80::1%$(x)", "a_b.example", "-a.example", "a..b", "x" * 64, ""],
)
def test_bad_addresses(address: str) -> None:
    with pytest.raises(InputError, match="not an IP address or DNS name"):
        check_address(address, "address", "f:1")


# --- bad files: each states the line and message it must produce ----------------------------


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_error_names_file_line_and_problem(path: Path) -> None:
    header = path.read_text().splitlines()[0]
    m = re.fullmatch(r"# expect: (?:(\S+):)?(\d+): (.*)", header)
    assert m, f"{path.name}: first line must be '# expect: [FILE:]LINE: MESSAGE'"
    where_file = str(path.parent / m.group(1)) if m.group(1) else str(path)
    with pytest.raises(InputError) as info:
        load_inventory(path)
    err = info.value
    assert err.where == f"{where_file}:{m.group(2)}"
    assert m.group(3).replace("{path}", str(path)) in str(err)
    assert "\n" not in str(err)


def test_file_not_found_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match="file not found") as info:
        load_inventory(missing)
    assert info.value.where == str(missing)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_bytes(b"hosts:\n  - name: \xff\n")
    with pytest.raises(InputError, match="not UTF-8") as info:
        load_inventory(path)
    assert info.value.where == f"{path}:2"


# --- hostile values ---------------------------------------------------------------------------

HOSTILE = ["a;b", "$(reboot)", "`id`", "a\nb", "-oProxyCommand=x", "a b", "a|b", "a&b", ">x", "a'b"]
FIELDS: dict[str, Callable[[str], dict[str, object]]] = {
    "name": lambda v: {"name": v, "address": "10.0.0.1"},
    "address": lambda v: {"name": "a", "address": v},
    "region": lambda v: {"name": "a", "address": "10.0.0.1", "region": v},
    "zone": lambda v: {"name": "a", "address": "10.0.0.1", "zone": v},
    "provider": lambda v: {"name": "a", "address": "10.0.0.1", "provider": v},
    "tag value": lambda v: {"name": "a", "address": "10.0.0.1", "tags": {"k": v}},
    "tag name": lambda v: {"name": "a", "address": "10.0.0.1", "tags": {v: "x"}},
    "ssh.host": lambda v: {"name": "a", "address": "10.0.0.1", "ssh": {"host": v}},
    "ssh.user": lambda v: {"name": "a", "address": "10.0.0.1", "ssh": {"user": v}},
    "via": lambda v: {"name": "a", "address": "10.0.0.1", "ssh": {"via": [v]}},
}


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", FIELDS)
def test_hostile_values_are_rejected_on_one_line(field: str, value: str) -> None:
    text = yaml.safe_dump({"hosts": [FIELDS[field](value)]})
    err = raises(text)
    assert "bad " in str(err)
    assert err.where is not None and re.fullmatch(r"inv\.yaml:\d+", err.where)
    assert "\n" not in str(err)


def test_hostile_identity_path_is_rejected() -> None:
    err = raises('hosts:\n  - {name: a, address: 10.0.0.1, ssh: {identity: "k\\nx"}}\n')
    assert (err.where, "bad path" in str(err)) == ("inv.yaml:2", True)


# --- arbitrary input: only InputError or an Inventory -------------------------------------------

KEYS = ["version", "defaults", "hosts", "name", "address", "region", "zone", "tags",
        "measure", "ssh", "host", "port", "user", "identity", "via", "known_hosts", "adress",
        "<<"]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.sampled_from(["a", "b", "10.0.0.1", "10.0.0.2", "a;b", "-x", "", "~", "1:2", "0x1"]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=20,
)


def _only_input_error(text: str) -> None:
    try:
        parse(text)
    except InputError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5))
def test_structured_garbage_raises_only_input_error(doc: dict[str, object]) -> None:
    _only_input_error(yaml.safe_dump(doc))


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("ab1:-[]{},&*!|>'\"#%@`\n\t ?.<")), max_size=60))
def test_yamlish_text_raises_only_input_error(text: str) -> None:
    _only_input_error(text)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=3),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_random_jump_graphs_resolve_or_fail_cleanly(hosts: list[tuple[str, list[str]]]) -> None:
    doc = {
        "hosts": [
            {"name": n, "address": f"10.0.0.{i + 1}", "ssh": {"via": via}}
            for i, (n, via) in enumerate(hosts)
        ]
    }
    try:
        inv = parse(yaml.safe_dump(doc))
    except InputError:
        return
    for h in inv.hosts:  # every chain is loop-free, made of hosts, and ends with the listed ones
        assert h.name not in h.ssh.via and len(set(h.ssh.via)) == len(h.ssh.via)
        listed = next(via for n, via in hosts if n == h.name)
        assert h.ssh.via[len(h.ssh.via) - len(listed) :] == tuple(listed)
