"""The one reading of every YAML file probe takes (inventory, policy, lab topology).

The file is *composed* (``yaml.compose`` with the safe loader), never constructed: no Python
object is built from a tag, and each value keeps the mark of where it was written. Typed
accessors then turn nodes into values, raising one-line :class:`~probe.errors.InputError` s that
name the dotted key path and ``file:line``.

One dialect, whichever file it is (PyYAML alone reads YAML 1.1, where ``015`` is octal 13,
``1_0`` is 10 and ``no`` is false; a second reader with its own rules once disagreed):

- integers are decimal digits: ``015`` is 15; ``0x10``, ``0o17``, ``1_000``, ``1e3`` are errors;
- numbers are plain decimals (``2``, ``2.5``, ``1e-3``): no ``.inf``/``.nan``, no underscores;
- booleans are ``true``/``false`` (or ``True``/``TRUE``…): ``yes``/``on`` and a quoted
  ``"false"`` are errors where a boolean is expected, strings where a string is;
- strings are the scalar *as written*: ``zone: no`` is ``"no"``, ``address: 2001:10:20`` is not
  the sexagesimal integer 7212020;
- duplicate keys are errors (PyYAML silently keeps the last one);
- ``null`` (or an empty value) counts as "not given", so a host can clear an inherited default.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import yaml

from probe.errors import InputError
from probe.textio import read_text

_CORE = "tag:yaml.org,2002:"
_NULL, _MERGE, _BINARY = _CORE + "null", _CORE + "merge", _CORE + "binary"
_TRUE, _FALSE = frozenset({"true", "True", "TRUE"}), frozenset({"false", "False", "FALSE"})
_DECIMAL = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
# What some YAML dialect reads as a number but this one refuses: hex, octal, binary,
# underscores, infinities and NaN.
_FOREIGN_NUMBER = re.compile(
    r"[-+]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|\.(?:inf|Inf|INF)|"
    r"(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?)|\.(?:nan|NaN|NAN)"
)
_MAX_DIGITS = 18

_D = TypeVar("_D")
_S = TypeVar("_S", bound=str)


def closest(word: str, known: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` when ``known`` has a near match for a typo, else ``''``."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Node:
    """One YAML value with its place in the file (``where``) and key path (``path``)."""

    __slots__ = ("_node", "path", "source")

    def __init__(self, node: yaml.Node, *, source: str, path: str = "") -> None:
        self._node = node
        self.source = source
        self.path = path

    @property
    def line(self) -> int:
        return int(self._node.start_mark.line) + 1

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def is_null(self) -> bool:
        return isinstance(self._node, yaml.ScalarNode) and self._node.tag == _NULL

    @property
    def is_scalar(self) -> bool:
        return isinstance(self._node, yaml.ScalarNode)

    @property
    def name(self) -> str:
        """The key path as messages quote it."""
        return f"'{self.path}'" if self.path else "the document"

    def error(self, message: str) -> InputError:
        """An :class:`InputError` located at this node (raise it)."""
        return InputError(message, where=self.where)

    def describe(self) -> str:
        """What the node holds, in this dialect: ``a list``, ``the string 'x'``, ``null`` …"""
        node = self._node
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        if not isinstance(node, yaml.ScalarNode):
            return "a mapping"
        if node.tag == _NULL:
            return "null"
        text = str(node.value)
        kind = "the string"
        if node.style is None:  # only a plain scalar can be anything but a string
            if text in _TRUE or text in _FALSE:
                kind = "a boolean"
            elif _DECIMAL.fullmatch(text):
                kind = "an integer"
            elif _NUMBER.fullmatch(text):
                kind = "a number"
        shown = text if len(text) <= 40 else text[:37] + "..."
        return f"{kind} {shown!r}"

    def _wrong(self, expected: str) -> InputError:
        return self.error(f"{self.name} must be {expected}, got {self.describe()}")

    def _scalar(self, expected: str) -> tuple[str, bool]:
        """The text of a scalar and whether it was plain (unquoted); else an error."""
        node = self._node
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            raise self._wrong(expected)
        if not node.tag.startswith(_CORE) or node.tag == _BINARY:
            raise self.error(f"{self.name}: unsupported YAML tag {node.tag!r}")
        return str(node.value), node.style is None

    def _check_range(self, value: float, text: str, low: float | None, high: float | None) -> None:
        if (low is None or value >= low) and (high is None or value <= high):
            return
        if low is not None and high is not None:
            rule = f"between {low} and {high}"
        else:
            rule = f"at least {low}" if low is not None else f"at most {high}"
        raise self.error(f"{self.name} must be {rule}, got {text}")

    def as_str(self) -> str:
        """The scalar as written (any plain or quoted scalar except null and custom tags)."""
        return self._scalar("a string")[0]

    def as_int(self, *, min: int | None = None, max: int | None = None) -> int:
        """Decimal digits only, with an optional inclusive range."""
        text, plain = self._scalar("an integer")
        if not (plain and _DECIMAL.fullmatch(text)):
            if plain and _FOREIGN_NUMBER.fullmatch(text) and not _NUMBER.fullmatch(text):
                raise self.error(
                    f"{self.name} must be an integer written in decimal digits, got {text!r}"
                )
            raise self._wrong("an integer")
        digits = text.lstrip("+-").lstrip("0") or "0"
        if len(digits) > _MAX_DIGITS:
            raise self.error(
                f"{self.name} must have at most {_MAX_DIGITS} digits, got {text[:20]}..."
            )
        value = -int(digits) if text.startswith("-") else int(digits)
        self._check_range(value, text, min, max)
        return value

    def as_float(
        self, *, min: float | None = None, max: float | None = None, above: float | None = None
    ) -> float:
        """A plain decimal number (an integer is one), with an optional range; ``above`` is an
        exclusive lower bound (``above=0``: positive)."""
        text, plain = self._scalar("a number")
        if not (plain and _NUMBER.fullmatch(text)):
            if plain and _FOREIGN_NUMBER.fullmatch(text):
                raise self.error(f"{self.name} must be a plain decimal number, got {text!r}")
            raise self._wrong("a number")
        value = float(text)
        if not math.isfinite(value):
            raise self.error(f"{self.name} is too large, got {text}")
        if above is not None and value <= above:
            raise self.error(f"{self.name} must be greater than {above}, got {text}")
        self._check_range(value, text, min, max)
        return value

    def as_bool(self) -> bool:
        """``true`` or ``false`` only: ``yes``, ``on`` and a quoted ``'false'`` are errors."""
        text, plain = self._scalar("true or false")
        if plain and text in _TRUE:
            return True
        if plain and text in _FALSE:
            return False
        raise self._wrong("true or false")

    def as_choice(self, options: Sequence[_S]) -> _S:
        """One of a closed set of strings; a typo gets the closest option suggested."""
        text = self.as_str()
        for option in options:
            if text == option:
                return option
        known = ", ".join(options)
        hint = closest(text, options)
        raise self.error(f"{self.name} must be one of {known}, got {text!r}{hint}")

    def as_quantity(self, parse: Callable[[str], float]) -> float:
        """A number with its unit, read by one of :mod:`probe.units` (``40ms``, ``1%``)."""
        text, _ = self._scalar("a quantity with a unit")
        try:
            value = parse(text)
        except InputError as exc:
            raise self.error(f"{self.name}: {exc}") from None
        if not math.isfinite(value):
            raise self.error(f"{self.name} is too large, got {text!r}")
        return value

    def as_list(self) -> list[Node]:
        node = self._node
        if not isinstance(node, yaml.SequenceNode):
            raise self._wrong("a list")
        return [
            Node(item, source=self.source, path=f"{self.path}[{i}]")
            for i, item in enumerate(node.value)
        ]

    def as_mapping(self) -> MapNode:
        node = self._node
        if not isinstance(node, yaml.MappingNode):
            raise self._wrong("a mapping")
        return MapNode(node, source=self.source, path=self.path)

    def as_str_list(self) -> list[tuple[str, Node]]:
        """A string or a list of strings, each with its node (``identity: a`` or ``[a, b]``)."""
        items = [self] if self.is_scalar else self.as_list()
        return [(item.as_str(), item) for item in items]


class MapNode(Node):
    """A YAML mapping with string keys. Merge keys (``<<: *anchor``) are applied.

    ``get_*`` read an optional key: absent or null gives ``default``.
    """

    __slots__ = ("_entries",)

    def __init__(self, node: yaml.MappingNode, *, source: str, path: str = "") -> None:
        super().__init__(node, source=source, path=path)
        self._entries = _entries(node, source)

    def _child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def keys(self) -> list[str]:
        return list(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def key_where(self, key: str) -> str:
        """``file:line`` of the key itself (where an unknown key is reported)."""
        return f"{self.source}:{int(self._entries[key][0].start_mark.line) + 1}"

    def items(self) -> Iterator[tuple[str, Node]]:
        for key, (_, value) in self._entries.items():
            yield key, Node(value, source=self.source, path=self._child(key))

    def get(self, key: str) -> Node | None:
        """The value node, or ``None`` when the key is absent or its value is null."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        node = Node(entry[1], source=self.source, path=self._child(key))
        return None if node.is_null else node

    def require(self, key: str) -> Node:
        node = self.get(key)
        if node is None:
            where = self.key_where(key) if key in self._entries else self.where
            raise InputError(f"'{self._child(key)}' is required", where=where)
        return node

    def get_str(self, key: str, default: _D) -> str | _D:
        node = self.get(key)
        return default if node is None else node.as_str()

    def get_int(
        self, key: str, default: _D, *, min: int | None = None, max: int | None = None
    ) -> int | _D:
        node = self.get(key)
        return default if node is None else node.as_int(min=min, max=max)

    def get_float(
        self,
        key: str,
        default: _D,
        *,
        min: float | None = None,
        max: float | None = None,
        above: float | None = None,
    ) -> float | _D:
        node = self.get(key)
        return default if node is None else node.as_float(min=min, max=max, above=above)

    def get_bool(self, key: str, default: _D) -> bool | _D:
        node = self.get(key)
        return default if node is None else node.as_bool()

    def get_choice(self, key: str, options: Sequence[_S], default: _D) -> _S | _D:
        node = self.get(key)
        return default if node is None else node.as_choice(options)

    def get_quantity(self, key: str, parse: Callable[[str], float], default: _D) -> float | _D:
        node = self.get(key)
        return default if node is None else node.as_quantity(parse)

    def get_mapping(self, key: str) -> MapNode | None:
        node = self.get(key)
        return None if node is None else node.as_mapping()

    def section(self, key: str) -> MapNode:
        """The mapping at ``key``; an empty one when absent or null (an optional section)."""
        node = self.get(key)
        if node is not None:
            return node.as_mapping()
        mark = self._entries[key][0].start_mark if key in self._entries else self._node.start_mark
        empty = yaml.MappingNode(_CORE + "map", [], start_mark=mark, end_mark=mark)
        return MapNode(empty, source=self.source, path=self._child(key))

    def get_list(self, key: str) -> list[Node] | None:
        node = self.get(key)
        return None if node is None else node.as_list()

    def check_keys(self, allowed: Collection[str]) -> None:
        """Reject the first key not in ``allowed``, suggesting the closest one (typos)."""
        for key in self._entries:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                shown = self._child(key)
                shown = shown if shown.isprintable() else repr(shown)[1:-1]  # one line, always
                raise InputError(
                    f"unknown key '{shown}'{closest(key, allowed)}; known keys: {known}",
                    where=self.key_where(key),
                )


def _entries(
    node: yaml.MappingNode,
    source: str,
    ancestors: frozenset[int] = frozenset(),
    memo: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] | None = None,
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """Key → (key node, value node); explicit keys beat merged ones, duplicates are errors.

    ``memo`` keeps a mapping merged many times (``<<: [*a, *a]`` nested) from costing
    exponential time; ``ancestors`` catches a mapping that merges itself.
    """
    memo = {} if memo is None else memo
    if id(node) in memo:
        return memo[id(node)]
    if id(node) in ancestors:
        raise _at(node, source, "recursive merge key '<<'")
    merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    raise _at(src, source, "merge key '<<' needs a mapping or a list of mappings")
                for key, entry in _entries(src, source, ancestors | {id(node)}, memo).items():
                    merged.setdefault(key, entry)  # the first mapping listed wins
            continue
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
            raise _at(key_node, source, "mapping keys must be strings")
        key = str(key_node.value)
        if key in own:
            first = int(own[key][0].start_mark.line) + 1
            raise _at(key_node, source, f"duplicate key '{key}' (first at line {first})")
        own[key] = (key_node, value_node)
    memo[id(node)] = merged | own
    return memo[id(node)]


def _at(node: yaml.Node, source: str, message: str) -> InputError:
    return InputError(message, where=f"{source}:{int(node.start_mark.line) + 1}")


def parse_yaml(text: str, *, source: str) -> Node:
    """Compose one YAML document; syntax errors become ``InputError`` at ``source:line``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed"
        raise InputError(f"not valid YAML: {problem}", where=source + line) from exc
    except yaml.YAMLError as exc:  # e.g. ReaderError: a control character; its text has 2 lines
        raise InputError(f"not valid YAML: {exc}".replace("\n", " "), where=source) from exc
    except RecursionError as exc:  # PyYAML's composer recurses once per nesting level
        raise InputError("not valid YAML: nested too deeply", where=source) from exc
    if root is None:
        raise InputError("the file is empty", where=f"{source}:1")
    return Node(root, source=source)


def parse_yaml_mapping(text: str, *, source: str) -> MapNode:
    """Like :func:`parse_yaml`, for the usual case of a file that is one mapping."""
    return parse_yaml(text, source=source).as_mapping()


def load_yaml_mapping(path: str | Path) -> MapNode:
    """Read ``path`` (UTF-8) as one YAML mapping; every error names ``path:line``."""
    text, _ = read_text(path)
    return parse_yaml_mapping(text, source=str(path))
