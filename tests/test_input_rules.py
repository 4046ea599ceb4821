"""One YAML dialect for every file probe reads: each rule, through each reader.

A policy, an inventory and a lab topology once each had their own reading of YAML (``015`` was 13
in a policy and 15 in an inventory; ``measure: "false"`` was true in a topology). Every rule here
runs through all three readers, from a file, so a reader that drifts fails by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from probe.decide.policy import CoverageCheck, LatencyCheck, SpecCheck, load_policy
from probe.errors import InputError
from probe.inventory import load_inventory
from probe.lab.topology import load_topology


@dataclass(frozen=True, slots=True)
class Doc:
    """A file with one ``{}`` slot on line ``line``, and how to read the slot's value back."""

    text: str
    line: int
    read: Callable[[Path], object]


@dataclass(frozen=True, slots=True)
class Reader:
    name: str
    integer: Doc
    boolean: Doc
    number: Doc | None
    duplicate: tuple[str, int, int, str]  # text, line of the repeat, line of the first, key
    typo: tuple[str, int, str]  # text, line, the message's tail


def _check(path: Path, index: int = 0) -> object:
    return load_policy(path).checks[index]


def _min_samples(path: Path) -> int:
    check = _check(path)
    assert isinstance(check, CoverageCheck)
    return check.min_samples


def _ring(path: Path) -> bool:
    check = _check(path)
    assert isinstance(check, LatencyCheck)
    return check.workload.ring


def _accepted(path: Path) -> float | None:
    check = _check(path)
    assert isinstance(check, SpecCheck)
    return check.accepted_per_block


TOPOLOGY_HOSTS = "name: t\nprefix: pt-\njump: a\nregions:\n  r:\n    hosts:\n      a: 198.18.9.1\n"
TOPOLOGY = TOPOLOGY_HOSTS + "      b: 198.18.9.2\n"

READERS = [
    Reader(
        "inventory",
        Doc(
            "hosts:\n  - name: a\n    address: 10.0.0.1\n    ssh: {{port: {}}}\n",
            4,
            lambda p: load_inventory(p).host("a").ssh.port,
        ),
        Doc(
            "hosts:\n  - {{name: a, address: 10.0.0.1}}\n  - name: b\n    address: 10.0.0.2\n"
            "    measure: {}\n",
            5,
            lambda p: load_inventory(p).host("b").measure,
        ),
        None,  # an inventory has no plain numbers
        ("hosts:\n  - name: a\n    address: 10.0.0.1\n    address: 10.0.0.2\n", 4, 3, "address"),
        ("hosts:\n  - name: a\n    adress: 10.0.0.1\n", 3, "(did you mean 'address'?)"),
    ),
    Reader(
        "policy",
        Doc("checks:\n  - kind: coverage\n    min_samples: {}\n", 3, _min_samples),
        Doc(
            "checks:\n  - kind: decode\n    model: llama-3-8b\n    stages: 2\n    budget: 1s\n"
            "    ring: {}\n",
            6,
            _ring,
        ),
        Doc(
            "checks:\n  - kind: spec\n    proposer: a\n    verifier: b\n    block: 40ms\n"
            "    ar_tokens_per_s: 30\n    accepted_tokens: {}\n",
            7,
            _accepted,
        ),
        ("checks:\n  - kind: coverage\n    min_ok: 5%\n    min_ok: 7%\n", 4, 3, "min_ok"),
        ("checks:\n  - kind: coverage\n    min_sample: 3\n", 3, "(did you mean 'min_samples'?)"),
    ),
    Reader(
        "topology",
        Doc(TOPOLOGY + "ssh: {{port: {}}}\n", 9, lambda p: load_topology(str(p)).ssh_port),
        Doc(
            TOPOLOGY_HOSTS + "      b: {{address: 198.18.9.2, measure: {}}}\n",
            8,
            lambda p: load_topology(str(p)).host("b").measure,
        ),
        Doc(
            TOPOLOGY + "emulator: {{timing: {{comp_us: {}}}}}\n",
            9,
            lambda p: load_topology(str(p)).emulator.comp_us,
        ),
        (TOPOLOGY_HOSTS + "      b: 198.18.9.2\n      b: 198.18.9.3\n", 9, 8, "b"),
        (TOPOLOGY + "emulatr: {}\n", 9, "(did you mean 'emulator'?)"),
    ),
]
BY_NAME = pytest.mark.parametrize("reader", READERS, ids=[r.name for r in READERS])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "input.yaml"
    path.write_text(text)
    return path


def _read(tmp_path: Path, doc: Doc, value: str) -> object:
    return doc.read(_write(tmp_path, doc.text.format(value)))


def _refused(tmp_path: Path, doc: Doc, value: str) -> str:
    """The message of the error ``value`` gives, checked to be at ``FILE:LINE`` of its line."""
    with pytest.raises(InputError) as info:
        _read(tmp_path, doc, value)
    assert info.value.where == f"{tmp_path / 'input.yaml'}:{doc.line}"
    assert "\n" not in str(info.value)
    return str(info.value)


@BY_NAME
def test_a_leading_zero_is_still_decimal(tmp_path: Path, reader: Reader) -> None:
    assert _read(tmp_path, reader.integer, "015") == 15  # YAML 1.1: octal 13
    assert _read(tmp_path, reader.integer, "+22") == 22


@BY_NAME
@pytest.mark.parametrize("value", ["1_000", "0x10", "0o17", "0b11"])
def test_integers_in_other_bases_or_with_underscores_are_refused(
    tmp_path: Path, reader: Reader, value: str
) -> None:
    message = _refused(tmp_path, reader.integer, value)
    assert f"must be an integer written in decimal digits, got '{value}'" in message


@BY_NAME
@pytest.mark.parametrize("value", ["1e3", "22.0", "'22'", "true"])
def test_an_integer_is_not_a_number_string_or_boolean(
    tmp_path: Path, reader: Reader, value: str
) -> None:
    assert "must be an integer, got " in _refused(tmp_path, reader.integer, value)


@BY_NAME
@pytest.mark.parametrize(("value", "expected"), [("true", True), ("False", False), ("TRUE", True)])
def test_true_and_false_are_the_booleans(
    tmp_path: Path, reader: Reader, value: str, expected: bool
) -> None:
    assert _read(tmp_path, reader.boolean, value) is expected


@BY_NAME
@pytest.mark.parametrize(
    ("value", "shown"),
    [("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ('"false"', "false"),
     ("'true'", "true")],
)  # fmt: skip
def test_yes_no_on_off_and_quoted_booleans_are_refused(
    tmp_path: Path, reader: Reader, value: str, shown: str
) -> None:
    message = _refused(tmp_path, reader.boolean, value)
    assert f"must be true or false, got the string '{shown}'" in message


@pytest.mark.parametrize("reader", [r for r in READERS if r.number], ids=lambda r: r.name)
@pytest.mark.parametrize("value", [".inf", ".nan", "1_000.5", "0x10"])
def test_numbers_are_plain_decimals(tmp_path: Path, reader: Reader, value: str) -> None:
    assert reader.number is not None
    assert _read(tmp_path, reader.number, "2") == 2.0  # an integer is a number
    assert _read(tmp_path, reader.number, "2.5") == 2.5
    message = _refused(tmp_path, reader.number, value)
    assert f"must be a plain decimal number, got '{value}'" in message


@BY_NAME
def test_duplicate_keys_are_refused_at_the_repeat(tmp_path: Path, reader: Reader) -> None:
    text, line, first, key = reader.duplicate
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        Doc(text, line, reader.integer.read).read(path)
    assert str(info.value) == f"{path}:{line}: duplicate key '{key}' (first at line {first})"


@BY_NAME
def test_unknown_keys_are_at_their_line_with_the_closest_key(
    tmp_path: Path, reader: Reader
) -> None:
    text, line, tail = reader.typo
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        reader.integer.read(path)
    assert info.value.where == f"{path}:{line}"
    assert "unknown key" in str(info.value) and tail in str(info.value)
