"""xstilts.trainer."""
