"""The OpenSSH config reader: ssh_config(5) precedence, patterns, Include, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import InputError
from probe.inventory import parse_inventory
from probe.sshconfig import SshHostConfig, parse_jump, parse_ssh_config, read_ssh_config, split_args


def lookup(text: str, alias: str) -> SshHostConfig:
    return parse_ssh_config(text, source="cfg").lookup(alias)


def test_first_obtained_value_wins_in_file_order() -> None:
    text = "Host gpu1\n  User alice\n  Port 2200\nHost *\n  User bob\n  Port 22\n  HostName x\n"
    opts = lookup(text, "gpu1")
    assert (opts.user, opts.port, opts.hostname) == ("alice", 2200, "x")
    assert opts.where == {"user": "cfg:2", "port": "cfg:3", "hostname": "cfg:7"}


def test_a_general_block_first_beats_a_specific_one_after_it() -> None:
    assert lookup("Host *\n  User bob\nHost gpu1\n  User alice\n", "gpu1").user == "bob"


def test_lines_before_any_host_apply_to_every_host() -> None:
    assert lookup("User early\nHost gpu1\n  User late\n", "gpu1").user == "early"


@pytest.mark.parametrize(
    ("patterns", "alias", "applies"),
    [
        ("gpu*", "gpu12", True),
        ("gpu?", "gpu1", True),
        ("gpu?", "gpu12", False),
        ("* !bastion", "bastion", False),  # a matching negation vetoes the block
        ("* !bastion", "gpu1", True),
        ("!bastion", "gpu1", False),  # negations alone never match
        ("a b gpu1", "gpu1", True),  # several patterns: any one matches
        ("GPU1", "gpu1", True),  # host names are case-insensitive
        ("gpu[12]", "gpu1", False),  # no character classes in ssh_config patterns
        ("*.example.com", "a.example.com", True),
    ],
)
def test_host_patterns(patterns: str, alias: str, applies: bool) -> None:
    opts = lookup(f"Host {patterns}\n  User matched\n", alias)
    assert (opts.user == "matched") is applies


def test_identity_files_accumulate_in_order_with_tokens() -> None:
    text = (
        "Host gpu1\n  HostName 10.0.0.1\n  User ops\n  Port 2222\n"
        "  IdentityFile /k/%n-%h-%p-%r\nHost *\n  IdentityFile ~/.ssh/id_%%\n"
    )
    opts = lookup(text, "gpu1")
    home = str(Path.home())
    assert opts.identity_files == ("/k/gpu1-10.0.0.1-2222-ops", f"{home}/.ssh/id_%")
    assert opts.where["identityfile"] == "cfg:5"


def test_hostname_expands_percent_h_to_the_alias() -> None:
    assert lookup("Host *\n  HostName %h.corp.example\n", "gpu1").hostname == "gpu1.corp.example"


def test_unsupported_hostname_token_names_the_line() -> None:
    with pytest.raises(InputError, match="token %u") as info:
        lookup("Host *\n  HostName %u.example\n", "gpu1")
    assert info.value.where == "cfg:2"


def test_proxy_jump_chain_and_none() -> None:
    text = "Host direct\n  ProxyJump none\nHost *\n  ProxyJump ops@edge:2200,inner\n"
    assert lookup(text, "gpu1").proxy_jump == ("ops@edge:2200", "inner")
    assert lookup(text, "direct").proxy_jump == ()  # 'none' is set, and wins
    assert lookup("Host x\n  User u\n", "gpu1").proxy_jump is None


@pytest.mark.parametrize(
    ("hop", "parts"),
    [
        ("edge", (None, "edge", None)),
        ("ops@edge:2200", ("ops", "edge", 2200)),
        ("ssh://ops@edge.example:22", ("ops", "edge.example", 22)),
    ],
)
def test_parse_jump(hop: str, parts: tuple[str | None, str, int | None]) -> None:
    assert parse_jump(hop) == parts


def test_syntax_variants_equals_quotes_comments_and_case() -> None:
    text = 'host=gpu1\n  HOSTNAME = "10.0.0.1"\n  user\tops # trailing comment\n  Port=2222\n'
    opts = lookup(text, "gpu1")
    assert (opts.hostname, opts.user, opts.port) == ("10.0.0.1", "ops", 2222)


def test_split_args_quotes_and_escapes() -> None:
    assert split_args(r'a "b c" d\ e #x', "w") == ["a", "b c", "d e"]
    assert split_args("'it''s' \"\"", "w") == ["its", ""]


def test_unknown_keywords_are_ignored_even_with_odd_values() -> None:
    opts = lookup("Host *\n  ServerAliveInterval 30\n  SetEnv A=1 B=2\n  Frobnicate\n", "x")
    assert opts == SshHostConfig()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Port 70000", "bad port '70000'"),
        ("Port ssh", "bad port 'ssh'"),
        ("HostName a b", "HostName takes exactly one argument"),
        ("ProxyJump a, b", "ProxyJump takes exactly one argument"),
        ("ProxyJump a@@b", "cannot read jump host"),
        ('User "unterminated', "unterminated quote"),
    ],
)
def test_bad_values_of_keywords_probe_reads_name_the_line(line: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_ssh_config(f"# header\nHost x\n  {line}\n", source="cfg")
    assert info.value.where == "cfg:3"


def test_match_host_originalhost_and_all() -> None:
    text = (
        "Host gpu1\n  HostName 10.9.0.1\n"
        "Match host 10.9.*\n  User by-hostname\n"
        "Match originalhost gpu1\n  Port 2201\n"
        "Match all\n  IdentityFile /k/all\n"
        "Match !host 10.9.*\n  Port 9\n"
    )
    opts = lookup(text, "gpu1")
    assert (opts.user, opts.port, opts.identity_files) == ("by-hostname", 2201, ("/k/all",))


def test_match_exec_never_runs_and_is_reported(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cfg = parse_ssh_config(f'Match exec "touch {marker}"\n  User evil\n', source="cfg")
    assert cfg.lookup("gpu1").user is None
    assert cfg.unsupported == ("cfg:1",)
    assert not marker.exists()


def test_include_is_followed_and_conditional(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-gpu").write_text("User from-include\nHost other\n  Port 1\n")
    main = tmp_path / "config"
    main.write_text(
        f"Host nomatch\n  Include {tmp_path}/conf.d/*\n"  # in an inactive block: never applies
        f"Host gpu1\n  Include {tmp_path}/conf.d/*\n  Port 2222\n"
    )
    cfg = read_ssh_config(main)
    opts = cfg.lookup("gpu1")
    assert (opts.user, opts.port) == ("from-include", 2222)  # Host in the include ends there
    assert opts.where["user"] == f"{tmp_path}/conf.d/10-gpu:1"
    assert cfg.lookup("other").port is None  # the Include sat in blocks 'other' is not in


def test_relative_include_is_under_home_ssh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "extra").write_text("User from-home\n")
    main = tmp_path / "elsewhere.conf"
    main.write_text("Include extra missing-glob-*\n")
    assert read_ssh_config(main).lookup("x").user == "from-home"


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    main = tmp_path / "config"
    main.write_text(f"Include {main}\n")
    with pytest.raises(InputError, match="Include nested too deeply"):
        read_ssh_config(main)


def test_include_needs_a_file_when_parsing_text() -> None:
    with pytest.raises(InputError, match="Include is only followed") as info:
        parse_ssh_config("Include x\n", source="cfg")
    assert info.value.where == "cfg:1"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_ssh_config(tmp_path / "none")


# --- through the inventory ---------------------------------------------------------------------


def inventory_with(tmp_path: Path, config: str, hosts: str) -> str:
    (tmp_path / "cfg").write_text(config)
    return f"ssh_config: cfg\nhosts:\n{hosts}"


def test_proxy_jump_chain_maps_hops_to_inventory_hosts(tmp_path: Path) -> None:
    text = inventory_with(
        tmp_path,
        "Host edge\n  HostName 203.0.113.1\nHost gpu\n  HostName 10.0.0.5\n"
        "  ProxyJump edge,10.0.0.2\n",
        "  - {name: edge, measure: false, ssh: {alias: edge}}\n"
        "  - {name: inner, address: 10.0.0.2, measure: false}\n"  # matched by its ssh host
        "  - {name: gpu, address: 10.0.0.5, ssh: {alias: gpu}}\n",
    )
    inv = parse_inventory(text, source="inv.yaml", base_dir=tmp_path)
    assert inv.host("gpu").ssh.via == ("edge", "inner")


def test_proxy_jump_user_must_agree_with_the_inventory(tmp_path: Path) -> None:
    text = inventory_with(
        tmp_path,
        "Host gpu\n  ProxyJump admin@edge\n",
        "  - {name: edge, address: 10.0.0.1, measure: false, ssh: {user: jump}}\n"
        "  - {name: gpu, address: 10.0.0.5, ssh: {alias: gpu}}\n",
    )
    with pytest.raises(InputError, match="disagrees with host 'edge'") as info:
        parse_inventory(text, source="inv.yaml", base_dir=tmp_path)
    assert info.value.where == f"{tmp_path}/cfg:2"


def test_hostile_hostname_from_ssh_config_is_rejected(tmp_path: Path) -> None:
    text = inventory_with(
        tmp_path,
        'Host gpu\n  HostName "a;reboot"\n',
        "  - {name: gpu, address: 10.0.0.5, ssh: {alias: gpu}}\n",
    )
    with pytest.raises(InputError, match="bad HostName 'a;reboot'") as info:
        parse_inventory(text, source="inv.yaml", base_dir=tmp_path)
    assert info.value.where == f"{tmp_path}/cfg:2"
