"""Quantities written by people in YAML: ``40ms``, ``1.5s``, ``20mbit``, ``0.1%``.

Units are explicit so that a bare number can never be misread: milliseconds vs seconds and
bit/s vs byte/s are the classic ways a capacity plan goes wrong.
"""

from __future__ import annotations

import re

from probe.errors import InputError

_NUM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_DURATION = re.compile(rf"^\s*{_NUM}\s*(us|µs|ms|s)\s*$")
_RATE = re.compile(rf"^\s*{_NUM}\s*(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps)\s*$", re.IGNORECASE)
_PERCENT = re.compile(rf"^\s*{_NUM}\s*%\s*$")
_SIZE = re.compile(rf"^\s*{_NUM}\s*(b|kb|mb|gb|kib|mib|gib)\s*$", re.IGNORECASE)

_DURATION_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
_RATE_BPS = {
    "bit": 1.0,
    "bps": 1.0,
    "kbit": 1e3,
    "kbps": 1e3,
    "mbit": 1e6,
    "mbps": 1e6,
    "gbit": 1e9,
    "gbps": 1e9,
    "tbit": 1e12,
}
_SIZE_BYTES = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def _match(pattern: re.Pattern[str], value: object, what: str, example: str) -> re.Match[str]:
    m = pattern.match(str(value)) if isinstance(value, str) else None
    if m is None:
        raise InputError(f"{what} {value!r} needs a unit, e.g. {example!r}")
    return m


def parse_duration_ms(value: object) -> float:
    """``'40ms'`` → 40.0; ``'1.5s'`` → 1500.0. Bare numbers are refused (ms or s?)."""
    m = _match(_DURATION, value, "duration", "40ms")
    return float(m.group(1)) * _DURATION_MS[m.group(2)]


def parse_rate_bps(value: object) -> float:
    """``'20mbit'`` → 20e6 bit/s. ``mbps`` means megabit/s here, as in tc and iperf3."""
    m = _match(_RATE, value, "rate", "20mbit")
    return float(m.group(1)) * _RATE_BPS[m.group(2).lower()]


def parse_percent(value: object) -> float:
    """``'0.1%'`` → 0.1 (percent, not a ratio)."""
    m = _match(_PERCENT, value, "percentage", "0.1%")
    pct = float(m.group(1))
    if pct > 100.0:
        raise InputError(f"percentage {value!r} is above 100%")
    return pct


def parse_size_bytes(value: object) -> float:
    """``'64MiB'`` → 67108864; decimal (MB) and binary (MiB) prefixes are distinct."""
    m = _match(_SIZE, value, "size", "64MiB")
    return float(m.group(1)) * _SIZE_BYTES[m.group(2).lower()]
