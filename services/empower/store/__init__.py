"""Empower persistence adapters."""
