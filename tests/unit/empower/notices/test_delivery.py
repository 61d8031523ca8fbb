"""Delivery states and retries on both stores, through a channel test double and the
real SMS adapter against a local HTTP gateway."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from services.empower.domain.audit import AuditLog
from services.empower.domain.notices import NoticeBoard
from services.empower.domain.notices_model import (
    Audience,
    Channel,
    ChannelError,
    Contact,
    DeliveryState,
    Recipient,
    RecipientKind,
)
from services.empower.notice_channels import InAppChannel, SmsChannel
from services.empower.store.notices_postgres import PostgresNoticesStore
from services.empower.store.notices_sqlite import SqliteNoticesStore
from services.empower.store.people_sqlite import SqlitePeopleStore
from services.kit.errors import FailedPrecondition
from services.kit.principal import Principal
from tests.conftest import XINGMING

SENDER = Principal("users/sec", XINGMING, scopes=frozenset({"notices:send", "empower:read"}))
PEOPLE = tuple(f"tenants/sh-jiading-anting-xingming/people/pe_{n}" for n in range(3))


class DirectoryStandIn:
    """Stands in for the registry's directory: three residents with phones (the real one
    is tested over gRPC in tests/unit/empower/test_notices_api.py)."""

    async def resolve(self, tenant: str, audience: Audience) -> list[Recipient]:
        return [Recipient(name, RecipientKind.PERSON) for name in PEOPLE]

    async def contact(self, recipient: Recipient) -> Contact:
        return Contact(recipient.name, phone=f"1390000000{recipient.name[-1]}")


class SmsChannelTestDouble:
    """A test double of an SMS channel: fails the first `failures` sends, then accepts."""

    channel = Channel.SMS

    def __init__(self, failures: int = 0, retryable: bool = True) -> None:
        self.failures = failures
        self.retryable = retryable
        self.sent: list[tuple[str, str]] = []

    async def send(self, contact: Contact, title: str, body: str) -> bool:
        if self.failures:
            self.failures -= 1
            raise ChannelError("gateway answered 503", retryable=self.retryable)
        self.sent.append((contact.phone, body))
        return False


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    found: Any
    if request.param == "postgres":
        found = await PostgresNoticesStore.open(request.getfixturevalue("postgis_test_dsn"))
    else:
        found = SqliteNoticesStore(tmp_path / "notices.sqlite3")
    yield found
    closed = found.close()
    if inspect.isawaitable(closed):
        await closed


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    people = SqlitePeopleStore(tmp_path / "audit.sqlite3")
    yield AuditLog(people)
    people.close()


def board(store: Any, audit: AuditLog, sms: Any, clock: list[datetime]) -> NoticeBoard:
    channels = {Channel.IN_APP: InAppChannel(), Channel.SMS: sms}
    return NoticeBoard(store, DirectoryStandIn(), channels, audit, clock=lambda: clock[0])


async def _send(notices: NoticeBoard) -> str:
    notice = await notices.send(
        SENDER,
        XINGMING,
        title="Flood watch",
        body="Move cars from the low car park",
        audience=Audience(tenant="tenants/sh-jiading-anting-xingming"),
        channels=[Channel.SMS, Channel.IN_APP],
        request_id="flood-1",
    )
    return notice.id


async def test_a_request_id_replayed_with_other_words_is_refused(
    store: Any, audit: AuditLog
) -> None:
    clock = [datetime(2026, 12, 3, 8, 0, tzinfo=UTC)]
    notices = board(store, audit, SmsChannelTestDouble(), clock)
    first = await _send(notices)
    assert await _send(notices) == first  # a retry answers the first notice
    with pytest.raises(FailedPrecondition) as reused:
        await notices.send(
            SENDER,
            XINGMING,
            title="Flood over",
            body="Cars may return",
            audience=Audience(tenant="tenants/sh-jiading-anting-xingming"),
            channels=[Channel.SMS, Channel.IN_APP],
            request_id="flood-1",
        )
    assert reused.value.reason == "REQUEST_ID_REUSED"


async def test_failed_sends_are_retried_with_back_off_until_sent(
    store: Any, audit: AuditLog
) -> None:
    clock = [datetime(2026, 12, 3, 8, 0, tzinfo=UTC)]
    sms = SmsChannelTestDouble(failures=2)
    notices = board(store, audit, sms, clock)
    notice_id = await _send(notices)
    deliveries, _ = await notices.deliveries(SENDER, XINGMING, notice_id, 50, "")
    # Residents are reached by SMS only: in-app is for people who sign in.
    assert {(d.channel, d.state) for d in deliveries} == {(Channel.SMS, DeliveryState.PENDING)}
    assert await notices.dispatch_due() == 3  # two fail, one goes
    states = sorted(
        d.state.value for d in (await notices.deliveries(SENDER, XINGMING, notice_id, 50, ""))[0]
    )
    assert states == ["queued", "queued", "sent"]
    assert await notices.dispatch_due() == 0  # not due again for a minute
    clock[0] += timedelta(minutes=1)
    assert await notices.dispatch_due() == 2
    found = (await notices.deliveries(SENDER, XINGMING, notice_id, 50, ""))[0]
    assert all(d.state is DeliveryState.SENT for d in found)
    assert sorted(d.attempts for d in found) == [1, 2, 2]
    assert len(sms.sent) == 3


async def test_retries_stop_after_24_hours_and_final_refusals_fail_at_once(
    store: Any, audit: AuditLog
) -> None:
    clock = [datetime(2026, 12, 3, 8, 0, tzinfo=UTC)]
    notices = board(store, audit, SmsChannelTestDouble(failures=10**6), clock)
    notice_id = await _send(notices)
    for _ in range(40):
        await notices.dispatch_due()
        clock[0] += timedelta(hours=1)
    found = (await notices.deliveries(SENDER, XINGMING, notice_id, 50, ""))[0]
    assert all(d.state is DeliveryState.FAILED for d in found)
    assert all(d.last_error == "gateway answered 503" for d in found)
    assert all(20 <= d.attempts <= 30 for d in found)

    refused = board(store, audit, SmsChannelTestDouble(failures=1, retryable=False), clock)
    other = await refused.send(
        SENDER,
        XINGMING,
        title="t",
        body="b",
        audience=Audience(role="grid_worker"),
        channels=[Channel.SMS],
        request_id="flood-2",
    )
    await refused.dispatch_due()
    states = [d.state for d in (await refused.deliveries(SENDER, XINGMING, other.id, 50, ""))[0]]
    assert states.count(DeliveryState.FAILED) == 1


class _Gateway(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Gateway.received.append({"auth": self.headers.get("Authorization"), **body})
        self.send_response(_Gateway.answers.pop(0) if _Gateway.answers else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def test_the_sms_adapter_posts_to_its_gateway_and_classifies_answers() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sms = SmsChannel(f"http://127.0.0.1:{server.server_port}/send", "gateway-key")
    try:
        _Gateway.answers[:] = [503, 400, 200]
        contact = Contact("tenants/x/people/pe_1", phone="13900000001")
        with pytest.raises(ChannelError) as busy:
            await sms.send(contact, "Flood watch", "Move cars")
        assert busy.value.retryable
        with pytest.raises(ChannelError) as refused:
            await sms.send(contact, "Flood watch", "Move cars")
        assert not refused.value.retryable
        assert await sms.send(contact, "Flood watch", "Move cars") is False
        assert _Gateway.received[-1] == {
            "auth": "Bearer gateway-key",
            "to": "13900000001",
            "text": "Flood watch: Move cars",
        }
        with pytest.raises(ChannelError) as no_phone:
            await sms.send(Contact("tenants/x/people/pe_2"), "t", "b")
        assert not no_phone.value.retryable
    finally:
        await sms.close()
        server.shutdown()
        await asyncio.to_thread(thread.join)
