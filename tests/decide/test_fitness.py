"""Pipeline fitness without a policy, on small synthetic fleets."""

from __future__ import annotations

from dataclasses import replace

from probe.decide.fitness import Fitness, Flag, HostFitness, assess, pipeline_fitness
from probe.matrix.anchors import Anchors, Bandwidth, PairAnchor
from probe.model import CellStatus
from probe.report import headline
from tests.decide.fleet import INTRA_RTT_MS, make_anchors, pair

SIZES = {"eu": 3, "us": 3}


def _by_host(anchors: Anchors) -> dict[str, HostFitness]:
    return {h.host: h for h in assess(anchors)}


def _residential(host: str, extra_ms: float) -> dict[tuple[str, str], PairAnchor]:
    """Every cell from or to ``host`` slower by ``extra_ms``: its own last mile."""
    base = make_anchors(SIZES)
    out = {}
    for p in base.pairs:
        if host in (p.src, p.dst) and p.rtt is not None:
            rtt = p.rtt.p50_ms + extra_ms
            out[p.src, p.dst] = pair(base.host(p.src), base.host(p.dst), rtt)
    return out


def test_a_clean_fleet_is_fit() -> None:
    hosts = assess(make_anchors(SIZES))
    assert {h.fitness for h in hosts} == {Fitness.FIT}
    eu0 = hosts[0]
    assert eu0.rtt_region_p50_ms == INTRA_RTT_MS and eu0.rtt_other_p50_ms == 80.0
    assert eu0.out_in_ratio == 1.0 and eu0.reason == ""


def test_a_residential_host_is_flagged_unfit_and_left_out_of_every_order() -> None:
    a = make_anchors(SIZES, overrides=_residential("eu-1", 12.0))
    h = _by_host(a)
    assert h["eu-1"].flags == (Flag.RESIDENTIAL,) and h["eu-1"].fitness is Fitness.UNFIT
    assert h["eu-1"].excess_ms == 12.0 and "+12 ms" in h["eu-1"].reason
    assert h["eu-0"].fitness is Fitness.FIT  # its siblings' figures to eu-1 are alike: no excess
    best = pipeline_fitness(a).best
    assert [c.stages for c in best] == [2, 4, 8]
    assert all("eu-1" not in c.path for c in best)
    assert len(best[1].path) == 4 and best[1].decode is not None


def test_a_cross_zone_region_is_not_residential() -> None:
    """A few ms more to some peers (another zone) is no last mile."""
    a = make_anchors(SIZES, overrides=_residential("eu-1", 2.0))
    assert _by_host(a)["eu-1"].fitness is Fitness.FIT


def test_an_asymmetric_host_is_flagged_caution() -> None:
    base = make_anchors(SIZES)
    slow_in = {
        (p.src, p.dst): replace(p, bw=Bandwidth(200.0, p.bw.reverse_mbps))  # ingress shaped
        for p in base.pairs
        if p.dst == "us-2"
    }
    h = _by_host(make_anchors(SIZES, overrides=slow_in))["us-2"]
    assert h.flags == (Flag.ASYMMETRIC,) and h.fitness is Fitness.CAUTION
    assert h.bw_in_mbps == 200.0 and h.bw_out_mbps == 10_000.0 and h.out_in_ratio == 50.0
    assert "asymmetric: sends 50× the goodput it receives" in h.reason


def test_a_lossy_host_is_unfit_but_one_lossy_path_is_not() -> None:
    base = make_anchors(SIZES)

    def lossy(src: str, dst: str, received: int) -> PairAnchor:
        p = base.pair(src, dst)
        assert p is not None
        return replace(p, received=received, loss_pct=100.0 * (20 - received) / 20)

    every = {
        (h, d.name): lossy(h, d.name, 18) for h in ("us-0",) for d in base.hosts if d.name != h
    }
    assert _by_host(make_anchors(SIZES, overrides=every))["us-0"].fitness is Fitness.UNFIT
    one = {("us-1", "eu-0"): lossy("us-1", "eu-0", 18)}  # 2 of 100 probes: not surely > 1 %
    assert _by_host(make_anchors(SIZES, overrides=one))["us-1"].fitness is Fitness.FIT


def test_a_host_refusing_inbound_is_flagged() -> None:
    base = make_anchors(SIZES)
    toward = {
        (p.src, p.dst): replace(p, from_reverse=True) if p.src != "eu-2" else p
        for p in base.pairs
        if p.dst == "eu-0"
    }
    toward["eu-2", "eu-0"] = pair(
        base.host("eu-2"), base.host("eu-0"), 0.0, status=CellStatus.NOT_MEASURABLE
    )
    h = _by_host(make_anchors(SIZES, overrides=toward))["eu-0"]
    assert h.flags == (Flag.INBOUND,) and h.fitness is Fitness.CAUTION
    assert "5 of 5 cells toward it" in h.reason


def test_best_orders_for_more_stages_than_fit_hosts_say_so() -> None:
    best = {c.stages: c for c in pipeline_fitness(make_anchors({"eu": 2, "us": 1})).best}
    assert best[2].path and best[2].decode is not None and best[2].note == ""
    assert best[8].path == () and best[8].note == "not enough fit hosts (3 of 8)"
    assert best[4].note == "not enough fit hosts (3 of 4)"


def test_best_orders_without_goodput_are_lower_bounds() -> None:
    c = pipeline_fitness(make_anchors(SIZES, bw_mbps=None)).best[0]
    assert c.lower_bound and "lower bounds" in c.note


def test_the_headline_leaves_unfit_hosts_out_or_names_them() -> None:
    a = make_anchors({"eu": 3, "us": 2}, overrides=_residential("eu-1", 12.0))
    hosts = assess(a)
    text = headline(a, 5, hosts).text
    assert "in 4 pipeline stages" in text and "eu-1 →" not in text and "→ eu-1" not in text
    assert "Left out as unfit for a stage: eu-1 (residential-like)." in text
    small = make_anchors({"eu": 3, "us": 1}, overrides=_residential("eu-1", 12.0))
    forced = headline(small, 4, assess(small)).text  # 4 stages need every host
    assert "eu-1" in forced.split("auto-placed on ")[1].split(":")[0]
    assert "Placed for want of fit hosts, though unfit: eu-1 (residential-like: +12 ms" in forced
