"""CSV exports: the subscription-periods format."""
