"""Authentication, rate limits and response hardening of the gateway."""
