"""The ``probe`` command line: the one error boundary of the program.

Each sub-module registers one command (or group) on ``main``; they parse options, call one use
case and render. Expected errors (``ProbeError``) become one line on stderr and the exit code of
their class; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from probe import __version__
from probe.errors import ProbeError

#: Exit codes, documented in the README. Commands return them; the boundary maps errors.
EXIT_OK = 0
EXIT_FAIL = 1  # gate failed, diff regressed, check found a broken host
EXIT_USAGE = 2  # bad input, bad option, a file that cannot be written, lab needs root
EXIT_INCONCLUSIVE = 3  # gate could not decide
EXIT_PARTIAL = 4  # run finished with failed cells, or stopped by a write after saving samples
EXIT_INTERRUPTED = 130  # SIGINT: partial results are on disk


def say(message: str) -> None:
    """Progress for the person at the terminal: stderr, so stdout stays the command's output."""
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
def main() -> None:
    """Measure a GPU fleet's network (RTT, jitter, loss, bandwidth) before trusting it with
    distributed LLM inference."""


def run(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and turn expected errors into one line and an exit code."""
    _register()
    try:
        rc = main.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except ProbeError as exc:
        click.echo(f"probe: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("probe: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("probe: interrupted", err=True)
        return EXIT_INTERRUPTED
    return rc if isinstance(rc, int) else EXIT_OK


def _register() -> None:
    """Import the command modules; each adds itself to ``main``. Heavy imports stay inside them."""
    import importlib

    for name in ("lab", "measure", "analyse", "report", "imports", "rehearse"):
        try:
            importlib.import_module(f"probe.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"probe.cli.{name}":
                raise


def entry() -> None:
    sys.exit(run())
