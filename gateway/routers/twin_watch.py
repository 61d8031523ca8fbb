"""REST for watching the twin (server-sent events) and issuing device keys."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Header, Path, Query, Request, Security
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from gateway.auth import access, call_metadata, calls
from gateway.errors import ApiError, call, from_rpc_error
from gateway.paths import TenantId, parent
from grassroots.twin.v1 import twin_service_pb2 as pb
from services.kit.errors import FieldViolation
from services.kit.principal import Principal

SERVICE = "grassroots.twin.v1.TwinService"
router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["twin"])
Who = Annotated[Principal, Security(access("twin"))]
EntityId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the entity's id in the tenant")
]
SSE_KEEPALIVE_SECONDS = 15.0
_TOKEN = re.compile(r"^[0-9a-f]{8}\.[0-9]{1,18}\Z")
_KIND = {
    pb.EntityChange.KIND_CREATED: "created",
    pb.EntityChange.KIND_UPDATED: "updated",
    pb.EntityChange.KIND_DELETED: "deleted",
}


class DeviceKeyOut(BaseModel):
    name: str
    key: str
    topic: str


def change_json(change: pb.EntityChange) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for value in change.properties:
        item: dict[str, Any] = {"value": value.value}
        if value.HasField("observe_time"):
            item["observe_time"] = value.observe_time.ToDatetime(tzinfo=UTC).isoformat()
        if value.HasField("point"):
            item["point"] = {"longitude": value.point.longitude, "latitude": value.point.latitude}
        properties[value.property] = item
    body: dict[str, Any] = {
        "entity": change.entity,
        "entity_type": change.entity_type,
        "sequence": change.sequence,
        "kind": _KIND.get(change.kind, "unspecified"),
        "properties": properties,
    }
    if change.HasField("location"):
        body["location"] = {
            "longitude": change.location.longitude,
            "latitude": change.location.latitude,
        }
    return body


def _box(text: str | None) -> pb.LonLatBox | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or not all(abs(n) <= 180 for n in numbers):
        raise ApiError(
            400,
            "bbox: min_longitude,min_latitude,max_longitude,max_latitude",
            violations=[FieldViolation("bbox", "four numbers, west,south,east,north")],
        )
    return pb.LonLatBox(
        min_longitude=numbers[0],
        min_latitude=numbers[1],
        max_longitude=numbers[2],
        max_latitude=numbers[3],
    )


@router.get(
    "/entities:stream",
    summary="Changes of entities as server-sent events: one entity, a model or an area",
    response_class=StreamingResponse,
)
@calls(SERVICE, "WatchEntities")
async def stream_entities(
    tenant: TenantId,
    request: Request,
    who: Who,
    entity: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="only this entity")
    ] = None,
    entity_type: Annotated[
        str | None, Query(max_length=64, description="only entities of this model")
    ] = None,
    bbox: Annotated[str | None, Query(max_length=100, description="west,south,east,north")] = None,
    after: Annotated[str | None, Query(max_length=40, description="resume after this id")] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    """`event: change` carries the entity's `sequence` (+1 per change); `event: missed`
    says changes were lost to this watcher (re-read the entities). Reconnecting with
    `Last-Event-ID` resumes after the last change received."""
    token = after if after is not None else last_event_id
    if token is not None and not _TOKEN.match(token):
        field = "after" if after is not None else "Last-Event-ID"
        raise ApiError(
            400, f"{field}: an id this stream sent", violations=[FieldViolation(field, "unknown")]
        )
    message = pb.WatchEntitiesRequest(
        parent=parent(tenant),
        entity=f"{parent(tenant)}/entities/{entity}" if entity else "",
        entity_type=entity_type or "",
        resume_token=token or "",
    )
    area = _box(bbox)
    if area is not None:
        message.area.CopyFrom(area)
    call_ = request.app.state.upstreams.twin.WatchEntities(message, metadata=call_metadata(who))
    try:
        # Raises when the twin refused the watch (another tenant: 404; bad token: 400).
        await call_.wait_for_connection()
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None
    queue: asyncio.Queue[pb.WatchEntitiesResponse | BaseException] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        try:
            async for item in call_:
                await queue.put(item)
        except BaseException as exc:  # the stream ended or failed: tell the writer
            await queue.put(exc)

    async def body() -> AsyncIterator[str]:
        task = asyncio.create_task(pump())
        try:
            yield ": connected\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if isinstance(item, BaseException):
                    return
                kind = item.WhichOneof("item")
                if kind == "change":
                    data = json.dumps(change_json(item.change))
                    yield f"id: {item.resume_token}\nevent: change\ndata: {data}\n\n"
                elif kind == "missed":
                    data = json.dumps({"description": item.missed.description})
                    yield f"id: {item.resume_token}\nevent: missed\ndata: {data}\n\n"
                else:
                    yield ": keep-alive\n\n"
        finally:
            call_.cancel()
            task.cancel()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _issue(request: Request, who: Principal, name: str) -> DeviceKeyOut:
    key = await call(
        request.app.state.upstreams.twin.IssueDeviceKey(
            pb.IssueDeviceKeyRequest(name=name), metadata=call_metadata(who)
        )
    )
    return DeviceKeyOut(name=key.name, key=key.key, topic=key.topic)


@router.post(
    "/entities/{entity}:issueDeviceKey",
    response_model=DeviceKeyOut,
    summary="A key for one device to publish MQTT telemetry",
)
@calls(SERVICE, "IssueDeviceKey")
async def issue_entity_key(
    tenant: TenantId, entity: EntityId, request: Request, who: Who
) -> DeviceKeyOut:
    """Put `key` in each message on `topic`: `{"key": ..., "values": {...}}`."""
    return await _issue(request, who, f"{parent(tenant)}/entities/{entity}")


@router.post(
    ":issueDeviceKey",
    response_model=DeviceKeyOut,
    summary="A fleet key: any entity of the tenant's subtree may publish with it",
)
@calls(SERVICE, "IssueDeviceKey")
async def issue_fleet_key(tenant: TenantId, request: Request, who: Who) -> DeviceKeyOut:
    return await _issue(request, who, parent(tenant))
