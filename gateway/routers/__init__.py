"""One router per component."""
