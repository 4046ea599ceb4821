"""How the SSH pool connects and runs commands: a plain value, importable without asyncssh.

The CLI reads its option defaults from these fields (``probe --help`` must not import asyncssh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from probe.errors import require


@dataclass(frozen=True, slots=True)
class SshOptions:
    """How the pool connects and runs commands. Times in seconds; checked when built."""

    connect_timeout_s: float = 10.0  # TCP + SSH handshake + auth, per attempt
    command_timeout_s: float = 60.0
    keepalive_interval_s: float = 5.0  # 3 unanswered (asyncssh's default count) = lost
    reconnect_window_s: float = 20.0  # a lost connection: how long to keep trying to get it back
    connect_retries: int = 2  # extra attempts after a transient connect failure
    retry_backoff_s: float = 0.5  # first back-off; doubles per attempt, ×U(0.5, 1.5) jitter
    max_handshakes_per_server: int = 8  # below sshd MaxStartups 10
    max_handshakes_per_hop: int = 64  # through one bastion connection (or from the controller)
    max_channels_per_connection: int = 8  # + 1 control channel, below sshd MaxSessions 10
    known_hosts: str | None = None  # None: the inventory's, else ~/.ssh/known_hosts
    accept_new: bool = False  # record unknown host keys in the store (never a changed key)
    accept_new_store: str | None = None  # probe-owned known_hosts; trusted whenever given

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "command_timeout_s"):
            value = getattr(self, name)
            require(self, name, math.isfinite(value) and value > 0, "> 0 s")
        for name in ("keepalive_interval_s", "reconnect_window_s", "retry_backoff_s"):
            value = getattr(self, name)
            require(self, name, math.isfinite(value) and value >= 0, "≥ 0 s")  # 0: off
        require(self, "connect_retries", self.connect_retries >= 0, "≥ 0")
        for name in (
            "max_handshakes_per_server",
            "max_handshakes_per_hop",
            "max_channels_per_connection",
        ):
            require(self, name, getattr(self, name) >= 1, "≥ 1")
