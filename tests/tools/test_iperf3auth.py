"""Which iperf3 can authenticate, the padding a pair needs, and the run's credential."""

from __future__ import annotations

import hashlib

import pytest

from probe.tools.iperf3auth import RunCredential, cannot_authenticate, needs_pkcs1

FEATURES_312 = (
    "CPU affinity setting, IPv6 flow label, SCTP, TCP congestion algorithm setting, sendfile / "
    "zerocopy, socket pacing, authentication, bind to device, support IPv4 don't fragment"
)  # iperf 3.12 (Debian 12): what `iperf3 --version` lists


@pytest.mark.parametrize(
    ("version", "features", "why"),
    [
        ("iperf 3.12 (cJSON 1.7.15)", FEATURES_312, None),
        ("iperf 3.17.1 (cJSON 1.7.15)", "authentication, bind to device", None),
        ("iperf 3.6 (cJSON 1.5.2)", FEATURES_312, "iperf3 3.6 has no authentication (3.7+)"),
        ("iperf 3.9 (cJSON 1.7.13)", "CPU affinity setting, bind to device",
         "iperf3 3.9 was built without authentication (OpenSSL)"),
        ("iperf 3.9", None, "iperf3 3.9 was built without authentication (OpenSSL)"),
        ("present", None, "iperf3 version unknown"),
        (None, None, "iperf3 version unknown"),
    ],
)  # fmt: skip
def test_who_can_authenticate(version: str | None, features: str | None, why: str | None) -> None:
    assert cannot_authenticate(version, features) == why


def test_padding_across_the_3_17_change() -> None:
    old, new = "iperf 3.12 (cJSON 1.7.15)", "iperf 3.17.1"
    assert needs_pkcs1(new, old) and not needs_pkcs1(old, new)
    assert not needs_pkcs1(new, new) and not needs_pkcs1(old, old)


def test_the_users_file_is_iperf3s_format() -> None:
    # iperf3(1), EXAMPLES: mario / rossi
    mario = RunCredential("mario", "rossi", "", "")
    assert mario.users_file() == (
        "mario,bf7a49a846d44b454a5d11e7acfaf13d138bbe0b7483aa3e050879700572709b\n"
    )


def test_each_run_gets_its_own_credential_and_repr_hides_it() -> None:
    a, b = RunCredential.generate(), RunCredential.generate()
    assert a.username != b.username and a.password != b.password
    assert a.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert a.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    shown = repr(a)
    assert a.password not in shown and "PRIVATE" not in shown and a.username in shown
    digest = hashlib.sha256(f"{{{a.username}}}{a.password}".encode()).hexdigest()
    assert a.users_file() == f"{a.username},{digest}\n"
