"""``probe run``'s ping options are checked before anything connects: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.cli import run

INVENTORY = """version: 1
hosts:
  - {name: a, address: 192.0.2.1, ssh: {port: 1}}
  - {name: b, address: 192.0.2.2, ssh: {port: 1}}
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pinger", "fping", "--interval", "0.0025"],
         "--pinger fping: fping interval must be whole milliseconds ≥ 10 ms, not 0.0025 s"),
        (["--ping-pairs", "cross-region"],
         "ping pairs 'cross-region': expected all, intra-region, intra-zone or sample:K"),
        (["--ping-pairs", "sample:0"], "ping pairs 'sample:0'"),
    ],
)  # fmt: skip
def test_a_ping_option_probe_cannot_run_is_refused_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(INVENTORY)
    assert run(["run", str(inventory), "-o", str(tmp_path / "reports"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "reports").exists()  # no run directory: nothing started
