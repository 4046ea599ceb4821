"""What every benchmark shares: machine facts, peak RSS, fresh child processes, JSON reports.

Each measured variant runs in a fresh child process (``run_child``) so its peak RSS is its own,
not the high-water mark of everything measured before it. A child prints exactly one JSON object
as its last stdout line; the parent collects them and writes ``reports/bench/NAME.json``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
REPORT_DIR = ROOT / "reports" / "bench"
_VERSIONS = ("probe", "asyncssh", "cryptography", "pandas", "numpy", "pyarrow")


def machine_info() -> dict[str, Any]:
    """Enough to tell two reports' machines apart: CPUs, Python, library versions."""
    versions: dict[str, str | None] = {}
    for name in _VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "versions": versions,
    }


def peak_rss_mib() -> float:
    """This process's peak resident set size so far: ``VmHWM`` of its address space. Linux's
    ``ru_maxrss`` survives ``exec``, so a child spawned by a parent holding 1 GiB would report at
    least 1 GiB; ``ru_maxrss`` (KiB) only where there is no /proc."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return round(kib / 1024, 1)


def raise_nofile_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (hundreds of sockets); returns the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_child(module: str, args: Sequence[str], *, timeout_s: float = 900) -> dict[str, Any]:
    """``python -m module args…`` in a fresh process; its last stdout line, parsed as JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{module} {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def emit_child_result(result: dict[str, Any]) -> None:
    """The child's side of ``run_child``: one JSON line, last on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_report(name: str, result: dict[str, Any], out: Path | None = None) -> Path:
    """``reports/bench/NAME.json`` (or ``out``): the result plus machine facts and a timestamp."""
    path = out or REPORT_DIR / f"{name}.json"
    doc = {"bench": name, "timestamp_utc": utc_now(), "machine": machine_info(), **result}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def print_table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], floatfmt: str = ".3f"
) -> None:
    print(tabulate(rows, list(headers), floatfmt=floatfmt))


class Stopwatch:
    """``with Stopwatch() as sw: …`` then ``sw.s``: wall seconds (perf_counter)."""

    def __init__(self) -> None:
        self.s = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self._start
