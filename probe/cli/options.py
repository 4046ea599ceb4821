"""Options whose default is a library dataclass field's: one place for each default.

``field_option("--count", default_from=(RunOptions, "count"), …)`` takes its default from
``RunOptions``; changing the field changes the CLI (and its help) with it. The classes named
here must import without pandas, numpy or asyncssh: ``probe --help`` builds every option.
Their rules live there too (``__post_init__``); :func:`option_names` says which option broke one.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from probe.cli.jsondoc import schema_id
from probe.errors import InputError, OptionError

_F = TypeVar("_F", bound=Callable[..., Any])


def field_default(owner: type[Any], name: str) -> Any:
    """The default of field ``name`` of the dataclass ``owner`` (a factory is called)."""
    for f in dataclasses.fields(owner):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise TypeError(f"{owner.__name__}.{name} has no default")
    raise TypeError(f"{owner.__name__} has no field {name!r}")


class FieldOption(click.Option):
    """A click option that remembers which library field its default comes from."""

    def __init__(
        self, param_decls: Sequence[str], *, default_from: tuple[type[Any], str], **attrs: Any
    ) -> None:
        self.default_from = default_from
        super().__init__(param_decls, default=field_default(*default_from), **attrs)


def field_option(
    *param_decls: str, default_from: tuple[type[Any], str], **attrs: Any
) -> Callable[[_F], _F]:
    """``click.option`` with the default of ``default_from`` (``default=`` is refused)."""
    return click.option(*param_decls, cls=FieldOption, default_from=default_from, **attrs)


def given_fields(ctx: click.Context, *owners: type[Any]) -> dict[str, str]:
    """The fields of ``owners`` whose option the command line set (not left to its default),
    each with the option as written: ``{"duration_s": "--duration 2"}``."""
    given: dict[str, str] = {}
    for param in ctx.command.params:
        if not isinstance(param, FieldOption) or param.default_from[0] not in owners:
            continue
        name = param.name or ""
        if ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT):
            continue
        value = ctx.params[name]
        if not param.is_flag:
            shown = f"{param.opts[-1]} {value}"
        elif value:
            shown = param.opts[-1]
        else:
            shown = param.secondary_opts[-1] if param.secondary_opts else f"no {param.opts[-1]}"
        given[param.default_from[1]] = shown
    return given


@contextlib.contextmanager
def option_names() -> Iterator[None]:
    """Build library options inside: an ``OptionError`` about a field becomes one line naming the
    command's option instead (``RunOptions.count must be ≥ 1, not 0`` → ``--count must be ≥ 1,
    not 0``); a field without an option keeps its own name."""
    try:
        yield
    except OptionError as exc:
        command = click.get_current_context().command
        for param in command.params:
            if isinstance(param, FieldOption) and param.default_from == (exc.owner, exc.field):
                flag = max(param.opts, key=len)
                raise InputError(f"{flag} {exc.rule}") from exc
        raise


def json_option(name: str) -> Callable[[_F], _F]:
    """``--json``: print the document ``probe.NAME/1`` instead of the text (``cli.jsondoc``)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help=f"Print one JSON document (schema {schema_id(name)}) instead of text; "
        "warnings stay on stderr.",
    )
