"""The inventory file: which hosts exist, how peers reach them, how the controller logs in.

``load_inventory(path)`` reads and validates a YAML inventory (format in the README) into an
:class:`~probe.model.Inventory`; every mistake is an :class:`~probe.errors.InputError` naming
``file:line``. After this module, nothing re-checks names or addresses: they are safe to put on
a remote command line (no shell metacharacters, no whitespace, no leading ``-``).

Resolution order for a host's SSH settings, first found wins:
the host's own ``ssh`` keys → its ``ssh.alias`` in ``ssh_config`` → ``defaults.ssh`` → built-ins.
A key written at the host, even as ``null``, hides the layers below it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from probe.errors import InputError
from probe.model import INBOUND_ALL, INBOUND_NONE, Host, Inbound, Inventory, PortRange, SshTarget
from probe.networks import DEFAULT_NETWORK, NetworkOrder, ranked
from probe.sshconfig import SshConfig, SshHostConfig, parse_jump, read_ssh_config
from probe.textio import read_text
from probe.yamlsrc import MapNode, Node, closest, parse_yaml_mapping

_TOP_KEYS = frozenset(
    {"version", "known_hosts", "ssh_config", "defaults", "hosts", "networks", "network_order"}
)
_HOST_KEYS = frozenset(
    {"name", "address", "addresses", "region", "zone", "provider", "tags", "measure", "ssh"}
    | {"inbound", "nat", "iperf3_ports"}
)
_SSH_KEYS = frozenset({"host", "port", "user", "identity", "via", "alias"})
_PER_HOST_ONLY = {"name", "address", "addresses", "ssh.host", "ssh.alias", "inbound", "nat"}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_TAG_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+@=-]{0,127}")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SCOPED_IPV6 = re.compile(r"[0-9A-Fa-f:.]+%[A-Za-z0-9_.-]+")
_NAME_RULE = "letters, digits, '.', '_', '-', starting with a letter or digit, at most 63"


def check_name(value: str, what: str, where: str) -> str:
    """A host name, label, tag key or jump host: safe on any command line."""
    if _NAME.fullmatch(value) is None:
        raise InputError(f"bad {what} {value!r}: use {_NAME_RULE}", where=where)
    return value


def check_address(value: str, what: str, where: str) -> str:
    """An IP literal (IPv6 may carry a ``%scope``) or an RFC 1123 DNS name."""
    try:
        ipaddress.ip_address(value)
        if "%" not in value or _SCOPED_IPV6.fullmatch(value):
            return value
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    dns_ok = len(value) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in labels)
    if dns_ok and not labels[-1].isdigit():  # 10.0.0.256 is a bad IP, not a DNS name
        return value
    raise InputError(f"bad {what} {value!r}: not an IP address or DNS name", where=where)


def _check_pattern(value: str, pattern: re.Pattern[str], what: str, where: str) -> str:
    if pattern.fullmatch(value) is None:
        raise InputError(f"bad {what} {value!r}", where=where)
    return value


def _path(value: str, base_dir: Path, where: str) -> str:
    """A local file path: ``~`` expanded, relative to the inventory's directory."""
    if not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError(f"bad path {value!r}", where=where)
    try:
        path = Path(value).expanduser()
    except RuntimeError as exc:  # ~user that does not exist, or no home directory
        raise InputError(f"cannot expand {value!r}: {exc}", where=where) from None
    return str(path if path.is_absolute() else base_dir / path)


@dataclass(frozen=True, slots=True)
class _Hop:
    """One jump as written: an inventory name (``via``) or a ProxyJump entry (``user@h:p``)."""

    text: str
    where: str
    from_config: bool


@dataclass(frozen=True, slots=True)
class _Draft:
    """A host read from the file; its ``via`` still names hops, not a resolved chain."""

    host: Host
    where: str
    address_where: Mapping[str, str]  # network → file:line of its address
    alias: str | None
    hops: tuple[_Hop, ...]


def _pick(entry: MapNode | None, defaults: MapNode | None, key: str) -> Node | None:
    """The entry's value if it has the key (even null), else the default's."""
    if entry is not None and key in entry:
        return entry.get(key)
    return defaults.get(key) if defaults is not None else None


def _label(node: Node | None, what: str) -> str | None:
    return None if node is None else check_name(node.as_str(), what, node.where)


def _tags(entry: MapNode, defaults: MapNode | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for layer in (defaults, entry):
        mapping = layer.get_mapping("tags") if layer is not None else None
        for key, node in mapping.items() if mapping is not None else ():
            check_name(key, "tag name", node.where)
            if node.is_null:  # `tags: {rack: null}` drops an inherited tag
                tags.pop(key, None)
            else:
                tags[key] = _check_pattern(node.as_str(), _TAG_VALUE, "tag value", node.where)
    return tags


def _inbound(entry: MapNode) -> Inbound:
    """``inbound:`` (default all), or ``nat: true``: a host behind NAT accepts nothing."""
    node, nat = entry.get("inbound"), entry.get("nat")
    inbound = INBOUND_ALL
    if node is not None:
        words = tuple(value for value, _ in node.as_str_list())
        try:
            inbound = Inbound.parse(words)
        except ValueError as exc:
            raise node.error(f"{node.name}: {exc}") from None
    if nat is None or not nat.as_bool():
        return inbound
    if node is not None and inbound != INBOUND_NONE:
        message = f"'nat: true' means inbound none, but 'inbound' ({node.where}) says {inbound}"
        raise nat.error(message)
    return INBOUND_NONE


def _ports(node: Node | None) -> PortRange | None:
    if node is None:
        return None
    try:
        return PortRange.parse(node.as_str())
    except ValueError as exc:
        raise node.error(f"{node.name}: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Ssh:
    host: str | None
    port: int
    user: str | None
    identity: tuple[str, ...]
    hops: tuple[_Hop, ...]
    alias: str | None


def _read_ssh(
    entry: MapNode, defaults: MapNode | None, config: SshConfig | None, base_dir: Path
) -> _Ssh:
    """A host's SSH settings, layered: own keys, then ssh_config (alias), then defaults."""
    own = entry.get_mapping("ssh")
    if own is not None:
        own.check_keys(_SSH_KEYS)
    dflt = defaults.get_mapping("ssh") if defaults is not None else None
    alias_node = own.get("alias") if own is not None else None
    alias, opts = None, SshHostConfig()
    if alias_node is not None:
        alias = check_name(alias_node.as_str(), "ssh.alias", alias_node.where)
        if config is None:
            raise alias_node.error("ssh.alias needs a top-level 'ssh_config: PATH'")
        opts = config.lookup(alias)

    def configured(key: str, value: object) -> bool:  # ssh_config decides, unless the host does
        return value is not None and (own is None or key not in own)

    host = None
    if (node := _pick(own, None, "host")) is not None:
        host = check_address(node.as_str(), "ssh.host", node.where)
    elif opts.hostname is not None:
        host = check_address(opts.hostname, "HostName", opts.where["hostname"])
    elif alias_node is not None:  # no HostName: ssh connects to the alias itself
        host = check_address(alias_node.as_str(), "ssh.alias", alias_node.where)

    if opts.port is not None and configured("port", opts.port):
        port = opts.port
    else:
        node = _pick(own, dflt, "port")
        port = 22 if node is None else node.as_int(min=1, max=65535)

    user = opts.user
    if user is not None and configured("user", user):
        _check_pattern(user, _USER, "User", opts.where["user"])
    else:
        node = _pick(own, dflt, "user")
        user = (
            None if node is None else _check_pattern(node.as_str(), _USER, "ssh.user", node.where)
        )

    identity = opts.identity_files
    if not configured("identity", identity or None):
        node = _pick(own, dflt, "identity")
        items = node.as_str_list() if node is not None else []
        identity = tuple(_path(value, base_dir, item.where) for value, item in items)

    if configured("via", opts.proxy_jump):
        hops = tuple(_Hop(h, opts.where["proxyjump"], True) for h in opts.proxy_jump or ())
    else:
        node = _pick(own, dflt, "via")
        items = node.as_str_list() if node is not None else []
        hops = tuple(_Hop(check_name(v, "jump host", n.where), n.where, False) for v, n in items)
    return _Ssh(host, port, user, identity, hops, alias)


def _read_host(
    entry: MapNode,
    defaults: MapNode | None,
    config: SshConfig | None,
    base_dir: Path,
    preference: tuple[str, ...],
) -> _Draft:
    entry.check_keys(_HOST_KEYS)
    name_node = entry.require("name")
    name = check_name(name_node.as_str(), "host name", name_node.where)
    measure_node = _pick(entry, defaults, "measure")
    measure = True if measure_node is None else measure_node.as_bool()
    ssh = _read_ssh(entry, defaults, config, base_dir)
    addresses, wheres = _read_addresses(entry)
    if not addresses and ssh.host is not None and not measure:
        addresses, wheres = {DEFAULT_NETWORK: ssh.host}, {DEFAULT_NETWORK: name_node.where}
    if not addresses:
        need = (
            "'address' (what its peers use to reach it)" if measure else "'address' or 'ssh.host'"
        )
        raise name_node.error(f"host '{name}' needs {need}")
    address = addresses[ranked(addresses, preference)[0]]
    host = Host(
        name=name,
        address=address,
        ssh=SshTarget(ssh.host or address, ssh.port, ssh.user, ssh.identity),
        region=_label(_pick(entry, defaults, "region"), "region") or "default",
        zone=_label(_pick(entry, defaults, "zone"), "zone"),
        provider=_label(_pick(entry, defaults, "provider"), "provider"),
        tags=_tags(entry, defaults),
        measure=measure,
        addresses=addresses if list(addresses) != [DEFAULT_NETWORK] else {},
        inbound=_inbound(entry),
        iperf3_ports=_ports(_pick(entry, defaults, "iperf3_ports")),
    )
    return _Draft(host, name_node.where, wheres, ssh.alias, ssh.hops)


def _read_addresses(entry: MapNode) -> tuple[dict[str, str], dict[str, str]]:
    """``address: X`` (network ``default``) or ``addresses: {NETWORK: ADDR}``, with each one's
    place in the file; both empty when the host has neither."""
    single, several = entry.get("address"), entry.get_mapping("addresses")
    if single is not None and several is not None:
        raise several.error(f"host has both 'address' ({single.where}) and 'addresses': use one")
    if single is not None:
        address = check_address(single.as_str(), "address", single.where)
        return {DEFAULT_NETWORK: address}, {DEFAULT_NETWORK: single.where}
    addresses: dict[str, str] = {}
    wheres: dict[str, str] = {}
    if several is None:
        return addresses, wheres
    for network, node in several.items():
        check_name(network, "network name", several.key_where(network))
        addresses[network] = check_address(node.as_str(), f"address on {network}", node.where)
        wheres[network] = node.where
    if not addresses:
        raise several.error("'addresses' is empty: give at least one NETWORK: ADDRESS")
    return addresses, wheres


def _listed(node: Node | None) -> tuple[str, ...]:
    """A list of network names (``networks:``, a ``network_order`` entry), each once."""
    listed: list[str] = []
    for value, item in node.as_str_list() if node is not None else ():
        check_name(value, "network name", item.where)
        if value in listed:
            raise item.error(f"network '{value}' is listed twice")
        listed.append(value)
    return tuple(listed)


def _read_networks(root: MapNode, drafts: Mapping[str, _Draft]) -> NetworkOrder:
    """``networks:`` and ``network_order:``; every network they name must be some host's."""
    known = {n for d in drafts.values() for n in d.address_where}
    regions = {d.host.region for d in drafts.values()}

    def names(node: Node | None) -> tuple[str, ...]:
        listed = _listed(node)
        for i, value in enumerate(listed):
            if value not in known and node is not None:
                where = node.where if node.is_scalar else node.as_list()[i].where
                message = f"unknown network '{value}': no host has an address on it"
                raise InputError(message + closest(value, known), where=where)
        return listed

    order = names(root.get("networks"))
    pairs: dict[tuple[str, str], tuple[str, ...]] = {}
    one_way: dict[tuple[str, str], tuple[str, ...]] = {}
    mapping = root.section("network_order")
    for key, node in mapping.items():
        ends = _region_pair(key, regions, mapping.key_where(key))
        listed = names(node)
        if ">" in key:
            one_way[ends] = listed
        else:
            pairs[ends] = pairs[ends[::-1]] = listed
    return NetworkOrder(order, pairs | one_way)


def _region_pair(key: str, regions: set[str], where: str) -> tuple[str, str]:
    """``"ra>rb"``, or ``"ra-rb"`` split at the one dash that leaves two known regions (region
    names may hold dashes themselves)."""
    if ">" in key:
        splits = [tuple(key.split(">", 1))]
    else:
        splits = [(key[:i], key[i + 1 :]) for i, c in enumerate(key) if c == "-"]
    found = [(a, b) for a, b in splits if a in regions and b in regions]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        shown = " or ".join(f"{a}>{b}" for a, b in found)
        raise InputError(f"network_order '{key}' is ambiguous ({shown}): use 'ra>rb' entries",
                         where=where)  # fmt: skip
    known = ", ".join(sorted(regions))
    raise InputError(
        f"network_order '{key}' names no pair of this inventory's regions ({known}): "
        "write 'ra-rb' (both ways) or 'ra>rb'",
        where=where,
    )


def _jump_name(hop: _Hop, drafts: dict[str, _Draft], owner: str) -> str:
    """The inventory name a hop refers to: a name in ``via``; alias, name or host in ProxyJump."""
    if not hop.from_config:
        if hop.text in drafts:
            return hop.text
        hint = closest(hop.text, drafts)
        message = f"host '{owner}': unknown jump host '{hop.text}' in via{hint}"
        raise InputError(message, where=hop.where)
    try:
        user, target, port = parse_jump(hop.text)
    except ValueError:
        raise InputError(f"ProxyJump: cannot read {hop.text!r}", where=hop.where) from None
    for match in (
        [d.host for d in drafts.values() if d.alias == target],
        [d.host for d in drafts.values() if d.host.name == target],
        [d.host for d in drafts.values() if d.host.ssh.host == target],
    ):
        if len(match) != 1:
            continue
        ssh = match[0].ssh
        if (user is not None and user != ssh.user) or (port is not None and port != ssh.port):
            found = f"{ssh.user or '(local user)'}, port {ssh.port}"
            raise InputError(
                f"ProxyJump {hop.text!r} disagrees with host '{match[0].name}' ({found})",
                where=hop.where,
            )
        return match[0].name
    raise InputError(
        f"ProxyJump {hop.text!r} is not an inventory host: add it, e.g. "
        f"{{name: {target}, measure: false, ssh: {{alias: {target}}}}}",
        where=hop.where,
    )


def _chains(
    drafts: dict[str, _Draft], vias: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """Full jump chains, outermost first: the first jump's own chain, then the listed jumps."""
    chains: dict[str, tuple[str, ...]] = {}
    for start in drafts:
        path: list[str] = []
        name = start
        while name not in chains and vias[name]:
            if name in path:
                cycle = " → ".join([*path[path.index(name) :], name])
                raise InputError(f"jump cycle {cycle}", where=drafts[name].hops[0].where)
            path.append(name)
            name = vias[name][0]
        chains.setdefault(name, ())
        for owner in reversed(path):
            chain = chains[vias[owner][0]] + vias[owner]
            if owner in chain or len(set(chain)) < len(chain):
                route = " → ".join((*chain, owner))
                where = drafts[owner].hops[0].where
                raise InputError(f"jump chain {route} visits a host twice", where=where)
            chains[owner] = chain
    return chains


def _resolve(drafts: dict[str, _Draft]) -> tuple[Host, ...]:
    vias: dict[str, tuple[str, ...]] = {}
    for name, draft in drafts.items():
        names = tuple(_jump_name(hop, drafts, name) for hop in draft.hops)
        if name in names:
            where = draft.hops[names.index(name)].where
            raise InputError(f"host '{name}' lists itself as a jump host", where=where)
        vias[name] = names
    chains = _chains(drafts, vias)
    return tuple(
        replace(d.host, ssh=replace(d.host.ssh, via=chains[name])) for name, d in drafts.items()
    )


def parse_inventory(text: str, *, source: str, base_dir: Path) -> Inventory:
    """Validate inventory text. Reads only the ``ssh_config`` file it names, if any."""
    root = parse_yaml_mapping(text, source=source)
    root.check_keys(_TOP_KEYS)
    if (version := root.get_int("version", 1)) != 1:
        message = f"unsupported inventory version {version} (this probe reads 1)"
        raise root.require("version").error(message)
    known_hosts_node = root.get("known_hosts")
    known_hosts = None
    if known_hosts_node is not None:
        known_hosts = _path(known_hosts_node.as_str(), base_dir, known_hosts_node.where)
    config = None
    if (config_node := root.get("ssh_config")) is not None:
        config_path = Path(_path(config_node.as_str(), base_dir, config_node.where))
        try:
            found = config_path.is_file()
        except OSError as exc:  # e.g. a name too long
            raise config_node.error(f"cannot read ssh_config: {exc.strerror}") from None
        if not found:
            raise config_node.error(f"ssh_config file not found: {config_path}")
        config = read_ssh_config(config_path)
    defaults = root.get_mapping("defaults")
    if defaults is not None:
        _check_defaults(defaults)
    hosts_node = root.require("hosts")
    entries, hosts_where = hosts_node.as_list(), root.key_where("hosts")
    if not entries:
        raise InputError("'hosts' is empty: list at least one host", where=hosts_where)
    drafts: dict[str, _Draft] = {}
    preference = _listed(root.get("networks"))
    # by (network, address): two measured hosts cannot share one, unless nothing aims at it
    # (NAT'd hosts behind one gateway share its public address)
    measured: dict[tuple[str, str], _Draft] = {}
    for item in entries:
        draft = _read_host(item.as_mapping(), defaults, config, base_dir, preference)
        host = draft.host
        if (first := drafts.get(host.name)) is not None:
            message = f"duplicate host name '{host.name}' (first at {first.where})"
            raise InputError(message, where=draft.where)
        drafts[host.name] = draft
        aimed_at = host.measure and host.inbound != INBOUND_NONE
        for network, where in draft.address_where.items() if aimed_at else ():
            address = (host.addresses or {DEFAULT_NETWORK: host.address})[network]
            if (other := measured.get((network, address))) is not None:
                on = "" if network == DEFAULT_NETWORK else f" on network {network}"
                message = (
                    f"address {address}{on} is also host '{other.host.name}' "
                    f"({other.address_where[network]})"
                )
                raise InputError(message, where=where)
            measured[network, address] = draft
    if not any(d.host.measure for d in drafts.values()):
        raise InputError("every host has 'measure: false': nothing to measure", where=hosts_where)
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    order = _read_networks(root, drafts)
    return Inventory(source, sha256, _resolve(drafts), known_hosts, order)


def _check_defaults(defaults: MapNode) -> None:
    ssh = defaults.get_mapping("ssh")
    for prefix, mapping, allowed in (("", defaults, _HOST_KEYS), ("ssh.", ssh, _SSH_KEYS)):
        for key in mapping.keys() if mapping is not None else ():
            if mapping is not None and prefix + key in _PER_HOST_ONLY:
                message = f"'{prefix}{key}' cannot be a default: it belongs to one host"
                raise InputError(message, where=mapping.key_where(key))
        if mapping is not None:
            mapping.check_keys(allowed)


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file; ``Inventory.source`` is ``path`` as given."""
    text, _ = read_text(path)
    return parse_inventory(text, source=str(path), base_dir=Path(path).parent)
