"""What counts as a regression between two runs (``probe diff``): its kinds and thresholds.

A change is a *regression* only when it crosses both a relative and an absolute threshold where
both apply: sub-millisecond LAN links wobble by 30 % between runs without meaning anything, and
a 2 ms drift on a 150 ms WAN path is noise too. Defaults (``Thresholds``) are for CI re-runs of
the same fleet with ping's default 20 probes (one lost probe = 5 percentage points of loss):

- RTT p50: up by more than 25 % *and* 0.5 ms;  RTT p99: up by more than 50 % *and* 2 ms
  (the p99 of 20 probes is nearly the max, so it is held loosely);
- loss: up by more than 5 percentage points (two lost probes of 20);
- bandwidth: down by more than 20 % (iperf3 run to run varies by ~5–10 %);
- broken: ping or bandwidth was ``ok`` and is not any more; vanished: the pair is gone.

Plain values without pandas: the CLI reads its option defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["rtt_p50", "rtt_p99", "loss", "bw", "broken", "vanished"]
KINDS: tuple[Kind, ...] = ("rtt_p50", "rtt_p99", "loss", "bw", "broken", "vanished")
DEFAULT_FAIL_ON: frozenset[Kind] = frozenset({"rtt_p50", "rtt_p99", "loss", "bw", "broken"})


@dataclass(frozen=True, slots=True)
class Thresholds:
    rtt_p50_pct: float = 25.0
    rtt_p50_ms: float = 0.5
    rtt_p99_pct: float = 50.0
    rtt_p99_ms: float = 2.0
    loss_pp: float = 5.0  # percentage points
    bw_pct: float = 20.0
