"""Command persistence adapters."""
