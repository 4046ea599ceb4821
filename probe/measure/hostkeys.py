"""Host-key policy: strict against known_hosts; ``accept_new`` records an *unknown* key in a
probe-owned store, loudly; a *changed* key is always refused."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import asyncssh

log = logging.getLogger(__name__)

DEFAULT_PORT = 22


def default_accept_new_store() -> str:
    """Where ``--accept-new`` records keys unless told otherwise (never ~/.ssh/known_hosts)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return str(Path(state) / "probe" / "known_hosts")


def known_hosts_name(host: str, port: int) -> str:
    """The known_hosts lookup name: ``host``, or ``[host]:port`` off the default port."""
    return host if port == DEFAULT_PORT else f"[{host}]:{port}"


class HostKeys:
    """known_hosts files plus the accept-new store, and the keys accepted during this run."""

    def __init__(self, files: Sequence[str], store: str | None, accept_new: bool) -> None:
        present = [f for f in files if Path(f).is_file()]
        self.known = (
            asyncssh.read_known_hosts(present) if present else asyncssh.import_known_hosts("")
        )
        self._store = store
        self._accept_new = accept_new
        self._accepted: dict[str, asyncssh.SSHKey] = {}

    def judge(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> tuple[bool, str]:
        """Called by asyncssh only for a key *not* already trusted: (accept, what to report)."""
        name = known_hosts_name(host, port)
        offered = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
        earlier = self._accepted.get(name)
        if earlier is not None and earlier == key:  # a second inventory entry, same sshd
            return True, f"accepted new host key {offered} for {name}"
        trusted, ca_keys, *_ = self.known.match(host, addr, None if port == DEFAULT_PORT else port)
        if trusted or ca_keys or earlier is not None:
            return False, (
                f"host key for {name} CHANGED: offered {offered}, known_hosts holds another; "
                "refused (also with --accept-new); remove the stale entry only if you expect this"
            )
        if not self._accept_new or self._store is None:
            return False, (
                f"unknown host key for {name}: {offered}; verify it, then add it to known_hosts "
                "or re-run with --accept-new"
            )
        try:
            self._record(name, key)
        except OSError as exc:
            return False, f"unknown host key for {name}: {offered}; cannot record it: {exc}"
        self._accepted[name] = key
        message = f"accepted new host key {offered} for {name} into {self._store}"
        log.warning("%s", message)
        return True, message

    def _record(self, name: str, key: asyncssh.SSHKey) -> None:
        assert self._store is not None
        path = Path(self._store)
        path.parent.mkdir(parents=True, exist_ok=True)
        alg, blob = key.export_public_key("openssh").decode("ascii").split()[:2]
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as f:
            f.write(f"{name} {alg} {blob}\n")


class KeyCheckingClient(asyncssh.SSHClient):
    """Remembers the host-key verdict so a rejection can name the key that was offered."""

    def __init__(self, keys: HostKeys) -> None:
        self._keys = keys
        self.verdict: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        accepted, self.verdict = self._keys.judge(host, addr, port, key)
        return accepted
