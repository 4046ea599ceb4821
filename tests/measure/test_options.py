"""The option dataclasses check their values when built: one place for every rule, so a library
caller gets the same refusal as the CLI, before anything connects."""

from __future__ import annotations

import math
from typing import Any

import pytest

from probe.errors import InputError, OptionError
from probe.measure.bandwidth import BandwidthOptions
from probe.measure.context import RunOptions
from probe.measure.sshoptions import SshOptions
from probe.model import Host, PortRange, SshTarget

BAD: list[tuple[type[Any], str, Any]] = [
    (RunOptions, "count", 0),
    (RunOptions, "count", -3),
    (RunOptions, "interval_s", 0.0),
    (RunOptions, "interval_s", 0.001),
    (RunOptions, "interval_s", -1.0),
    (RunOptions, "interval_s", math.nan),
    (RunOptions, "interval_s", math.inf),
    (RunOptions, "reply_timeout_s", 0),
    (RunOptions, "pinger", "hping"),
    (RunOptions, "ping_pairs", "cross-region"),
    (RunOptions, "ping_pairs", "sample:0"),
    (RunOptions, "pairs", "most"),
    (RunOptions, "pairs", "sample:0"),
    (RunOptions, "pairs", "sample:"),
    (RunOptions, "exclusive_by", "rack"),
    (RunOptions, "compare_streams", 1),
    (RunOptions, "compare_streams", -2),
    (RunOptions, "compare_streams", 129),
    (BandwidthOptions, "duration_s", 0),
    (BandwidthOptions, "omit_s", -1),
    (BandwidthOptions, "streams", 0),
    (BandwidthOptions, "streams", 129),
    (BandwidthOptions, "iperf3_ports", PortRange(0, 5201)),
    (BandwidthOptions, "iperf3_ports", PortRange(65535, 65536)),
    (BandwidthOptions, "iperf3_ports", PortRange(5299, 5201)),  # LO > HI
    (BandwidthOptions, "connect_timeout_ms", 0),
    (SshOptions, "connect_timeout_s", 0.0),
    (SshOptions, "connect_timeout_s", math.nan),
    (SshOptions, "command_timeout_s", -1.0),
    (SshOptions, "keepalive_interval_s", -1.0),
    (SshOptions, "reconnect_window_s", math.inf),
    (SshOptions, "connect_retries", -1),
    (SshOptions, "retry_backoff_s", -0.5),
    (SshOptions, "max_handshakes_per_server", 0),
    (SshOptions, "max_handshakes_per_hop", 0),
    (SshOptions, "max_channels_per_connection", 0),
]


@pytest.mark.parametrize(("owner", "field", "value"), BAD)
def test_a_value_out_of_range_is_refused_naming_its_field(
    owner: type[Any], field: str, value: Any
) -> None:
    with pytest.raises(OptionError) as caught:
        owner(**{field: value})
    assert (caught.value.owner, caught.value.field) == (owner, field)
    assert str(caught.value).startswith(f"{owner.__name__}.{field} must be ")
    assert str(caught.value).endswith(f", not {value!r}")
    assert isinstance(caught.value, InputError) and caught.value.exit_code == 2


GOOD: list[tuple[type[Any], dict[str, Any]]] = [
    (RunOptions, {}),
    (RunOptions, {"count": 1, "interval_s": 0.002, "reply_timeout_s": 1}),
    (RunOptions, {"pairs": "sample:3", "exclusive_by": "zone", "compare_streams": 2}),
    (RunOptions, {"pairs": "cross-region", "exclusive_by": "region", "compare_streams": 128}),
    (RunOptions, {"pinger": "fping", "interval_s": 0.01, "ping_pairs": "sample:2"}),
    (RunOptions, {"pinger": "auto", "interval_s": 0.0025, "ping_pairs": "intra-zone"}),
    (RunOptions, {"pinger": "ping", "interval_s": 0.0025, "ping_pairs": "intra-region"}),
    (BandwidthOptions, {}),
    (BandwidthOptions, {"duration_s": 1, "omit_s": 0, "streams": 128}),
    (BandwidthOptions, {"iperf3_ports": PortRange(65535, 65535), "connect_timeout_ms": 1}),
    (BandwidthOptions, {"iperf3_ports": PortRange(1, 65535)}),
    (SshOptions, {}),
    (SshOptions, {"keepalive_interval_s": 0.0, "reconnect_window_s": 0.0, "connect_retries": 0}),
    (SshOptions, {"connect_timeout_s": 0.3, "retry_backoff_s": 0.0}),
]


def test_fping_is_refused_for_a_train_it_cannot_send_where_auto_would_use_ping() -> None:
    """fping's period is whole milliseconds ≥ 10 ms: ``--pinger auto`` pings such a train with
    ping, ``--pinger fping`` cannot, and says why under ``pinger``."""
    with pytest.raises(OptionError) as caught:
        RunOptions(pinger="fping", interval_s=0.0025)
    assert (caught.value.owner, caught.value.field) == (RunOptions, "pinger")
    assert str(caught.value) == (
        "RunOptions.pinger must be auto or ping for this train (fping interval must be whole "
        "milliseconds ≥ 10 ms, not 0.0025 s), not 'fping'"
    )
    assert RunOptions(interval_s=0.0025).pinger == "auto"  # auto leaves that train to ping


@pytest.mark.parametrize(("owner", "values"), GOOD)
def test_the_defaults_and_the_edges_of_each_range_are_accepted(
    owner: type[Any], values: dict[str, Any]
) -> None:
    owner(**values)


def _host(name: str, user: str | None) -> Host:
    return Host(name, "10.0.0.1", ssh=SshTarget("10.0.0.1", user=user))


def test_an_interval_old_iputils_refuses_to_users_is_a_warning_not_an_error() -> None:
    """iputils before 20210202 refuses < 0.2 s unless root, newer ones < 2 ms: which one a host
    has is not known before connecting, so the run says so and tries."""
    hosts = [_host("a", "probe"), _host("b", None), _host("c", "root")]
    (warning,) = RunOptions(interval_s=0.05).warnings(hosts, local_user="ops")
    assert warning.startswith("ping interval 0.05 s: a, b log in as a user other than root, ")
    assert "20210202" in warning
    many = [_host(f"h{i}", "probe") for i in range(5)]
    (warning,) = RunOptions(interval_s=0.05).warnings(many, local_user="root")
    assert "h0, h1, h2 and 2 more log in" in warning


def test_no_warning_at_0_2_s_or_when_every_host_logs_in_as_root() -> None:
    hosts = [_host("a", "probe"), _host("b", None)]
    assert RunOptions(interval_s=0.2).warnings(hosts, local_user="ops") == ()
    assert RunOptions().warnings(hosts, local_user="ops") == ()
    assert RunOptions(interval_s=0.01).warnings(hosts[1:], local_user="root") == ()


def _fleet(n: int, regions: int = 1) -> list[Host]:
    return [
        Host(f"h{i}", f"10.0.{i // 250}.{i % 250 + 1}", region=f"r{i % regions}",
             ssh=SshTarget(f"10.0.{i // 250}.{i % 250 + 1}", user="root"))
        for i in range(n)
    ]  # fmt: skip


def test_a_train_fping_must_stretch_is_a_warning_naming_the_spacing() -> None:
    """fping's 1 ms floor between packets: 300 targets every 200 ms cannot all be probed in
    time, so each target's probes go 299 ms apart and the 20-probe train takes ~6 s."""
    (warning,) = RunOptions().warnings(_fleet(300), local_user="root")
    assert warning.startswith("fping sends at most one probe per 1 ms: h0 pings 299 targets, ")
    assert "~299 ms apart, not 200 ms" in warning and "takes ~5.98 s" in warning
    assert "--interval 0.299" in warning


def test_no_stretch_warning_when_the_period_holds_every_target() -> None:
    assert RunOptions().warnings(_fleet(201), local_user="root") == ()  # 200 targets: 200 ms
    assert RunOptions(interval_s=0.5).warnings(_fleet(300), local_user="root") == ()
    assert RunOptions(pinger="ping").warnings(_fleet(300), local_user="root") == ()
    # a sampled plan: 30 hosts per region fully meshed, 2 representatives across
    sampled = RunOptions(ping_pairs="sample:2").warnings(_fleet(300, regions=10), "root")
    assert sampled == ()
    (warning,) = RunOptions(ping_pairs="intra-region").warnings(_fleet(900, regions=3), "root")
    assert "h0 pings 299 targets" in warning
