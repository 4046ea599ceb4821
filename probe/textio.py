"""The one way probe reads a UTF-8 file and the one way it replaces a file.

Reading: errors become :class:`~probe.errors.InputError` naming the path (and the line of the
first byte that is not UTF-8), so every reader reports them alike.

Writing: a reader — the emulator on SIGHUP, ``probe report`` while a run finishes, a test reading
``truth.json`` — sees the old file or the new one, never a truncated one (``write_text`` truncates
first; an emulator that re-read a torn pair table once took the whole lab down). On failure (a
full disk, a read-only directory) the temporary file is removed and the ``OSError`` propagates
for the caller to name the path it was writing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from probe.errors import InputError


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


def write_atomic(path: Path, text: str, *, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` in one step; ``durable`` also fsyncs before the rename
    (files a resume depends on, e.g. ``run.json``)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
