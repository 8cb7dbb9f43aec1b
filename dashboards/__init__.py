"""xstilts.dashboards."""
