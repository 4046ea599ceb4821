"""The one way probe reads a UTF-8 file and the one way it replaces a file.

Reading: errors become :class:`~probe.errors.InputError` naming the path (and the line of the
first byte that is not UTF-8), so every reader reports them alike.

Writing: a reader — the emulator on SIGHUP, ``probe report`` while a run finishes, a test reading
``truth.json`` — sees the old file or the new one, never a truncated one (``write_text`` truncates
first; an emulator that re-read a torn pair table once took the whole lab down). On failure (a
full disk, a read-only directory) the temporary file is removed, so neither a ``.tmp`` nor an
empty file is left; :func:`save` turns the ``OSError`` into one ``StoreError`` line naming the
path (``write_atomic`` lets it propagate, for callers with errors of their own).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from probe.errors import InputError, StoreError


def read_text(path: str | Path) -> tuple[str, bytes]:
    """The text of a UTF-8 file and its bytes; unreadable files become ``InputError``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise InputError("file not found", where=str(path)) from exc
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", where=str(path)) from exc
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", where=f"{path}:{line}") from exc


def write_atomic(
    path: Path, data: str | bytes | Iterable[bytes | memoryview], *, durable: bool = False
) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8; an iterable of blocks is written as they
    come, never held whole) in one step; ``durable`` also fsyncs before the rename (files a
    resume depends on, e.g. ``run.json``). The file gets the permissions an
    ordinary write would (the umask's), not ``mkstemp``'s 0600: an export is read by other users
    (node_exporter's textfile collector)."""
    tmp, fd = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, str | bytes):
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            else:
                for block in data:
                    f.write(block)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def save(
    path: Path, data: str | bytes | Iterable[bytes | memoryview], *, durable: bool = False
) -> None:
    """:func:`write_atomic` for what probe writes for the user (a run directory, a report, an
    export): a failure is one ``StoreError`` line naming ``path``."""
    try:
        write_atomic(path, data, durable=durable)
    except OSError as exc:
        raise cannot_write(path, exc) from exc


def cannot_write(path: Path, exc: OSError, what: str = "write") -> StoreError:
    """``reports/R/run.json: cannot write (No space left on device)``."""
    return StoreError(f"{path}: cannot {what} ({exc.strerror or exc})")


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new hidden file beside ``path`` (same filesystem, so the rename is atomic)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
