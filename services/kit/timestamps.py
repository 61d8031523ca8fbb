"""`google.protobuf.Timestamp` from datetimes, for every service's gRPC adapter."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    """The moment as a Timestamp; None (an unset field) for no moment."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
