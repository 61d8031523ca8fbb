"""Single readings that arrive together from one caller go to the twin as one call.

A device gateway posting one reading per request cost the gateway and the twin one
IngestTelemetry call each: gRPC call objects and interceptors on both ends, a log line,
a lock, a commit. Now single readings for the same caller and tenant that arrive while
a call for them is in flight wait and go together, as parallel columns, in the next
call. The twin checks, stores and evaluates them as it does any batch (one commit
before any of them is answered), and its answer names each refused and each stale
reading by index, so each request is answered with its own reading's fate, as if it
had come alone. A request of several readings still goes alone: it is a batch already.

Readings of one call are ordered by their times, not by their arrival: two readings of
one series in one batch are both stored and the newer is the latest value, as if the
older had arrived first. Only readings that arrived together (neither waited for the
other's answer) share a call, so either order is one they could have had.

When a call fails with a client error (INVALID_ARGUMENT), which the twin raises before
it stores anything, each reading is sent again alone so the error is only its own; any
other failure is every reading's answer, as it would have been for each alone.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import grpc

from gateway.coalescing import Coalescer
from gateway.errors import ApiError
from gateway.schemas.twin import TelemetryIn
from grassroots.twin.v1 import twin_service_pb2 as pb
from services.kit.errors import FieldViolation

Metadata = tuple[tuple[str, str | bytes], ...]
# Optional columns: requests go together only when they give the same ones.
_OPTIONAL = ("observe_times_ms", "units", "longitudes", "latitudes")
# Concatenated in one call (values is optional too: point properties send none).
_COLUMNS = ("entities", "properties", "values", *_OPTIONAL)
_RESEND_ALONE = {grpc.StatusCode.INVALID_ARGUMENT}


@dataclass
class _Reading:
    parent: str
    columns: pb.TelemetryColumns  # one reading
    metadata: Metadata  # this request's own: its principal and request id
    future: asyncio.Future[pb.IngestTelemetryResponse]


def message_of(parent: str, body: TelemetryIn) -> pb.IngestTelemetryRequest:
    """The call for a REST body of readings."""
    return pb.IngestTelemetryRequest(
        parent=parent,
        columns=pb.TelemetryColumns(
            entities=body.entities,
            properties=body.properties,
            values=body.values,
            observe_times_ms=body.observe_times_ms,
            units=body.units,
            longitudes=body.longitudes,
            latitudes=body.latitudes,
        ),
    )


def is_single(columns: pb.TelemetryColumns) -> bool:
    """One reading, every column given either once or not at all (else: send alone,
    and let the twin say what is wrong with it)."""
    return (
        len(columns.entities) == 1
        and len(columns.properties) == 1
        and all(len(getattr(columns, name)) <= 1 for name in ("values", *_OPTIONAL))
    )


class TelemetryIngests(Coalescer[_Reading]):
    """Sends readings to the twin, batching single readings that arrive together.

    `stub` is the gateway's grpc.aio TwinServiceStub. Batches hold at most the number
    of rejections a response lists (1000), so every refusal finds its request.
    """

    def __init__(self, max_batch: int = 500, in_flight: int = 4) -> None:
        super().__init__(max_batch, in_flight)

    async def ingest(
        self, stub: Any, request: pb.IngestTelemetryRequest, metadata: Metadata, caller: object
    ) -> pb.IngestTelemetryResponse:
        """The twin's answer for this request's readings alone.

        `caller` tells callers apart (the signed principal's bytes): only one caller's
        readings share a call, since a call carries one principal.
        """
        if not is_single(request.columns):
            return await stub.IngestTelemetry(request, metadata=metadata)  # type: ignore[no-any-return]
        columns = request.columns
        shape = tuple(bool(len(getattr(columns, name))) for name in ("values", *_OPTIONAL))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[pb.IngestTelemetryResponse] = loop.create_future()
        self._enqueue(
            stub,
            (caller, request.parent, shape),
            _Reading(request.parent, columns, metadata, future),
        )
        return await future

    async def _send(self, stub: Any, taken: list[_Reading]) -> None:
        parent = taken[0].parent
        if len(taken) == 1:
            await _alone(stub, parent, taken[0])
            return
        joined = pb.TelemetryColumns()
        for name in _COLUMNS:
            getattr(joined, name).extend(
                [getattr(r.columns, name)[0] for r in taken if getattr(r.columns, name)]
            )
        try:
            response = await stub.IngestTelemetry(
                pb.IngestTelemetryRequest(parent=parent, columns=joined),
                metadata=taken[0].metadata,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RESEND_ALONE:
                await asyncio.gather(*(_alone(stub, parent, item) for item in taken))
                return
            _fail(taken, exc)
            return
        except BaseException as exc:
            _fail(taken, exc)
            raise
        for item, answer in zip(taken, split(response, len(taken)), strict=True):
            if not item.future.done():
                item.future.set_result(answer)


def split(response: pb.IngestTelemetryResponse, n: int) -> list[pb.IngestTelemetryResponse]:
    """The answer for each of `n` single readings sent together as readings 0..n-1.

    A twin too old to name its stale readings (no `stale_indexes` though some were
    stale) leaves each answer without a stale count."""
    refused: dict[int, pb.RejectedReading] = {r.index: r for r in response.rejections}
    stale = (
        set(response.stale_indexes)
        if len(response.stale_indexes) == response.stale_count
        else set()
    )
    answers = []
    for i in range(n):
        rejection = refused.get(i)
        if rejection is not None:
            answers.append(
                pb.IngestTelemetryResponse(
                    rejected_count=1,
                    rejections=[
                        pb.RejectedReading(
                            index=0,
                            field=rejection.field,
                            reason=rejection.reason,
                            description=rejection.description,
                        )
                    ],
                )
            )
        elif i in stale:
            answers.append(
                pb.IngestTelemetryResponse(accepted_count=1, stale_count=1, stale_indexes=[0])
            )
        else:
            answers.append(ACCEPTED)
    return answers


ACCEPTED = pb.IngestTelemetryResponse(accepted_count=1)
_ACCEPTED_JSON = json.dumps(
    {"accepted_count": 1, "rejected_count": 0, "stale_count": 0, "rejections": []}
).encode()


def answer(outcome: pb.IngestTelemetryResponse) -> bytes:
    """The REST answer's JSON: 200's body, or 422 (ApiError) when no reading was accepted."""
    if outcome is ACCEPTED:
        return _ACCEPTED_JSON  # the answer to nearly every single reading, made once
    if outcome.accepted_count == 0 and outcome.rejected_count:
        raise ApiError(
            422,
            f"no reading accepted: {outcome.rejections[0].description}",
            reason="READINGS_REJECTED",
            violations=[
                FieldViolation(
                    f"{r.field.removeprefix('columns.')}[{r.index}]", f"{r.reason}: {r.description}"
                )
                for r in outcome.rejections
            ],
        )
    return json.dumps(
        {
            "accepted_count": outcome.accepted_count,
            "rejected_count": outcome.rejected_count,
            "stale_count": outcome.stale_count,
            "rejections": [
                {
                    "index": r.index,
                    "field": r.field,
                    "reason": r.reason,
                    "description": r.description,
                }
                for r in outcome.rejections
            ],
        }
    ).encode()


async def _alone(stub: Any, parent: str, item: _Reading) -> None:
    try:
        response = await stub.IngestTelemetry(
            pb.IngestTelemetryRequest(parent=parent, columns=item.columns), metadata=item.metadata
        )
    except BaseException as exc:
        _fail([item], exc)
        if not isinstance(exc, Exception):
            raise
        return
    if not item.future.done():
        item.future.set_result(response)


def _fail(taken: list[_Reading], exc: BaseException) -> None:
    for item in taken:
        if not item.future.done():
            item.future.set_exception(exc)
