"""JSON shapes of the REST API, one module per component."""
