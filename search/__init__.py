"""xstilts.search."""
