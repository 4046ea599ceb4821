"""Decide: model shapes and formulas → scenarios (``calc``), network-local groups, the gate."""
