"""``python -m probe``: the same CLI as the ``probe`` script."""

from probe.cli import entry

entry()
