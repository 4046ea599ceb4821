"""probe: measure a GPU fleet's network before trusting it with distributed inference."""

__version__ = "0.1.0"
