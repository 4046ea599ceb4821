"""The run directory: what ``measure`` writes and ``matrix`` reads back (``rundir``)."""
