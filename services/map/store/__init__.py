"""Map persistence adapters."""
