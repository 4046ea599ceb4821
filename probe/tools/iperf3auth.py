"""iperf3 authentication: which iperf3 can do it, and the credential one run uses.

An iperf3 server on a public address is anyone's: a scanner that finds the one-off port first
takes the test's slot, or reads a result. With ``--rsa-private-key-path`` and
``--authorized-users-path`` the server refuses a client without the credential ("test
authorization failed") and goes on waiting for the right one. The client names
``--username`` and ``--rsa-public-key-path`` and reads its password from ``IPERF3_PASSWORD``
(the prompt is skipped), so the password never is an argument.

Facts that shape this module:

- authentication exists from 3.7 on, and only when iperf3 was built with OpenSSL: ``iperf3
  --version`` then lists ``authentication`` among its "Optional features available";
- the users file is ``username,sha256("{username}password") in hex`` per line (iperf3(1),
  EXAMPLES); the private key is unencrypted PEM, the public key PEM SubjectPublicKeyInfo;
- 3.17 changed the RSA padding (CVE-2024-26306): a 3.17+ end talking to an older one needs
  ``--use-pkcs1-padding``, a flag older versions do not know;
- the credential carries a timestamp: server and client clocks more than 10 s apart
  (``--time-skew-threshold``) fail it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from probe.tools.iperf3 import version_tuple

AUTH_SINCE = (3, 7)
OAEP_SINCE = (3, 17)  # padding no longer PKCS#1 v1.5 by default
RSA_BITS = 2048


def cannot_authenticate(version: str | None, features: str | None) -> str | None:
    """Why an iperf3 cannot authenticate, from its version line and its optional features (the
    "Optional features available" line of ``--version``); None when it can."""
    have = version_tuple(version)
    if have == (0,):
        return "iperf3 version unknown"
    shown = ".".join(map(str, have))
    if have < AUTH_SINCE:
        return f"iperf3 {shown} has no authentication (3.7+)"
    if features is None or "authentication" not in features.lower():
        return f"iperf3 {shown} was built without authentication (OpenSSL)"
    return None


def needs_pkcs1(own: str | None, peer: str | None) -> bool:
    """Whether this end (``own`` version) must use the old padding to talk to ``peer``."""
    return version_tuple(own) >= OAEP_SINCE > version_tuple(peer)


@dataclass(frozen=True, slots=True)
class RunCredential:
    """One run's iperf3 credential: a fresh RSA key pair, user name and password.

    Generated per run and removed from the hosts after it; the secrets never appear in a
    ``repr`` (hence in no log or record).
    """

    username: str
    password: str = field(repr=False)
    private_key_pem: str = field(repr=False)
    public_key_pem: str = field(repr=False)

    @classmethod
    def generate(cls) -> RunCredential:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(
            username=f"probe-{secrets.token_hex(4)}",
            password=secrets.token_urlsafe(24),
            private_key_pem=private.decode(),
            public_key_pem=public.decode(),
        )

    def users_file(self) -> str:
        """The server's ``--authorized-users-path`` content: this run's user only."""
        digest = hashlib.sha256(f"{{{self.username}}}{self.password}".encode()).hexdigest()
        return f"{self.username},{digest}\n"
