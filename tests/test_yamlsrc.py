"""YAML with line numbers: typed accessors whose errors name the key path and file:line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from probe.errors import InputError
from probe.yamlsrc import MapNode, load_yaml_mapping, parse_yaml, parse_yaml_mapping

DOC = """\
name: lab
count: 3
enabled: yes
nested:
  port: 22
  list: [a, b]
  empty:
"""


def test_typed_accessors_and_lines() -> None:
    root = parse_yaml_mapping(DOC, source="f.yaml")
    assert (root.get_str("name"), root.get_int("count"), root.get_bool("enabled")) == (
        "lab",
        3,
        True,
    )
    nested = root.get_mapping("nested")
    assert nested is not None
    assert nested.where == "f.yaml:5"
    assert nested.key_where("list") == "f.yaml:6"
    assert [n.as_str() for n in nested.get_list("list") or []] == ["a", "b"]
    assert nested.get("empty") is None  # null counts as not given
    assert nested.get_str("missing", "dflt") == "dflt"
    assert root.keys() == ["name", "count", "enabled", "nested"]


@pytest.mark.parametrize(
    ("text", "call", "where", "message"),
    [
        ("a: [1]\n", lambda m: m.get_str("a"), "f:1", "'a' must be a string, got a list"),
        ("a:\n  b: x\n", lambda m: m.get_int("a"), "f:2", "'a' must be an integer, got a mapping"),
        ("a: 1.5\n", lambda m: m.get_int("a"), "f:1", "got a number '1.5'"),
        ("a: 0o17\n", lambda m: m.get_int("a"), "f:1", "'a' must be an integer, got the string"),
        ("a: 017_0\n", lambda m: m.get_int("a"), "f:1", "integer written in decimal"),
        ("a: 'yes'\n", lambda m: m.get_bool("a"), "f:1", "'a' must be true or false"),
        ("a: {b: 1}\n", lambda m: m.get_list("a"), "f:1", "'a' must be a list, got a mapping"),
        ("a: !custom x\n", lambda m: m.get_str("a"), "f:1", "unsupported YAML tag '!custom'"),
        ("x: 1\na: ~\n", lambda m: m.require("a"), "f:2", "'a' is required"),
        ("x: 1\n", lambda m: m.require("a"), "f:1", "'a' is required"),
    ],
)  # fmt: skip
def test_type_errors_name_the_path_and_line(
    text: str, call: Callable[[MapNode], object], where: str, message: str
) -> None:
    root = parse_yaml_mapping(text, source="f")
    with pytest.raises(InputError) as info:
        call(root)
    assert info.value.where == where
    assert message in str(info.value)


def test_nested_path_in_messages() -> None:
    root = parse_yaml_mapping("hosts:\n  - ssh:\n      port: x\n", source="f")
    host = (root.get_list("hosts") or [])[0].as_mapping()
    ssh = host.get_mapping("ssh")
    assert ssh is not None
    with pytest.raises(InputError, match=r"'hosts\[0\]\.ssh\.port' must be an integer") as info:
        ssh.get_int("port")
    assert info.value.where == "f:3"


def test_check_keys_suggests_the_closest_key() -> None:
    root = parse_yaml_mapping("name: a\nadress: b\n", source="f")
    with pytest.raises(
        InputError, match=r"unknown key 'adress' \(did you mean 'address'\?\)"
    ) as info:
        root.check_keys({"name", "address"})
    assert info.value.where == "f:2"


def test_duplicate_keys_are_errors_at_the_second() -> None:
    with pytest.raises(InputError, match=r"duplicate key 'a' \(first at line 1\)") as info:
        parse_yaml_mapping("a: 1\nb: 2\na: 3\n", source="f")
    assert info.value.where == "f:3"


def test_merge_keys_explicit_beats_merged_and_first_merged_wins() -> None:
    text = "x: &x {a: 1, b: 1}\ny: &y {b: 2, c: 2}\nz: {<<: [*x, *y], a: 9}\n"
    z = parse_yaml_mapping(text, source="f").get_mapping("z")
    assert z is not None
    assert {k: v.as_int() for k, v in z.items()} == {"a": 9, "b": 1, "c": 2}
    assert z.key_where("c") == "f:2"  # points at where the value was written


def test_merge_of_a_scalar_is_an_error() -> None:
    with pytest.raises(InputError, match="merge key"):
        parse_yaml_mapping("x: &x 1\nz: {<<: *x}\n", source="f").get_mapping("z")


def test_exponential_merges_stay_cheap() -> None:
    lines = ["l0: &l0 {a: 1}"]
    lines += [f"l{i}: &l{i} {{<<: [{', '.join([f'*l{i - 1}'] * 8)}]}}" for i in range(1, 30)]
    root = parse_yaml_mapping("\n".join(lines) + "\n", source="f")
    last = root.get_mapping("l29")
    assert last is not None and last.get_int("a") == 1


def test_yaml_1_1_scalars_are_read_as_written() -> None:
    root = parse_yaml_mapping("a: no\nb: 1:30\nc: 022\nd: 2024-01-01\n", source="f")
    assert [root.get_str(k) for k in "abcd"] == ["no", "1:30", "022", "2024-01-01"]
    assert root.get_int("c") == 22  # decimal, not octal


def test_as_str_list_accepts_one_or_many() -> None:
    root = parse_yaml_mapping("a: x\nb: [y, z]\n", source="f")
    assert [v for v, _ in root.require("a").as_str_list()] == ["x"]
    assert [v for v, _ in root.require("b").as_str_list()] == ["y", "z"]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("a: [1\n", "f:2", "YAML syntax error"),
        ("a: 1\n b: 2\n", "f:2", "YAML syntax error"),
        ("a: 1\n---\nb: 2\n", "f:2", "YAML syntax error"),  # one document only
        ("a: *nope\n", "f:1", "YAML syntax error"),
        ("", "f:1", "the file is empty"),
        ("# only a comment\n", "f:1", "the file is empty"),
        ("a: \x01\n", "f", "YAML error"),
        ("[" * 5000, "f", "nested too deeply"),
    ],
)
def test_syntax_errors(text: str, where: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_yaml(text, source="f")
    assert info.value.where == where
    assert "\n" not in str(info.value)


def test_document_must_be_a_mapping() -> None:
    with pytest.raises(InputError, match="the document must be a mapping, got a list"):
        parse_yaml_mapping("- a\n", source="f")


def test_load_yaml_mapping_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\n")
    assert load_yaml_mapping(path).get_int("a") == 1
    with pytest.raises(InputError, match="file not found"):
        load_yaml_mapping(tmp_path / "missing.yaml")
