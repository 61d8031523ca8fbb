"""Photos kept by the events service (ADR 36): told by their bytes, bounded by the
contract, named by reports of their uploader, read by their uploader and staff."""

from __future__ import annotations

import grpc
import pytest

from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.events.domain.attachments import sniff
from services.kit import limits, tenancy
from services.kit.status import failure_of
from tests.conftest import XIANGYANG, XINGMING, principal_of
from tests.unit.events.test_events_api import cell_point

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64
RESIDENT = principal_of(XINGMING, "users/resident-1", frozenset({"events:read", "events:write"}))
NEIGHBOUR = principal_of(XINGMING, "users/resident-2", frozenset({"events:read", "events:write"}))
STAFF = principal_of(XINGMING, "users/secretary")  # handles and manages
OTHER_VILLAGE = principal_of(XIANGYANG, "users/secretary-b")


def test_the_bytes_say_what_a_photo_is():
    assert (sniff(JPEG), sniff(PNG), sniff(WEBP)) == ("image/jpeg", "image/png", "image/webp")
    for not_a_photo in (b"<svg onload=alert(1)>", b"GIF89a....", b"%PDF-1.7", b"RIFF....WAVE", b""):
        assert sniff(not_a_photo) is None


async def upload(events, content, who=RESIDENT, tenant=XINGMING):
    return await events.stub.CreateAttachment(
        pb.CreateAttachmentRequest(parent=tenancy.tenant_name(tenant), content=content),
        metadata=who.to_metadata(),
    )


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_photo_is_kept_and_read_back_by_its_uploader_and_staff_only(events):
    made = await upload(events, PNG)
    assert made.content_type == "image/png" and made.size_bytes == len(PNG)
    assert made.name.startswith("tenants/sh-jiading-anting-xingming/attachments/at_")
    for who in (RESIDENT, STAFF):
        got = await events.stub.GetAttachment(
            pb.GetAttachmentRequest(name=made.name), metadata=who.to_metadata()
        )
        assert got.content == PNG and got.attachment == made
    for who in (NEIGHBOUR, OTHER_VILLAGE):
        error = await refused(
            events.stub.GetAttachment(
                pb.GetAttachmentRequest(name=made.name), metadata=who.to_metadata()
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
    under_b = made.name.replace("xingming", "xiangyang")
    error = await refused(
        events.stub.GetAttachment(
            pb.GetAttachmentRequest(name=under_b), metadata=STAFF.to_metadata()
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_what_is_not_a_photo_or_too_large_is_refused_naming_content(events):
    for content in (b"<html><script>alert(1)</script>", b"GIF89a" + b"\x00" * 10):
        error = await refused(upload(events, content))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert failure_of(error).violations[0].field == "content"
    largest = limits.of(pb.CreateAttachmentRequest, "content").max_length
    error = await refused(upload(events, JPEG + b"\x00" * (largest - len(JPEG) + 1)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure_of(error).violations[0].field == "content"
    error = await refused(upload(events, JPEG, tenant=XIANGYANG))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_report_names_only_its_reporters_own_photos(events, grid_index):
    mine = await upload(events, JPEG)
    theirs = await upload(events, WEBP, who=NEIGHBOUR)
    _, lon, lat = cell_point(grid_index, XINGMING, 4)

    def report(media, request_id):
        return pb.CreateEventRequest(
            parent=tenancy.tenant_name(XINGMING),
            request_id=request_id,
            event=pb.Event(
                category="roads.damage",
                description="a hole in the path",
                location=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
                media_uris=media,
            ),
        )

    error = await refused(
        events.stub.CreateEvent(
            report([mine.name, theirs.name], "p-1"), metadata=RESIDENT.to_metadata()
        )
    )
    assert failure_of(error).violations[0].field == "event.media_uris[1]"
    error = await refused(
        events.stub.CreateEvent(
            report(["javascript:alert(1)"], "p-2"), metadata=RESIDENT.to_metadata()
        )
    )
    assert failure_of(error).violations[0].field == "event.media_uris[0]"
    assert await events.count_rows() == 0
    made = await events.stub.CreateEvent(
        report([mine.name], "p-3"), metadata=RESIDENT.to_metadata()
    )
    assert list(made.media_uris) == [mine.name]
