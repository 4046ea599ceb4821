"""A small, strict parser of the Prometheus text exposition format 0.0.4 (for the tests).

Stricter than Prometheus itself where that catches our bugs: every family needs HELP and TYPE
before its samples, a family's lines are contiguous, a series appears once, only the three
escapes of the format are allowed in label values, and timestamps are refused (node_exporter's
textfile collector rejects them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = {"summary": ("", "_sum", "_count"), "histogram": ("_bucket", "_sum", "_count")}


class ExpositionError(ValueError):
    pass


@dataclass
class Family:
    name: str
    type: str = ""
    help: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def _value(text: str, n: int) -> float:
    if text in ("NaN", "+Inf", "-Inf"):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[text]
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise ExpositionError(f"line {n}: bad value {text!r}")
    return float(text)


def _labels(text: str, n: int) -> tuple[dict[str, str], str]:
    """Parse ``{a="x",b="y"}`` at the start of ``text``; return the labels and the rest."""
    labels: dict[str, str] = {}
    i = 1
    while True:
        if text[i] == "}":
            return labels, text[i + 1 :]
        m = LABEL.match(text, i)
        if not m or text[m.end() : m.end() + 2] != '="':
            raise ExpositionError(f"line {n}: bad label at {text[i:]!r}")
        name, i, value = m.group(), m.end() + 2, []
        while text[i] != '"':
            if text[i] == "\\":
                esc = text[i + 1]
                if esc not in '\\"n':
                    raise ExpositionError(f"line {n}: bad escape \\{esc}")
                value.append("\n" if esc == "n" else esc)
                i += 2
            elif text[i] == "\n":
                raise ExpositionError(f"line {n}: raw newline in a label value")
            else:
                value.append(text[i])
                i += 1
        if name in labels:
            raise ExpositionError(f"line {n}: label {name} twice")
        labels[name] = "".join(value)
        i += 1
        if text[i] == ",":
            i += 1
        elif text[i] != "}":
            raise ExpositionError(f"line {n}: expected , or }} in labels")


def parse(text: str) -> dict[str, Family]:
    if not text.endswith("\n"):
        raise ExpositionError("the text must end with a line feed")
    families: dict[str, Family] = {}
    current: Family | None = None
    closed: set[str] = set()
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name) or name in closed:
                    raise ExpositionError(f"line {n}: bad or repeated family {name!r}")
                if current is not None and current.name != name:
                    closed.add(current.name)
                current = families.setdefault(name, Family(name))
                if parts[1] == "TYPE":
                    if current.type or parts[3:] == [] or parts[3] not in TYPES:
                        raise ExpositionError(f"line {n}: bad or second TYPE for {name}")
                    if current.samples:
                        raise ExpositionError(f"line {n}: TYPE after samples of {name}")
                    current.type = parts[3]
                else:
                    current.help = parts[3] if len(parts) > 3 else ""
            continue
        m = NAME.match(line)
        if not m:
            raise ExpositionError(f"line {n}: no metric name")
        name, rest = m.group(), line[m.end() :]
        labels, rest = _labels(rest, n) if rest.startswith("{") else ({}, rest)
        fields = rest.split(" ")
        if len(fields) != 2 or fields[0] != "":
            raise ExpositionError(f"line {n}: expected one value and no timestamp: {line!r}")
        value = _value(fields[1], n)
        if current is None or not current.type or not current.help:
            raise ExpositionError(f"line {n}: sample before HELP and TYPE")
        allowed = SUFFIXES.get(current.type, ("",))
        if name not in {current.name + s for s in allowed}:
            raise ExpositionError(f"line {n}: {name} outside its family ({current.name})")
        if current.type == "summary" and name == current.name and "quantile" not in labels:
            raise ExpositionError(f"line {n}: summary sample without quantile")
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ExpositionError(f"line {n}: duplicate series {key}")
        series.add(key)
        current.samples.append((name, labels, value))
    return families
