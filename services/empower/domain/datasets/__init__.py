"""Data returned to the grassroots: registers published above, cleaned on ingest,
received by each village as its own masked slice (ADR 20)."""
