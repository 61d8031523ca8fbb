"""Notices over real gRPC, with the service's own directory of users and people.

The service is built as `python -m services.empower` builds it; the audience is
resolved from users and people made through its APIs, in-app deliveries are
dispatched by its own loop, and the audit log is read back to check that it holds
who sent what and when, never the text.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.empower.v1 import notices_service_pb2 as pb
from grassroots.empower.v1 import notices_service_pb2_grpc as pb_grpc
from grassroots.empower.v1 import people_service_pb2 as people_pb
from grassroots.empower.v1 import people_service_pb2_grpc as people_grpc
from services.empower.config import EmpowerSettings
from services.empower.domain.roles import ALL_SCOPES, ROLES
from services.empower.wiring import build
from services.kit import gb11643
from services.kit.principal import Principal
from tests.conftest import SignedAtCall, create_tenants, serve_in_process

A, B = "sh/jd/at/va", "sh/jd/at/vb"
BOOT = SignedAtCall(Principal("services/boot", "sh", kind="service", scopes=ALL_SCOPES))
SECRETARY = SignedAtCall(Principal("users/sec", A, scopes=ROLES["village_secretary"]))
NEIGHBOUR = SignedAtCall(Principal("users/sec-b", B, scopes=ROLES["village_secretary"]))
TEXT = "Water off on Thursday 9-12 for pipe repairs"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Any]:
    settings = EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=tmp_path / "empower.sqlite3",
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        bus_url=str(tmp_path / "bus.sqlite3"),
        notice_dispatch_seconds=0.1,
    )
    component = await build(settings)
    server = await serve_in_process("empower", component)
    await create_tenants(server.channel, "sh/jd/at/va", "sh/jd/at/vb")
    yield server.channel
    await server.channel.close()
    await server.running.stop()
    await component.close()


async def _grid_worker(channel: Any, tenant_id: str, username: str) -> str:
    user = await identity_grpc.IdentityServiceStub(channel).CreateUser(
        identity_pb.CreateUserRequest(
            parent=f"tenants/{tenant_id}",
            user=identity_pb.User(
                username=username,
                display_name=username,
                kind=identity_pb.User.KIND_GRID_WORKER,
                roles=["grid_worker"],
            ),
        ),
        metadata=BOOT,
    )
    return f"users/{user.name.rsplit('/', 1)[-1]}"


async def test_a_notice_reaches_the_role_is_read_and_audited_without_its_text(service: Any) -> None:
    stub = pb_grpc.NoticesServiceStub(service)
    worker = await _grid_worker(service, "sh-jd-at-va", "gw.one")
    await _grid_worker(service, "sh-jd-at-vb", "gw.other")  # another village: not reached
    notice = await stub.CreateNotice(
        pb.CreateNoticeRequest(
            parent="tenants/sh-jd-at-va",
            notice=pb.Notice(
                title="Water off",
                body=TEXT,
                audience=pb.Audience(role="grid_worker"),
                channels=[pb.Notice.CHANNEL_IN_APP],
            ),
            request_id="notice-1",
        ),
        metadata=SECRETARY,
    )
    assert notice.delivery_counts["pending"] + notice.delivery_counts["sent"] == 1
    again = await stub.CreateNotice(
        pb.CreateNoticeRequest(
            parent="tenants/sh-jd-at-va",
            notice=pb.Notice(
                title="Water off", body=TEXT, audience=pb.Audience(role="grid_worker")
            ),
            request_id="notice-1",
        ),
        metadata=SECRETARY,
    )
    assert again.name == notice.name
    deliveries = []
    for _ in range(100):
        listed = await stub.ListDeliveries(
            pb.ListDeliveriesRequest(parent=notice.name), metadata=SECRETARY
        )
        deliveries = list(listed.deliveries)
        if deliveries and deliveries[0].state == pb.Delivery.STATE_SENT:
            break
        await asyncio.sleep(0.05)
    assert [(d.recipient, d.state) for d in deliveries] == [(worker, pb.Delivery.STATE_SENT)]

    me = SignedAtCall(Principal(worker, A, scopes=ROLES["grid_worker"]))
    mine = await stub.ListMyNotices(pb.ListMyNoticesRequest(), metadata=me)
    assert [(d.title, d.body, d.state) for d in mine.deliveries] == [
        ("Water off", TEXT, pb.Delivery.STATE_DELIVERED)
    ]
    # The delivery under another notice's name is not found, even for its recipient.
    head, _, delivery_id = mine.deliveries[0].name.partition("/deliveries/")
    misnamed = head.rsplit("/", 1)[0] + "/nt_other/deliveries/" + delivery_id
    with pytest.raises(grpc.aio.AioRpcError) as wrong_notice:
        await stub.MarkNoticeRead(pb.MarkNoticeReadRequest(name=misnamed), metadata=me)
    assert wrong_notice.value.code() == grpc.StatusCode.NOT_FOUND
    read = await stub.MarkNoticeRead(
        pb.MarkNoticeReadRequest(name=mine.deliveries[0].name), metadata=me
    )
    assert read.HasField("read_time")
    with pytest.raises(grpc.aio.AioRpcError) as not_theirs:
        await stub.MarkNoticeRead(
            pb.MarkNoticeReadRequest(name=mine.deliveries[0].name), metadata=SECRETARY
        )
    assert not_theirs.value.code() == grpc.StatusCode.NOT_FOUND
    counts = await stub.GetNotice(pb.GetNoticeRequest(name=notice.name), metadata=SECRETARY)
    assert counts.delivery_counts["delivered"] == 1 and counts.delivery_counts["read"] == 1

    audit = await people_grpc.PeopleServiceStub(service).ListAuditEntries(
        people_pb.ListAuditEntriesRequest(parent="tenants/sh"), metadata=BOOT
    )
    sent = [e for e in audit.audit_entries if e.action == "notices.send"]
    assert [(e.subject, list(e.records)) for e in sent] == [("users/sec", [notice.name])]
    assert all("Water" not in str(e) for e in audit.audit_entries)

    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await stub.GetNotice(pb.GetNoticeRequest(name=notice.name), metadata=NEIGHBOUR)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_notice_to_an_empty_audience_is_refused(service: Any) -> None:
    stub = pb_grpc.NoticesServiceStub(service)
    for audience, channels in (
        (pb.Audience(role="carer"), []),
        (pb.Audience(grid_cell="va-g99"), [pb.Notice.CHANNEL_IN_APP]),
        (pb.Audience(recipients=["users/nobody"]), []),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateNotice(
                pb.CreateNoticeRequest(
                    parent="tenants/sh-jd-at-va",
                    notice=pb.Notice(
                        title="Hello", body="Nobody hears", audience=audience, channels=channels
                    ),
                    request_id="empty",
                ),
                metadata=SECRETARY,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "notice.audience" in refused.value.details()
        assert "empty" in refused.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as no_sms:
        await stub.CreateNotice(
            pb.CreateNoticeRequest(
                parent="tenants/sh-jd-at-va",
                notice=pb.Notice(
                    title="Hello",
                    body="By text",
                    audience=pb.Audience(tenant="tenants/sh-jd-at-va"),
                    channels=[pb.Notice.CHANNEL_SMS],
                ),
                request_id="sms",
            ),
            metadata=SECRETARY,
        )
    assert "sms is not configured" in no_sms.value.details()
    listed = await stub.ListNotices(
        pb.ListNoticesRequest(parent="tenants/sh-jd-at-va"), metadata=SECRETARY
    )
    assert list(listed.notices) == []


async def test_a_grid_cell_notice_reaches_a_registered_person_in_their_own_account(
    service: Any,
) -> None:
    stub = pb_grpc.NoticesServiceStub(service)
    people = people_grpc.PeopleServiceStub(service)
    account = await _grid_worker(service, "sh-jd-at-va", "gw.lives.here")
    for n, (cell, user) in enumerate((("va-g01", account), ("va-g01", ""), ("va-g02", ""))):
        first17 = f"31011419500101{n:03d}"
        await people.CreatePerson(
            people_pb.CreatePersonRequest(
                parent="tenants/sh-jd-at-va",
                person=people_pb.Person(
                    display_name=f"Resident {n}",
                    id_number=first17 + gb11643.check_character(first17),
                    phone=f"1390000000{n}",
                    grid_cell=cell,
                    user=user,
                ),
            ),
            metadata=SECRETARY,
        )
    notice = await stub.CreateNotice(
        pb.CreateNoticeRequest(
            parent="tenants/sh-jd-at-va",
            notice=pb.Notice(
                title="Water off", body=TEXT, audience=pb.Audience(grid_cell="va-g01")
            ),
            request_id="cell-notice-1",
        ),
        metadata=SECRETARY,
    )
    listed = await stub.ListDeliveries(
        pb.ListDeliveriesRequest(parent=notice.name), metadata=SECRETARY
    )
    # Of the cell's two people only the one with an account reads in-app; next door: nobody.
    assert [d.recipient for d in listed.deliveries] == [account]
    me = SignedAtCall(Principal(account, A, scopes=ROLES["grid_worker"]))
    for _ in range(100):
        mine = await stub.ListMyNotices(pb.ListMyNoticesRequest(), metadata=me)
        if mine.deliveries and mine.deliveries[0].state != pb.Delivery.STATE_PENDING:
            break
        await asyncio.sleep(0.05)
    read = await stub.MarkNoticeRead(
        pb.MarkNoticeReadRequest(name=mine.deliveries[0].name), metadata=me
    )
    assert read.HasField("read_time")


async def test_a_person_kind_narrows_a_village_audience_to_the_people_a_service_is_for(
    service: Any,
) -> None:
    stub = pb_grpc.NoticesServiceStub(service)
    people = people_grpc.PeopleServiceStub(service)
    elder = await _grid_worker(service, "sh-jd-at-va", "elder.account")
    younger = await _grid_worker(service, "sh-jd-at-va", "younger.account")
    for n, (kind, user) in enumerate(
        (
            (people_pb.Person.KIND_ELDERLY_ALONE, elder),
            (people_pb.Person.KIND_RESIDENT, younger),
        )
    ):
        first17 = f"31011419400101{n + 10:03d}"
        await people.CreatePerson(
            people_pb.CreatePersonRequest(
                parent="tenants/sh-jd-at-va",
                person=people_pb.Person(
                    display_name=f"Resident {n}",
                    id_number=first17 + gb11643.check_character(first17),
                    phone=f"1390000001{n}",
                    kind=kind,
                    user=user,
                ),
            ),
            metadata=SECRETARY,
        )
    audience = pb.Audience(tenant="tenants/sh-jd-at-va", person_kind="elderly_alone")
    notice = await stub.CreateNotice(
        pb.CreateNoticeRequest(
            parent="tenants/sh-jd-at-va",
            notice=pb.Notice(title="Home safety check", body=TEXT, audience=audience),
            request_id="kind-notice-1",
        ),
        metadata=SECRETARY,
    )
    assert notice.audience.person_kind == "elderly_alone"
    listed = await stub.ListDeliveries(
        pb.ListDeliveriesRequest(parent=notice.name), metadata=SECRETARY
    )
    assert [d.recipient for d in listed.deliveries] == [elder]  # not every user, not him
    for bad in (
        pb.Audience(role="grid_worker", person_kind="elderly_alone"),
        pb.Audience(tenant="tenants/sh-jd-at-va", person_kind="pensioner"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateNotice(
                pb.CreateNoticeRequest(
                    parent="tenants/sh-jd-at-va",
                    notice=pb.Notice(title="x", body=TEXT, audience=bad),
                    request_id="kind-bad",
                ),
                metadata=SECRETARY,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "notice.audience.person_kind" in str(refused.value.details())


async def test_a_services_push_to_nobody_yet_is_kept_a_persons_is_refused(service: Any) -> None:
    stub = pb_grpc.NoticesServiceStub(service)
    nobody = pb.Audience(tenant="tenants/sh-jd-at-vb", person_kind="care_recipient")
    composer = SignedAtCall(
        Principal(
            "services/scenario-composer", B, kind="service", scopes=frozenset({"notices:send"})
        )
    )
    kept = await stub.CreateNotice(
        pb.CreateNoticeRequest(
            parent="tenants/sh-jd-at-vb",
            notice=pb.Notice(title="Care hours", body=TEXT, audience=nobody),
            request_id="push-1",
        ),
        metadata=composer,
    )
    listed = await stub.ListDeliveries(
        pb.ListDeliveriesRequest(parent=kept.name), metadata=NEIGHBOUR
    )
    assert list(listed.deliveries) == []
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateNotice(
            pb.CreateNoticeRequest(
                parent="tenants/sh-jd-at-vb",
                notice=pb.Notice(title="Care hours", body=TEXT, audience=nobody),
                request_id="push-2",
            ),
            metadata=NEIGHBOUR,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
