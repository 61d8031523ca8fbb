"""Twin persistence adapters."""
