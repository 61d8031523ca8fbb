"""Events domain logic: the event, its validation and its life; no gRPC, no SQL."""
