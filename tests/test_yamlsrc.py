"""YAML with line numbers: typed accessors whose errors name the key path and file:line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe import units
from probe.errors import InputError
from probe.yamlsrc import MapNode, load_yaml_mapping, parse_yaml, parse_yaml_mapping

DOC = """\
name: lab
count: 3
enabled: true
nested:
  port: 22
  list: [a, b]
  empty:
"""


def test_typed_accessors_and_lines() -> None:
    root = parse_yaml_mapping(DOC, source="f.yaml")
    assert root.get_str("name", None) == "lab"
    assert (root.get_int("count", 0), root.get_bool("enabled", False)) == (3, True)
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
        ("a: [1]\n", lambda m: m.get_str("a", None), "f:1", "'a' must be a string, got a list"),
        ("a:\n  b: x\n", lambda m: m.get_int("a", 0), "f:2",
         "'a' must be an integer, got a mapping"),
        ("a: 1.5\n", lambda m: m.get_int("a", 0), "f:1", "got a number '1.5'"),
        ("a: 0o17\n", lambda m: m.get_int("a", 0), "f:1", "in decimal digits, got '0o17'"),
        ("a: 017_0\n", lambda m: m.get_int("a", 0), "f:1", "integer written in decimal"),
        ("a: 'yes'\n", lambda m: m.get_bool("a", None), "f:1", "'a' must be true or false"),
        ("a: {b: 1}\n", lambda m: m.get_list("a"), "f:1", "'a' must be a list, got a mapping"),
        ("a: !custom x\n", lambda m: m.get_str("a", None), "f:1", "unsupported YAML tag '!custom'"),
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
        ssh.get_int("port", 22)
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
    assert last is not None and last.get_int("a", 0) == 1


def test_yaml_1_1_scalars_are_read_as_written() -> None:
    root = parse_yaml_mapping("a: no\nb: 1:30\nc: 022\nd: 2024-01-01\n", source="f")
    assert [root.get_str(k, None) for k in "abcd"] == ["no", "1:30", "022", "2024-01-01"]
    assert root.get_int("c", 0) == 22  # decimal, not octal


def test_as_str_list_accepts_one_or_many() -> None:
    root = parse_yaml_mapping("a: x\nb: [y, z]\n", source="f")
    assert [v for v, _ in root.require("a").as_str_list()] == ["x"]
    assert [v for v, _ in root.require("b").as_str_list()] == ["y", "z"]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("a: [1\n", "f:2", "not valid YAML"),
        ("a: 1\n b: 2\n", "f:2", "not valid YAML"),
        ("a: 1\n---\nb: 2\n", "f:2", "not valid YAML"),  # one document only
        ("a: *nope\n", "f:1", "not valid YAML"),
        ("", "f:1", "the file is empty"),
        ("# only a comment\n", "f:1", "the file is empty"),
        ("a: \x01\n", "f", "not valid YAML: unacceptable character"),
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
    assert load_yaml_mapping(path).get_int("a", 0) == 1
    with pytest.raises(InputError, match="file not found"):
        load_yaml_mapping(tmp_path / "missing.yaml")


# --- the one dialect: decimal integers, plain numbers, true/false ------------------------------


def _value(text: str) -> MapNode:
    return parse_yaml_mapping(f"x: 1\na: {text}\n", source="f")


def _refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InputError) as info:
        call()
    assert info.value.where == "f:2"
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1_000", "'a' must be an integer written in decimal digits, got '1_000'"),
        ("0x10", "'a' must be an integer written in decimal digits, got '0x10'"),
        ("0o17", "'a' must be an integer written in decimal digits, got '0o17'"),
        ("0b101", "'a' must be an integer written in decimal digits, got '0b101'"),
        ("1e3", "'a' must be an integer, got a number '1e3'"),
        ("'15'", "'a' must be an integer, got the string '15'"),
        ("true", "'a' must be an integer, got a boolean 'true'"),
        ("1" * 19, "'a' must have at most 18 digits"),
    ],
)
def test_integers_are_decimal_digits_only(text: str, message: str) -> None:
    _refused(lambda: _value(text).require("a").as_int(), message)


def test_integers_with_leading_zeros_are_decimal_and_ranges_are_checked() -> None:
    read = [_value(t).require("a").as_int() for t in ("015", "+015", "-015", "00")]
    assert read == [15, 15, -15, 0]
    assert _value("7").get_int("a", 0, min=1, max=9) == 7
    _refused(lambda: _value("0").get_int("a", 0, min=1), "'a' must be at least 1, got 0")
    _refused(lambda: _value("70000").get_int("a", 0, max=65535), "'a' must be at most 65535")
    _refused(
        lambda: _value("-1").get_int("a", 0, min=0, max=99), "'a' must be between 0 and 99, got -1"
    )


@pytest.mark.parametrize(
    ("text", "expected"), [("2", 2.0), ("2.5", 2.5), ("-1e-3", -0.001), (".5", 0.5), ("015", 15.0)]
)
def test_numbers_are_plain_decimals_and_integers_count(text: str, expected: float) -> None:
    assert _value(text).require("a").as_float() == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (".inf", "'a' must be a plain decimal number, got '.inf'"),
        ("-.inf", "'a' must be a plain decimal number, got '-.inf'"),
        (".nan", "'a' must be a plain decimal number, got '.nan'"),
        ("1_000.5", "'a' must be a plain decimal number, got '1_000.5'"),
        ("0x10", "'a' must be a plain decimal number, got '0x10'"),
        ("'2.5'", "'a' must be a number, got the string '2.5'"),
        ("1e999", "'a' is too large, got 1e999"),
    ],
)
def test_numbers_refuse_other_spellings(text: str, message: str) -> None:
    _refused(lambda: _value(text).require("a").as_float(), message)


def test_number_bounds() -> None:
    _refused(lambda: _value("0").get_float("a", 1.0, above=0), "'a' must be greater than 0, got 0")
    _refused(lambda: _value("101").get_float("a", 1.0, max=100), "'a' must be at most 100, got 101")
    assert _value("0.1").get_float("a", 1.0, above=0, max=100) == 0.1


@pytest.mark.parametrize("text", ["true", "True", "TRUE", "false", "False", "FALSE"])
def test_booleans_are_true_and_false(text: str) -> None:
    assert _value(text).require("a").as_bool() is (text.lower() == "true")


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("yes", "the string 'yes'"),
        ("no", "the string 'no'"),
        ("on", "the string 'on'"),
        ("off", "the string 'off'"),
        ("'false'", "the string 'false'"),
        ('"true"', "the string 'true'"),
        ("1", "an integer '1'"),
        ("tRUE", "the string 'tRUE'"),
    ],
)
def test_booleans_refuse_everything_else(text: str, got: str) -> None:
    _refused(lambda: _value(text).require("a").as_bool(), f"'a' must be true or false, got {got}")


def test_choices_suggest_the_closest_option() -> None:
    assert _value("p99").get_choice("a", ("p50", "p99"), "p50") == "p99"
    assert _value("x").get_choice("b", ("p50", "p99"), "p50") == "p50"
    _refused(
        lambda: _value("p9").require("a").as_choice(("p50", "p99", "mc-p99")),
        "'a' must be one of p50, p99, mc-p99, got 'p9' (did you mean 'p99'?)",
    )


def test_quantities_read_with_their_unit() -> None:
    assert _value("40ms").get_quantity("a", units.parse_duration_ms, 0.0) == 40.0
    assert _value("'1.5s'").require("a").as_quantity(units.parse_duration_ms) == 1500.0
    assert _value("20mbit").require("a").as_quantity(units.parse_rate_bps) == 20e6
    assert _value("0.1%").require("a").as_quantity(units.parse_percent) == 0.1
    _refused(
        lambda: _value("40").require("a").as_quantity(units.parse_duration_ms),
        "'a': duration '40' needs a unit",
    )
    _refused(lambda: _value("[1]").require("a").as_quantity(units.parse_percent), "got a list")


def test_a_missing_section_reads_as_empty_at_its_parent() -> None:
    root = parse_yaml_mapping("x: 1\nempty:\n", source="f")
    for key, where in (("absent", "f:1"), ("empty", "f:2")):
        section = root.section(key)
        assert (section.keys(), section.where, section.path) == ([], where, key)
        assert section.get_int("port", 22) == 22
    with pytest.raises(InputError, match="'x' must be a mapping"):
        root.section("x")


# --- properties -------------------------------------------------------------------------------

INTS = st.integers(-(10**18) + 1, 10**18 - 1)


@given(INTS, st.integers(0, 3), st.booleans())
def test_any_decimal_integer_round_trips(value: int, zeros: int, plus: bool) -> None:
    digits = "0" * zeros + str(abs(value))
    text = ("-" if value < 0 else "+" if plus else "") + digits
    assert _value(text).require("a").as_int() == value
    assert _value(text).require("a").as_float() == float(value)


@given(
    st.integers(0, 10**12),
    st.sampled_from(
        ["0x{:x}", "0X{:X}", "0o{:o}", "0b{:b}", "{:_}0_0", "{}e0", "{}.0", "{}.", "-{}e1"]
    ),
)
def test_any_other_spelling_of_an_integer_is_refused(value: int, spelling: str) -> None:
    with pytest.raises(InputError, match=r"^f:2: 'a' must be an integer"):
        _value(spelling.format(value)).require("a").as_int()


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_round_trips(value: float) -> None:
    assert _value(repr(value)).require("a").as_float() == value


@given(
    st.sampled_from(["yes", "no", "on", "off", "y", "n", "true", "false"]).flatmap(
        lambda w: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in w)).map("".join)
    ),
    st.sampled_from(["{}", "'{}'", '"{}"']),
)
def test_only_the_six_spellings_are_booleans(word: str, quoting: str) -> None:
    node = _value(quoting.format(word)).require("a")
    if quoting == "{}" and word in ("true", "True", "TRUE", "false", "False", "FALSE"):
        assert node.as_bool() is (word.lower() == "true")
    else:
        with pytest.raises(InputError, match="must be true or false"):
            node.as_bool()
        assert node.as_str() == word  # where a string is expected, it is one
