"""Chaos on the lab: probe runs while a seeded schedule of real faults fires, and every episode
ends in a state an operator can trust.

Faults (each as a real fleet produces it): a host's SSH sessions dropped (a reboot, a lost NAT
mapping), a link at 100 % loss, the WAN emulator frozen and thawed (a stalled network), a tool
that hangs, and the controller SIGKILLed (then resumed). After every episode:

- the exit code is a documented one (0, 4, 130, 143; a SIGKILLed run is resumed to 0 or 4);
- no traceback on stderr;
- every matrix cell is a measurement or a reason that names a host;
- samples.jsonl parses with probe's own reader;
- no probe-started process is left on any host, and nothing of the run on the controller.

The seed is printed with every failure; rerun one with ``PROBE_CHAOS_SEED=N``. Bounded to a few
episodes of short runs (~3 min on the default lab).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pandas as pd
import pytest

from probe.lab import control, netns
from probe.store.rundir import read_samples
from tests.cells import as_str
from tests.measure.test_faults_lab import (
    _killed_at_exit,
    _only_run,
    _start,
    _wait_for_file,
    assert_clean,
    probe,
)

pytestmark = pytest.mark.lab
SEED = int(os.environ.get("PROBE_CHAOS_SEED", str(int(time.time()) % 100_000)))
EPISODES = 4
RUN = ["--count", "5", "--interval", "0.05", "--connect-timeout", "4", "--pairs", "intra-region",
       "--duration", "1", "--omit", "0"]  # fmt: skip
DOCUMENTED = {0, 4, 130, 143}
Fault = Callable[[control.LabInfo, random.Random, ExitStack], str]


def _drop_sessions(lab: control.LabInfo, rng: random.Random, mend: ExitStack) -> str:
    host = rng.choice([h for h in lab.hosts if h != lab.jump])
    control.drop_sessions(lab, host)
    return f"dropped the SSH sessions of {host}"


def _lose_link(lab: control.LabInfo, rng: random.Random, mend: ExitStack) -> str:
    pairs = json.loads(lab.paths.pairs.read_text())["pairs"]
    key = rng.choice(sorted(k for k in pairs if lab.jump not in k.split(">")))
    src, dst = key.split(">")
    before = float(pairs[key].get("loss_pct", 0.0))
    control.set_link(lab, src, dst, {"loss_pct": 100.0}, both=False)
    mend.callback(control.set_link, lab, src, dst, {"loss_pct": before}, both=False)
    return f"100 % loss on {src}>{dst}"


def _freeze_emulator(lab: control.LabInfo, rng: random.Random, mend: ExitStack) -> str:
    pid = control.emulator_pid(lab)
    assert pid is not None, "the emulator is not running"
    seconds = rng.uniform(1.0, 4.0)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    return f"emulator frozen {seconds:.1f} s"


def _hang_tool(lab: control.LabInfo, rng: random.Random, mend: ExitStack) -> str:
    host = rng.choice([h for h in lab.hosts if h != lab.jump])
    tool = rng.choice(["ping", "iperf3"])
    control.break_tool(lab, host, tool, "hang")
    mend.callback(control.restore_tool, lab, host, tool)
    return f"{tool} hangs on {host}"


FAULTS: dict[str, Fault] = {
    "drop": _drop_sessions,
    "loss": _lose_link,
    "freeze": _freeze_emulator,
    "hang": _hang_tool,
}


@contextmanager
def _seed_on_failure(episode: int, what: list[str]) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        raise AssertionError(
            f"chaos seed {SEED} (PROBE_CHAOS_SEED={SEED}), episode {episode}, faults {what}: {exc}"
        ) from exc


def _check_run_dir(run: Path, hosts: list[str]) -> None:
    samples = read_samples(run)  # raises on damage; a kill may tear only the last line
    lines = (run / "samples.jsonl").read_text().splitlines()
    assert set(samples.torn_lines) <= {len(lines)}, samples.torn_lines
    frame = pd.read_csv(run / "matrix.csv")
    for row in frame.itertuples():
        cells = [("rtt", row.status, row.reason)]
        if as_str(row.src_region) == as_str(
            row.dst_region
        ):  # --pairs intra-region plans only these
            cells.append(("bandwidth", row.bw_status, row.bw_reason))
        else:
            assert row.bw_status in ("skipped", "not-planned"), row
        for what, status, reason in cells:
            if status in ("ok", "all-lost"):  # a measurement (all-lost is 100 % loss)
                continue
            assert isinstance(reason, str) and any(h in reason for h in hosts), (
                f"{row.src}→{row.dst} {what}: {status} without a reason naming a host: {reason!r}"
            )


def _nothing_left_on_controller(marker: Path) -> None:
    mine = [pid for pid in netns.processes_with_marker(str(marker)) if pid != os.getpid()]
    assert mine == [], f"processes of the run still on the controller: {mine}"


def test_probe_survives_a_seeded_schedule_of_faults(lab: control.LabInfo, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"chaos seed {SEED}")
    hosts = [*lab.hosts, lab.jump]
    for episode in range(EPISODES):
        out = tmp_path / f"episode{episode}"
        out.mkdir()
        kill = rng.random() < 0.3
        chosen = rng.sample(sorted(FAULTS), k=rng.choice([1, 2]))
        what: list[str] = []
        with _seed_on_failure(episode, what), ExitStack() as mend:
            mend.callback(control.heal, lab)
            with _killed_at_exit(_start(lab, out, *RUN)) as proc:
                _wait_for_file(out)
                time.sleep(rng.uniform(0.5, 5.0))
                for name in chosen:
                    what.append(FAULTS[name](lab, rng, mend))
                if kill:
                    time.sleep(rng.uniform(0.0, 2.0))
                    proc.kill()
                    what.append("controller SIGKILLed")
                try:
                    _, err = proc.communicate(timeout=180)
                except subprocess.TimeoutExpired as exc:
                    raise AssertionError("probe run did not end within 180 s") from exc
            run = _only_run(out)
            if kill:
                mend.close()  # faults mended, then the operator resumes
                resumed = probe("run", str(lab.inventory), "--resume", str(run), *RUN)
                code, err = resumed.returncode, resumed.stderr
            else:
                code = proc.returncode
            assert code in DOCUMENTED, f"exit {code}: {err[-2000:]}"
            assert "Traceback" not in err and "ExceptionGroup" not in err, err[-2000:]
            _check_run_dir(run, hosts)
        assert_clean(lab, within_s=20)
        _nothing_left_on_controller(out)
