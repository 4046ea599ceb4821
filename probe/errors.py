"""The one exception tree of probe.

Expected failures are raised as one of these and turned into a one-line message plus an exit code
by the CLI (the only error boundary). Anything else is a bug and keeps its traceback.

    ProbeError                 base; ``exit_code`` is what the CLI returns
    ├── InputError        (2)  a file, option or value the user gave is wrong; names file:line
    │   ├── OptionError   (2)  an option value out of range; names the option
    │   └── ParseError    (2)  text we were asked to read is not what we expected
    ├── StoreError        (2)  a run directory is missing, damaged or from a newer schema, or a
    │   │                      file probe writes cannot be written (names the path)
    │   └── PartialRunError(4) a run could not write after saving samples: it stopped partial
    ├── LabError          (2)  the emulated lab cannot be brought up / down
    │   └── NeedsRootError(2)  the lab needs root
    ├── HostError         (1)  one host failed (connect, auth, host key, timeout): per-host *data*
    │                          during a run, raised only where a single host is the whole job
    └── Terminated      (143)  a run stopped by SIGTERM, finished like Ctrl-C (which stays
                               KeyboardInterrupt, 130)

Third-party exceptions are translated where the library is called (``raise … from exc``).
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base of every expected probe failure."""

    exit_code = 1


class InputError(ProbeError):
    """Bad user input. ``where`` is ``file:line`` (or a host name) when known."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class OptionError(InputError):
    """An option of a library dataclass (``RunOptions``, ``BandwidthOptions``, ``SshOptions``)
    is out of range. Raised when the value is built, so nothing connects with it; the CLI says
    the command-line option (``--count``) where the library says the field."""

    def __init__(self, owner: type[object], field: str, rule: str) -> None:
        self.owner, self.field, self.rule = owner, field, rule
        super().__init__(f"{owner.__name__}.{field} {rule}")


def require(options: object, field: str, ok: bool, rule: str) -> None:
    """Unless ``ok``: ``OptionError`` "FIELD must be RULE, not VALUE" for ``options.field``."""
    if not ok:
        raise OptionError(type(options), field, f"must be {rule}, not {getattr(options, field)!r}")


class ParseError(InputError):
    """Tool output or a data file did not have the expected shape."""


class StoreError(ProbeError):
    """A run directory cannot be read or written (or another file probe writes, such as an
    export or a report)."""

    exit_code = 2


class PartialRunError(StoreError):
    """A run's directory could not be written after results were saved: the run stopped like
    an interrupted one (``samples.jsonl`` is intact, ``--resume`` finishes it), exit 4."""

    exit_code = 4


class LabError(ProbeError):
    """The lab could not be brought up, inspected or torn down."""

    exit_code = 2


class NeedsRootError(LabError):
    """The lab manipulates network namespaces, so it needs root."""


class HostError(ProbeError):
    """One host could not be used. ``status`` is the matrix cell status it maps to."""

    def __init__(self, host: str, status: str, message: str) -> None:
        self.host = host
        self.status = status
        super().__init__(f"{host}: {message}")


class Terminated(ProbeError):
    """SIGTERM (a CI timeout, systemd, ``kill``) stopped a run; what was measured is on disk."""

    exit_code = 143
