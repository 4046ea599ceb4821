"""Matrix: records → per-pair cells (``build``), statistics (``stats``), anchors for the
calculator (``anchors``)."""
