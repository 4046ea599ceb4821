"""Options whose default is a library dataclass field's: one place for each default.

``field_option("--count", default_from=(RunOptions, "count"), …)`` takes its default from
``RunOptions`` and shows it in the help; changing the field changes the CLI (and its help) with
it. The classes named here must import without pandas, numpy or asyncssh: ``probe --help`` builds
every option. Their rules live there too (``__post_init__``); :func:`option_names` says which
option broke one. The options several commands share (model shape, SSH, host lists, quantities,
calc's inputs that rehearse takes too) are defined here once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import click
from click.core import ParameterSource

from probe import units
from probe.cli.jsondoc import schema_id
from probe.decide.formulas import BYTES_PER_ELEMENT
from probe.decide.options import PipelineOptions
from probe.errors import InputError, OptionError
from probe.measure.sshoptions import SshOptions

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
    """A click option that remembers which library field its default comes from, and shows it
    (a ``None`` default or an unset flag shows nothing)."""

    def __init__(
        self, param_decls: Sequence[str], *, default_from: tuple[type[Any], str], **attrs: Any
    ) -> None:
        self.default_from = default_from
        attrs.setdefault("show_default", True)
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


def parse_callback(
    parse: Callable[[str], object],
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback running ``parse`` (a quantity, ``--allreduce``, ``--sweep``): its
    ``InputError`` becomes click's one line naming the option."""

    def callback(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except InputError as exc:
            raise click.BadParameter(str(exc), param=param) from exc

    return callback


def comma_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def host_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...]:
    """A click callback: ``--path a,b, c`` → ``("a", "b", "c")``."""
    return comma_list(value)


def stacked(*decorators: Callable[[_F], _F]) -> Callable[[_F], _F]:
    """The decorators as one, applied as if written in this order above a function."""

    def decorate(fn: _F) -> _F:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return decorate


def duration_option(*param_decls: str, **attrs: Any) -> Callable[[_F], _F]:
    """``click.option`` taking a time with its unit (``4ms``, ``1.5s``) as milliseconds."""
    return click.option(*param_decls, callback=parse_callback(units.parse_duration_ms), **attrs)


#: ``--path``: the stage hosts of calc and rehearse.
path_option = click.option(
    "--path",
    "path_",
    callback=host_list,
    help="Stage hosts in order, comma separated (else auto placement).",
)
#: Compute per stage (``CalcOptions``), which calc predicts with and rehearse waits out.
compute_options = stacked(
    duration_option(
        "--decode-compute",
        help="Compute per stage per decoded token, e.g. 4ms (default 0: network only).",
    ),
    duration_option(
        "--prefill-compute",
        help="Compute per stage per prefill request, e.g. 120ms (default 0).",
    ),
)
#: The speculative block (``SpecOptions``) of calc and rehearse.
spec_block_options = stacked(
    click.option(
        "--spec-accepted",
        type=click.FloatRange(min=0, min_open=True),
        help="spec: accepted tokens per block E.",
    ),
    duration_option(
        "--spec-block",
        help="spec: co-located draft+verify block time, e.g. 45ms.",
    ),
)

#: The options of ``model_options``: ``PipelineOptions``' fields.
_PIPELINE_FIELDS = tuple(f.name for f in dataclasses.fields(PipelineOptions))


def model_options(*, ring: bool = True) -> Callable[[_F], _F]:
    """Model and workload options shared by ``calc``, ``groups`` and ``rehearse``: the command
    receives them as one ``pipeline: PipelineOptions``. ``ring=False`` leaves out
    ``--ring/--open`` and rings (rehearse's decode always closes back at stage 1: its round trip
    is timed there)."""

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def command(**values: Any) -> Any:
            fields = {name: values.pop(name) for name in _PIPELINE_FIELDS if name in values}
            return fn(**values, pipeline=PipelineOptions(**{"ring": True, **fields}))

        return stacked(*(options if ring else [o for o in options if o is not ring_option]))(
            cast(_F, command)
        )

    ring_option = field_option(
        "--ring/--open",
        default_from=(PipelineOptions, "ring"),
        help="Ring: the token travels back to stage 1 (K hops, not K−1).",
    )
    options = [
        field_option(
            "--model",
            default_from=(PipelineOptions, "model"),
            help="Preset model shape (see --help of calc for the list).",
        ),
        click.option(
            "--model-config",
            type=click.Path(dir_okay=False),
            help="Hugging Face config.json for any other model (overrides --model).",
        ),
        field_option(
            "--dtype",
            type=click.Choice(tuple(BYTES_PER_ELEMENT)),
            default_from=(PipelineOptions, "dtype"),
            help="Activation dtype on the wire (int8/fp8 halve, int4 quarters).",
        ),
        field_option(
            "--tokens",
            type=click.IntRange(min=1),
            default_from=(PipelineOptions, "tokens"),
            help="Tokens generated in interactive decode.",
        ),
        field_option(
            "--batch",
            type=click.IntRange(min=1),
            default_from=(PipelineOptions, "batch"),
            help="Prefill batch size B.",
        ),
        field_option(
            "--seq",
            type=click.IntRange(min=1),
            default_from=(PipelineOptions, "seq"),
            help="Prefill sequence length S (tokens).",
        ),
        ring_option,
        field_option(
            "--stages",
            type=click.IntRange(min=1),
            default_from=(PipelineOptions, "stages"),
            help="Pipeline stages K (placed automatically unless --path). calc without it: "
            "this default for decode, prefill and tp, 2 hosts for spec, every reachable "
            "host for pool.",
        ),
    ]
    return decorate


def ssh_options_of(accept_new: bool, connect_timeout: float, known_hosts: str | None) -> SshOptions:
    """The ``SshOptions`` of the values of ``ssh_options`` (accept-new keys go to probe's store)."""
    from probe.measure.hostkeys import default_accept_new_store

    return SshOptions(
        connect_timeout_s=connect_timeout,
        known_hosts=known_hosts,
        accept_new=accept_new,
        accept_new_store=default_accept_new_store(),
    )


def ssh_options(f: _F) -> _F:
    """Options every command that logs in shares (defined once; defaults: ``SshOptions``)."""
    return stacked(
        field_option(
            "--accept-new",
            is_flag=True,
            default_from=(SshOptions, "accept_new"),
            help="Record UNKNOWN host keys in probe's own known_hosts (never a changed key).",
        ),
        field_option(
            "--known-hosts",
            type=click.Path(dir_okay=False),
            default_from=(SshOptions, "known_hosts"),
            help="known_hosts file (default: the inventory's, else ~/.ssh/known_hosts).",
        ),
        field_option(
            "--connect-timeout",
            type=float,
            default_from=(SshOptions, "connect_timeout_s"),
            help="Seconds per SSH connect attempt.",
        ),
    )(f)
