"""One place for each default: an option's default is a library field's, or the CLI's own.

Every option of every command is checked, so an option added with a literal default that some
library dataclass also holds fails here until it reads the field (``field_option``) or is
listed below as the CLI's own.
"""

from __future__ import annotations

import click
import pytest

from probe.cli import _register, main
from probe.cli.options import FieldOption, field_default
from probe.decide.options import CalcOptions
from probe.decide.regression import DEFAULT_FAIL_ON

_register()
NO_DEFAULT = click.Option(["--unset"]).default  # click's "no default given" sentinel

#: Defaults no library value holds (where output goes, how it looks), or a library value spelled
#: the CLI's way (checked in the tests below).
CLI_ONLY = {
    ("run", "out"),
    ("show", "metric"),
    ("show", "by"),
    ("export", "fmt"),
    ("export", "output"),
    ("rehearse", "output"),  # where rehearsal-<id>/ goes with an inventory
    ("lab status", "links"),
    ("calc", "scenarios"),  # "auto": CalcOptions.scenarios is None
    ("diff", "fail_on"),  # DEFAULT_FAIL_ON as a comma list
}


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, cmd in group.commands.items():
        path = f"{prefix} {name}".strip()
        if isinstance(cmd, click.Group):
            found |= _commands(cmd, path)
        else:
            found[path] = cmd
    return found


COMMANDS = _commands(main)
OPTIONS = [
    (path, param)
    for path, cmd in sorted(COMMANDS.items())
    for param in cmd.params
    if isinstance(param, click.Option)
]


def _parsed_default(command: str, option: click.Option) -> object:
    """The value the command receives when the option is not given."""
    ctx = click.Context(COMMANDS[command])
    raw = option.get_default(ctx)
    value = None if raw is None else option.type_cast_value(ctx, raw)
    return option.callback(ctx, option, value) if option.callback else value


def _option(command: str, name: str) -> click.Option:
    (option,) = [o for path, o in OPTIONS if path == command and o.name == name]
    return option


@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=lambda x: getattr(x, "name", x))
def test_every_default_is_a_library_field_or_the_clis_own(
    command: str, option: click.Option
) -> None:
    if isinstance(option, FieldOption):
        assert _parsed_default(command, option) == field_default(*option.default_from), (
            command,
            option.name,
        )
    elif (command, option.name) not in CLI_ONLY:
        assert option.default in (NO_DEFAULT, None, False), (
            f"probe {command} --{option.name}: default {option.default!r} is a literal; "
            "read it from the library with field_option(default_from=…), or list it in CLI_ONLY"
        )


def test_the_cli_only_list_names_real_options() -> None:
    names = {(command, option.name) for command, option in OPTIONS}
    assert names >= CLI_ONLY


def test_options_spelled_the_clis_way_mean_the_library_default() -> None:
    assert _parsed_default("calc", _option("calc", "scenarios")) == CalcOptions().scenarios
    assert _parsed_default("diff", _option("diff", "fail_on")) == DEFAULT_FAIL_ON


def test_the_library_fields_cover_the_measurement_and_the_calculator() -> None:
    """The options the brief names are field options (not only equal by luck)."""
    fields = {(path, option.name) for path, option in OPTIONS if isinstance(option, FieldOption)}
    for command, names in {
        "run": {"count", "interval", "duration", "omit", "streams", "connect_timeout"}
        | {"pinger", "ping_pairs"},
        "check": {"connect_timeout", "known_hosts", "accept_new"},
        "calc": {"model", "stages", "tokens", "seq", "batch", "dtype", "ring", "trials", "seed"},
        "groups": {"model", "stages", "rtt_stat"},
        "diff": {"rtt_p50_pct", "bw_pct", "loss_pp"},
    }.items():
        assert {(command, n) for n in names} <= fields, command


def test_field_default_refuses_what_has_no_default() -> None:
    from probe.decide.options import Limits

    with pytest.raises(TypeError, match="has no default"):
        field_default(Limits, "max_rtt_ms")
    with pytest.raises(TypeError, match="has no field"):
        field_default(Limits, "nope")
    assert field_default(CalcOptions, "draws").trials == 2000  # a factory is called
