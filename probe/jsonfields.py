"""Decoding probe's own JSON files into typed records, checked once where they are read.

Each reader of such a file (``run.json``, the lab's state files) walks it with a
:class:`JsonObject`: typed getters whose one-line errors name the file and the key path
(``run.json: 'hosts[2].measure' must be true or false, not 'yes'``). The error type is the
reader's own (``StoreError`` for a run directory, ``LabError`` for a lab), so the CLI maps it to
the right exit code. JSON typing is strict: a boolean is not a number, a number is not a string;
an integer is a number. A key that is missing or ``null`` takes the default of an optional field
(fields are only ever added within a schema major, so an older file lacks the newer ones).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NoReturn, TypeVar, cast

from probe.errors import InputError, ProbeError
from probe.textio import read_text

T = TypeVar("T")
D = TypeVar("D")
#: How a reader makes its error from a one-line message (e.g. ``StoreError``).
ErrorType = Callable[[str], ProbeError]

_KIND_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


def is_kind(value: object, kind: type) -> bool:
    """JSON typing: a bool is not a number; an int is a float."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


def _shown(key: str) -> str:
    """A key as an error message may quote it: a key holding a newline or another control
    character is escaped, so the message stays one line."""
    return key if key.isprintable() else key.encode("unicode_escape").decode("ascii")


class JsonObject:
    """One JSON object of a file being decoded; ``path`` is its key path from the top."""

    __slots__ = ("_error", "_obj", "path", "where")

    def __init__(
        self, obj: Mapping[str, object], where: str, error: ErrorType, path: str = ""
    ) -> None:
        self._obj = obj
        self.where = where
        self._error = error
        self.path = path

    def fail(self, message: str) -> NoReturn:
        raise self._error(f"{self.where}: {message}")

    def name(self, key: str) -> str:
        return f"'{self.path}{_shown(key)}'"

    def wrong(self, key: str, value: object, expected: str) -> NoReturn:
        self.fail(f"{self.name(key)} must be {expected}, not {value!r:.40}")

    def __contains__(self, key: str) -> bool:
        return self._obj.get(key) is not None

    def names(self) -> list[str]:
        return list(self._obj)

    def raw(self, key: str) -> object:
        """The value as decoded (missing: None), for the few fields of more than one type."""
        return self._obj.get(key)

    def req(self, key: str, kind: type[T]) -> T:
        """A required field of one JSON type (``float`` also takes an integer)."""
        if key not in self._obj:
            self.fail(f"{self.name(key)} is missing")
        return self._check(key, self._obj[key], kind)

    def opt(self, key: str, kind: type[T], default: D) -> T | D:
        """An optional field: ``default`` when missing or null."""
        value = self._obj.get(key)
        return default if value is None else self._check(key, value, kind)

    def _check(self, key: str, value: object, kind: type[T]) -> T:
        if type(value) is kind:  # the common case first: the emulator reads while it forwards
            return value
        if not is_kind(value, kind):
            self.wrong(key, value, _KIND_NAMES[kind])
        if kind is not float:
            return cast("T", value)
        try:
            return cast("T", float(cast("float", value)))
        except OverflowError:  # an integer of hundreds of digits
            self.wrong(key, value, "a number in range")

    def obj(self, key: str) -> JsonObject:
        return self.child(key, self.req(key, dict))

    def opt_obj(self, key: str) -> JsonObject | None:
        value = self.opt(key, dict, None)
        return None if value is None else self.child(key, value)

    def child(self, key: str, value: Mapping[str, object]) -> JsonObject:
        return JsonObject(value, self.where, self._error, f"{self.path}{_shown(key)}.")

    def section(self, key: str) -> JsonObject:
        """The object ``key``, empty when missing or null (a table an older file lacks)."""
        return self.child(key, self.opt(key, dict, {}))

    def objects(self, key: str) -> Iterator[JsonObject]:
        """The objects of the list ``key``, each named ``key[i]`` in errors."""
        for i, value in enumerate(self.req(key, list)):
            if not isinstance(value, dict):
                self.wrong(f"{key}[{i}]", value, "an object")
            yield self.child(f"{key}[{i}]", value)

    def listing(self, key: str, kind: type[T]) -> tuple[T, ...]:
        """The list ``key`` of values of one JSON type."""
        values = self.req(key, list)
        return tuple(self._check(f"{key}[{i}]", v, kind) for i, v in enumerate(values))

    def members(self) -> Iterator[tuple[str, JsonObject]]:
        """(name, object) for each member of this object, every value an object."""
        for name in self._obj:
            yield name, self.obj(name)

    def entries(self, kind: type[T]) -> dict[str, T]:
        """This object as a table of values of one JSON type."""
        return {name: self.req(name, kind) for name in self._obj}

    def nullable_entries(self, kind: type[T]) -> dict[str, T | None]:
        """This object as a table of values of one JSON type or null."""
        return {name: self.opt(name, kind, None) for name in self._obj}


def parse_object(text: str, where: str, error: ErrorType) -> JsonObject:
    """The top-level object of a JSON text; anything else is ``error`` naming ``where``."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise error(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise error(f"{where}: expected a JSON object")
    return JsonObject(doc, where, error)


def read_object(path: Path, error: ErrorType) -> JsonObject:
    """A JSON file's top-level object; a missing, unreadable or non-UTF-8 file is ``error``."""
    try:
        text, _ = read_text(path)
    except InputError as exc:
        raise error(str(exc)) from exc
    return parse_object(text, str(path), error)
