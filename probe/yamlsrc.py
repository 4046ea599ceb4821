"""YAML read with its line numbers, so that every error can say ``file:line``.

The file is *composed* (``yaml.compose`` with the safe loader), never constructed: no Python
object is built from a tag, and each value keeps the mark of where it was written. Typed
accessors then turn nodes into ``str``/``int``/``bool``/lists/mappings, raising one-line
:class:`~probe.errors.InputError` s that name the dotted key path and ``file:line``.

Choices that differ from ``yaml.safe_load`` on purpose:

- duplicate keys are an error (PyYAML silently keeps the last one);
- strings are the scalar *as written*: ``zone: no`` is ``"no"``, ``address: 2001:10:20`` is not
  the sexagesimal integer 7212020 (YAML 1.1 surprises);
- integers must be written in decimal: ``port: 022`` is 22, not octal 18;
- ``null`` (or an empty value) counts as "not given", so a host can clear an inherited default.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import overload

import yaml

from probe.errors import InputError
from probe.textio import read_text

_CORE = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT = _CORE + "null", _CORE + "bool", _CORE + "int", _CORE + "float"
_MERGE = _CORE + "merge"
_TRUE, _FALSE = {"true", "yes", "on"}, {"false", "no", "off"}


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

    def error(self, message: str) -> InputError:
        """An :class:`InputError` located at this node (raise it)."""
        return InputError(message, where=self.where)

    def describe(self) -> str:
        """What the node holds, for messages: ``a list``, ``the string 'x'``, ``null`` …"""
        node = self._node
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        kind = {_NULL: "null", _BOOL: "a boolean", _INT: "an integer", _FLOAT: "a number"}
        text = str(node.value)
        shown = text if len(text) <= 40 else text[:37] + "..."
        return "null" if node.tag == _NULL else f"{kind.get(node.tag, 'the string')} {shown!r}"

    def _wrong(self, expected: str) -> InputError:
        name = f"'{self.path}'" if self.path else "the document"
        return self.error(f"{name} must be {expected}, got {self.describe()}")

    def as_str(self) -> str:
        """The scalar as written (any plain or quoted scalar except null and custom tags)."""
        node = self._node
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            raise self._wrong("a string")
        if not node.tag.startswith(_CORE) or node.tag == _CORE + "binary":
            raise self.error(f"'{self.path}': unsupported YAML tag {node.tag!r}")
        return str(node.value)

    def as_int(self) -> int:
        node = self._node
        text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
        if node.tag != _INT:
            raise self._wrong("an integer")
        digits = text.lstrip("+-")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
            raise self._wrong("an integer written in decimal")
        return int(text)

    def as_bool(self) -> bool:
        node = self._node
        if node.tag == _BOOL and isinstance(node, yaml.ScalarNode):
            return str(node.value).lower() in _TRUE
        raise self._wrong("true or false")

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
        items = [self] if isinstance(self._node, yaml.ScalarNode) else self.as_list()
        return [(item.as_str(), item) for item in items]


class MapNode(Node):
    """A YAML mapping with string keys. Merge keys (``<<: *anchor``) are applied."""

    __slots__ = ("_entries",)

    def __init__(self, node: yaml.MappingNode, *, source: str, path: str = "") -> None:
        super().__init__(node, source=source, path=path)
        self._entries = _entries(node, source)

    def _child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def keys(self) -> list[str]:
        return list(self._entries)

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

    @overload
    def get_str(self, key: str) -> str | None: ...
    @overload
    def get_str(self, key: str, default: str) -> str: ...
    def get_str(self, key: str, default: str | None = None) -> str | None:
        node = self.get(key)
        return default if node is None else node.as_str()

    @overload
    def get_int(self, key: str) -> int | None: ...
    @overload
    def get_int(self, key: str, default: int) -> int: ...
    def get_int(self, key: str, default: int | None = None) -> int | None:
        node = self.get(key)
        return default if node is None else node.as_int()

    @overload
    def get_bool(self, key: str) -> bool | None: ...
    @overload
    def get_bool(self, key: str, default: bool) -> bool: ...
    def get_bool(self, key: str, default: bool | None = None) -> bool | None:
        node = self.get(key)
        return default if node is None else node.as_bool()

    def get_mapping(self, key: str) -> MapNode | None:
        node = self.get(key)
        return None if node is None else node.as_mapping()

    def get_list(self, key: str) -> list[Node] | None:
        node = self.get(key)
        return None if node is None else node.as_list()

    def check_keys(self, allowed: Collection[str]) -> None:
        """Reject the first key not in ``allowed``, suggesting the closest one (typos)."""
        for key in self._entries:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                known = ", ".join(sorted(allowed))
                raise InputError(
                    f"unknown key '{self._child(key)}'{hint}; known keys: {known}",
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
        raise InputError(f"YAML syntax error: {problem}", where=source + line) from exc
    except yaml.YAMLError as exc:  # e.g. ReaderError: a control character in the text
        raise InputError(f"YAML error: {exc}".replace("\n", " "), where=source) from exc
    except RecursionError as exc:  # PyYAML's composer recurses once per nesting level
        raise InputError("YAML nested too deeply", where=source) from exc
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
