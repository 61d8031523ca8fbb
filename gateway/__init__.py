"""The HTTP front door: REST/JSON over the five gRPC components."""
