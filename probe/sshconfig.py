"""A small reader of the OpenSSH client config: what ``ssh ALIAS`` would use to connect.

Only the keywords probe needs are read — ``HostName``, ``User``, ``Port``, ``IdentityFile`` and
``ProxyJump`` — with ssh_config(5) semantics: blocks apply in file order, the first value
obtained for a keyword wins (``IdentityFile`` accumulates), ``Host`` patterns use ``*``, ``?``
and ``!negation``, ``Include`` is followed (relative paths under ``~/.ssh``, as OpenSSH does).
Every other keyword is ignored: it is OpenSSH's file, not ours.

Why not ``asyncssh.config.SSHClientConfig``: it runs ``Match exec`` commands through a shell
while *parsing*, needs the local host name and user, is private API, and probe's core does not
import asyncssh (layering). ``Match`` blocks are evaluated here only for ``all``, ``host`` and
``originalhost``; blocks with other criteria (``exec``, ``user``, ``localnetwork`` …) never
apply and are listed in :attr:`SshConfig.unsupported` so a caller can warn.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from probe.errors import InputError
from probe.textio import read_text

_READ = {k.lower(): k for k in ("HostName", "User", "Port", "IdentityFile", "ProxyJump")}
_MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
_TOKEN = re.compile(r"%(.)")


@dataclass(frozen=True, slots=True)
class SshHostConfig:
    """The settings one ``Host`` gets. ``proxy_jump``: ``None`` unset, ``()`` for ``none``."""

    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: tuple[str, ...] | None = None
    where: dict[str, str] = field(default_factory=dict)  # keyword (lower case) → "file:line"


@dataclass(frozen=True, slots=True)
class _Host:
    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Match:
    criteria: tuple[tuple[bool, str, str], ...]  # (negated, criterion, comma pattern list)
    supported: bool


@dataclass(frozen=True, slots=True)
class _Option:
    keyword: str  # lower case
    value: str
    where: str


@dataclass(frozen=True, slots=True)
class _Include:
    files: tuple[tuple[_Statement, ...], ...]


_Statement = _Host | _Match | _Option | _Include
IncludeReader = Callable[[str, str, int], list["SshConfig"]]


@dataclass(frozen=True, slots=True)
class SshConfig:
    """A parsed config file; :meth:`lookup` evaluates it for one host alias."""

    source: str
    statements: tuple[_Statement, ...]
    unsupported: tuple[str, ...] = ()  # "file:line" of Match blocks that never apply here

    def lookup(self, alias: str) -> SshHostConfig:
        """What ``ssh ALIAS`` would use (``ssh -G``), restricted to the keywords probe reads."""
        found: dict[str, tuple[str, str]] = {}
        identities: list[tuple[str, str]] = []
        _evaluate(self.statements, alias.lower(), found, identities)
        where = {k: w for k, (_, w) in found.items()}
        if identities:
            where["identityfile"] = identities[0][1]
        hostname = found["hostname"][0] if "hostname" in found else None
        user = found["user"][0] if "user" in found else None
        port = int(found["port"][0]) if "port" in found else None
        jump = found.get("proxyjump")
        proxy_jump = None if jump is None else _split_jump(jump[0])
        context = {"h": hostname or alias, "n": alias, "p": str(port or 22), "r": user}
        files = tuple(_expand_path(v, w, context) for v, w in identities)
        return SshHostConfig(hostname, user, port, files, proxy_jump, where)


def _evaluate(
    statements: Iterable[_Statement],
    alias: str,
    found: dict[str, tuple[str, str]],
    identities: list[tuple[str, str]],
) -> None:
    active = True
    for st in statements:
        if isinstance(st, _Host):
            active = _host_matches(st.patterns, alias)
        elif isinstance(st, _Match):
            hostname = found["hostname"][0] if "hostname" in found else alias
            active = st.supported and _criteria_match(st.criteria, alias, hostname)
        elif not active:
            continue
        elif isinstance(st, _Include):  # an included file starts active, like OpenSSH
            for statements_of_file in st.files:
                _evaluate(statements_of_file, alias, found, identities)
        elif st.keyword == "identityfile":
            identities.append((st.value, st.where))
        elif st.keyword not in found:  # first obtained value wins
            value = (
                _expand_hostname(st.value, alias, st.where)
                if st.keyword == "hostname"
                else st.value
            )
            found[st.keyword] = (value, st.where)


def _pattern_matches(pattern: str, name: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.IGNORECASE | re.DOTALL) is not None


def _host_matches(patterns: Iterable[str], name: str) -> bool:
    """ssh_config(5): a matching negated pattern vetoes the block; else any positive match."""
    matched = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if _pattern_matches(pattern[1:], name):
                return False
        elif _pattern_matches(pattern, name):
            matched = True
    return matched


def _criteria_match(criteria: Iterable[tuple[bool, str, str]], alias: str, hostname: str) -> bool:
    for negated, criterion, patterns in criteria:
        if criterion == "all":
            result = True
        else:
            name = alias if criterion == "originalhost" else hostname.lower()
            result = _host_matches(patterns.split(","), name)
        if result == negated:
            return False
    return True


def _expand_hostname(value: str, alias: str, where: str) -> str:
    def token(m: re.Match[str]) -> str:
        if m.group(1) == "%":
            return "%"
        if m.group(1) == "h":
            return alias
        raise InputError(
            f"HostName: token %{m.group(1)} is not supported (only %h, %%)", where=where
        )

    return _TOKEN.sub(token, value)


def _expand_path(value: str, where: str, context: dict[str, str | None]) -> str:
    def token(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "%":
            return "%"
        if key == "d":
            return str(Path.home())
        if key == "u" or (key == "r" and context["r"] is None):
            return getpass.getuser()
        if key in context:
            return str(context[key])
        raise InputError(f"IdentityFile: token %{key} is not supported", where=where)

    try:
        return str(Path(_TOKEN.sub(token, value)).expanduser())
    except RuntimeError as exc:  # ~user that does not exist, or no home directory
        raise InputError(f"IdentityFile: cannot expand {value!r}: {exc}", where=where) from None


def _split_jump(value: str) -> tuple[str, ...]:
    return () if value.lower() == "none" else tuple(value.split(","))


_JUMP = re.compile(r"(?:ssh://)?(?:([^@\s/]+)@)?([^@\s:/,]+)(?::([0-9]{1,5}))?/?")


def parse_jump(hop: str) -> tuple[str | None, str, int | None]:
    """``[ssh://][user@]host[:port]`` → (user, host, port); ``ValueError`` if unreadable."""
    m = _JUMP.fullmatch(hop)
    if m is None:
        raise ValueError(hop)
    return m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None


def split_args(text: str, where: str) -> list[str]:
    """Split like OpenSSH's argv_split: quotes, backslash escapes, ``#`` starts a comment."""
    args: list[str] = []
    word: list[str] | None = None
    quote: str | None = None
    chars = iter(text)
    for c in chars:
        if quote is not None:
            if c == quote:
                quote = None
            else:
                word = word or []
                word.append(c)
        elif c in " \t\r\f":
            if word is not None:
                args.append("".join(word))
                word = None
        elif c == "#" and word is None:
            break
        elif c in "\"'":
            quote, word = c, word or []
        else:
            word = word or []
            word.append(next(chars, "\\") if c == "\\" else c)
    if quote is not None:
        raise InputError("unterminated quote", where=where)
    if word is not None:
        args.append("".join(word))
    return args


def _check_value(keyword: str, args: list[str], where: str) -> str:
    if len(args) != 1:
        raise InputError(f"{_READ[keyword]} takes exactly one argument", where=where)
    value = args[0]
    if keyword == "port" and not (
        value.isascii() and value.isdigit() and 0 < int(value[:6]) < 65536
    ):
        raise InputError(f"Port: bad port {value!r} (1-65535)", where=where)
    if keyword == "proxyjump" and value.lower() != "none":
        for hop in value.split(","):
            if _JUMP.fullmatch(hop) is None:
                raise InputError(f"ProxyJump: cannot read jump host {hop!r}", where=where)
    return value


def parse_ssh_config(
    text: str, *, source: str, read_include: IncludeReader | None = None, depth: int = 0
) -> SshConfig:
    """Parse config text. ``read_include(pattern, where, depth)`` reads Include targets."""
    statements: list[_Statement] = []
    unsupported: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{source}:{number}"
        m = re.match(r"\s*([^\s=#]+)\s*(?:=\s*)?(.*)", raw)
        if m is None:  # blank or a comment
            continue
        keyword, args = m.group(1).lower(), split_args(m.group(2), where)
        if keyword == "host":
            statements.append(_Host(tuple(args)))
        elif keyword == "match":
            match = _parse_match(args, where)
            statements.append(match)
            if not match.supported:
                unsupported.append(where)
        elif keyword == "include":
            if read_include is None:
                raise InputError("Include is only followed when reading a file", where=where)
            if depth >= _MAX_INCLUDE_DEPTH:
                raise InputError("Include nested too deeply", where=where)
            for pattern in args:
                included = read_include(pattern, where, depth + 1)
                statements.append(_Include(tuple(c.statements for c in included)))
                unsupported.extend(w for c in included for w in c.unsupported)
        elif keyword in _READ:
            statements.append(_Option(keyword, _check_value(keyword, args, where), where))
    return SshConfig(source, tuple(statements), tuple(unsupported))


def _parse_match(args: list[str], where: str) -> _Match:
    criteria: list[tuple[bool, str, str]] = []
    supported = True
    words = iter(args)
    for word in words:
        negated, criterion = word.startswith("!"), word.lstrip("!").lower()
        if criterion in ("all", "canonical", "final"):
            supported = supported and criterion == "all"
            criteria.append((negated, criterion, ""))
            continue
        patterns = next(words, None)
        if patterns is None:
            raise InputError(f"Match {criterion}: missing argument", where=where)
        supported = supported and criterion in ("host", "originalhost")
        criteria.append((negated, criterion, patterns))
    return _Match(tuple(criteria), supported)


def read_ssh_config(path: str | Path, *, _depth: int = 0) -> SshConfig:
    """Read an OpenSSH client config file (and what it Includes)."""
    text, _ = read_text(Path(path).expanduser())
    return parse_ssh_config(text, source=str(path), read_include=_read_include, depth=_depth)


def _read_include(pattern: str, where: str, depth: int) -> list[SshConfig]:
    try:
        expanded = Path(pattern).expanduser()
        base = expanded if expanded.is_absolute() else Path.home() / ".ssh" / expanded
        anchor = Path(base.anchor)
        files = sorted(p for p in anchor.glob(str(base.relative_to(anchor))) if p.is_file())
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"Include {pattern!r}: {exc}", where=where) from None
    return [read_ssh_config(p, _depth=depth) for p in files]
