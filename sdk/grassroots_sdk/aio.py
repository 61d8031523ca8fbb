"""The asynchronous client: the same calls as `Client`, awaited.

async with AsyncClient() as gr:
    event = await gr.events.create("roads.damage", "Pothole", 121.159, 31.289)
    async for change in gr.events.stream():
        ...
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from grassroots_sdk import models as m
from grassroots_sdk import ops
from grassroots_sdk._base import NOT_SENT, STREAM_TIMEOUT, BaseClient
from grassroots_sdk._call import TENANT, Call, as_json, params
from grassroots_sdk.auth import REVOKE_PATH, TOKEN_PATH, TokenSession
from grassroots_sdk.errors import (
    AuthError,
    ConnectionFailed,
    GrassrootsError,
    Unauthenticated,
    error_from_response,
)
from grassroots_sdk.sse import Decoder, ServerSentEvent

P = ParamSpec("P")
T = TypeVar("T")


class AsyncClient(BaseClient):
    """A connection to the gateway for asyncio programs; reuse one per event loop."""

    def __init__(
        self,
        url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=self.timeout,
            transport=transport,
            headers=self.default_headers,
        )
        self._lock = asyncio.Lock()
        self.events = Events(self)
        self.tasks = Tasks(self)
        self.layers = Layers(self)
        self.map = Map(self)
        self.twin = Twin(self)
        self.points = Points(self)
        self.forms = Forms(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def me(self) -> m.Principal:
        return await self.run(ops.me())

    async def tenant(self) -> str:
        """The tenant id calls default to: given, or your key's or account's own node."""
        if self._tenant is None:
            self._tenant = (await self.me()).tenant_id
        return self._tenant

    async def sign_in(self) -> TokenSession:
        session = self._require_session()
        async with self._lock:
            await self._grant(session)
        return session

    async def sign_out(self) -> None:
        session = self._require_session()
        if session.refresh_token:
            await self._execute(
                Call("POST", REVOKE_PATH, as_json, data={"token": session.refresh_token}),
                authenticate=False,
            )
        session.access_token = session.refresh_token = None

    def _require_session(self) -> TokenSession:
        if self.session is None:
            raise AuthError("this client has no username or tokens", code="NO_SESSION")
        return self.session

    async def _ensure_token(self, refused: str | None = None) -> None:
        session = self.session
        if session is None:
            return
        if refused is not None or not session.usable():
            async with self._lock:  # one refresh at a time: a refresh token works once
                if refused is not None and session.access_token == refused:
                    session.expire()
                if not session.usable():
                    await self._grant(session)

    async def _grant(self, session: TokenSession) -> None:
        form = session.grant()
        if form is None:
            raise Unauthenticated(
                "the access token expired and there is no refresh token or password",
                status=401,
                code="UNAUTHENTICATED",
            )
        refreshing = form["grant_type"] == "refresh_token"
        try:
            answer = await self._execute(
                Call("POST", TOKEN_PATH, as_json, data=form), authenticate=False
            )
        except AuthError:
            again = session.password_grant() if refreshing else None
            if again is None:
                raise
            answer = await self._execute(
                Call("POST", TOKEN_PATH, as_json, data=again), authenticate=False
            )
            refreshing = False
        session.accept(answer, refreshed=refreshing)

    async def run(self, call: Call[T]) -> T:
        """Execute a described call (`grassroots_sdk.ops`): authenticate, retry, raise."""
        return await self._execute(call, authenticate=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        create: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Any route of the gateway, answered as parsed JSON (see `Client.request`)."""
        if create is None:
            create = method.upper() == "POST" and ":" not in path.rsplit("/", 1)[-1]
        call: Call[Any] = Call(
            method.upper(),
            path,
            as_json,
            params=params,
            json=json,
            create=create,
            idempotency_key=idempotency_key,
        )
        return await self.run(call)

    async def _execute(self, call: Call[T], *, authenticate: bool) -> T:
        key, safe = self._prepare(call)
        tenant = await self.tenant() if TENANT in call.path else None
        path = self._path(call, tenant)
        attempt, refused = 0, False
        while True:
            if authenticate:
                await self._ensure_token()
            sent_token = self.session.access_token if self.session else None
            request = self._build(self._http, call, path, key)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                delay = (
                    self._wait_for(call, attempt, None, exc)
                    if safe or isinstance(exc, NOT_SENT)
                    else None
                )
                if delay is None:
                    raise self._connection_failed(call, exc) from exc
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if response.status_code == 401 and authenticate and self.session and not refused:
                refused = True
                await self._ensure_token(refused=sent_token)
                continue
            if self._retryable(response, safe):
                delay = self._wait_for(call, attempt, response, None)
                if delay is not None:
                    await asyncio.sleep(delay)
                    attempt += 1
                    continue
            if response.is_success:
                return call.parse(response)
            raise error_from_response(response)

    async def pages(
        self, op: Callable[..., Call[m.Page[T]]], *args: Any, **kwargs: Any
    ) -> AsyncIterator[T]:
        """Every item of a list operation, page after page (`next_page_token`)."""
        token = ""
        while True:
            page = await self.run(op(*args, page_token=token, **kwargs))
            for item in page.items:
                yield item
            token = page.next_page_token
            if not token:
                return

    def sse(
        self,
        path: str,
        *,
        last_event_id: str | None = None,
        params: dict[str, Any] | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
    ) -> AsyncEventSource:
        """A server-sent event stream that reconnects with `Last-Event-ID` when it breaks."""
        return AsyncEventSource(self, path, params or {}, last_event_id, reconnect, max_reconnects)


class AsyncEventSource:
    """`async for` the messages; `last_event_id` is where a new stream would resume."""

    def __init__(
        self,
        client: AsyncClient,
        path: str,
        query: dict[str, Any],
        last_event_id: str | None,
        reconnect: bool,
        max_reconnects: int | None,
    ) -> None:
        self._client = client
        self._path = path
        self._query = query
        self.last_event_id = last_event_id
        self._reconnect = reconnect
        self._max_reconnects = max_reconnects
        self.reconnects = 0
        self._response: httpx.Response | None = None
        self._pending: httpx.Response | None = None
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[ServerSentEvent]:
        client = self._client
        failures = 0
        wait_ms: int | None = None
        while not self._closed:
            try:
                async for message in self._messages():
                    failures = 0
                    if message.retry is not None:
                        wait_ms = message.retry
                    yield message
            except (httpx.TransportError, ConnectionFailed) as exc:
                if not self._reconnect:
                    broke = f"the stream broke: {exc}"
                    raise ConnectionFailed(broke, code="STREAM_BROKEN") from exc
            except GrassrootsError as exc:
                if exc.status not in client.retry.statuses or not self._reconnect:
                    raise
            if self._closed or not self._reconnect:
                return
            failures += 1
            if self._max_reconnects is not None and self.reconnects >= self._max_reconnects:
                raise ConnectionFailed(
                    f"the stream broke {self.reconnects + 1} times", code="STREAM_BROKEN"
                )
            self.reconnects += 1
            base = wait_ms / 1000 if wait_ms is not None else client.retry.backoff
            await asyncio.sleep(min(client.retry.max_backoff, base * (2 ** min(failures - 1, 6))))

    async def open(self) -> AsyncEventSource:
        """Connect now, so the stream starts from this moment rather than the first read."""
        if self._pending is None:
            self._pending = await self._connect()
        return self

    async def _connect(self) -> httpx.Response:
        client = self._client
        await client._ensure_token()
        path = self._path
        if TENANT in path:
            path = path.replace(TENANT, await client.tenant(), 1)
        headers = {"Accept": "text/event-stream", **client._auth_headers()}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        request = client._http.build_request(
            "GET", path, params=params(**self._query), headers=headers, timeout=STREAM_TIMEOUT
        )
        response = await client._http.send(request, stream=True)
        if response.status_code == 200:
            return response
        try:
            await response.aread()
        finally:
            await response.aclose()
        error = error_from_response(response)
        if response.status_code == 401 and client.session is not None:
            await client._ensure_token(refused=client.session.access_token)
            raise ConnectionFailed(str(error), code="TOKEN_REFRESHED")
        raise error

    async def _messages(self) -> AsyncIterator[ServerSentEvent]:
        response = self._pending or await self._connect()
        self._pending = None
        self._response = response
        try:
            decoder = Decoder()
            async for line in response.aiter_lines():
                message = decoder.feed(line)
                if decoder.last_event_id is not None:
                    self.last_event_id = decoder.last_event_id
                if message is not None:
                    yield message
        finally:
            self._response = None
            await response.aclose()

    def close(self) -> None:
        """Stop after the current message (break out of `async for` to stop at once)."""
        self._closed = True


# --- resource namespaces -----------------------------------------------------------------


class _Namespace:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client


def _async(op: Callable[P, Call[T]]) -> Callable[Concatenate[_Namespace, P], Awaitable[T]]:
    async def method(self: _Namespace, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._client.run(op(*args, **kwargs))

    return functools.wraps(op)(method)  # type: ignore[return-value]


def _pages(
    op: Callable[P, Call[m.Page[T]]],
) -> Callable[Concatenate[_Namespace, P], AsyncIterator[T]]:
    def method(self: _Namespace, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        kwargs.pop("page_token", None)
        return self._client.pages(op, *args, **kwargs)

    method.__doc__ = f"Every item of `{op.__name__}`, page after page."
    return method


class Events(_Namespace):
    create = _async(ops.create_event)
    get = _async(ops.get_event)
    list = _async(ops.list_events)
    iterate = _pages(ops.list_events)
    transition = _async(ops.transition_event)
    comment = _async(ops.comment_event)
    evaluate = _async(ops.evaluate_event)
    statistics = _async(ops.event_statistics)

    async def stream(
        self,
        *,
        tenant: str | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
    ) -> AsyncEventChanges:
        """Every change in the tenant's subtree from this call on (or after `last_event_id`).

        The stream is connected before this returns, so a report made next is on it."""
        source = self._client.sse(
            ops.events_stream_path(tenant),
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
        )
        return AsyncEventChanges(await source.open())


class AsyncEventChanges:
    def __init__(self, source: AsyncEventSource) -> None:
        self.source = source

    @property
    def last_event_id(self) -> str | None:
        return self.source.last_event_id

    async def __aiter__(self) -> AsyncIterator[m.EventChange]:
        async for message in self.source:
            yield m.EventChange(
                offset=int(message.id or 0),
                type=message.event,
                event=m.Event.model_validate_json(message.data),
            )

    def close(self) -> None:
        self.source.close()


class Tasks(_Namespace):
    list = _async(ops.list_tasks)
    iterate = _pages(ops.list_tasks)
    get = _async(ops.get_task)
    accept = _async(ops.accept_task)
    start = _async(ops.start_task)
    resolve = _async(ops.resolve_task)
    decline = _async(ops.decline_task)

    async def for_event(
        self, event: str | m.Event, *, wait: float = 10.0, tenant: str | None = None
    ) -> m.Task | None:
        """The event's task, waiting up to `wait` seconds for command to make it."""
        name = event.name if isinstance(event, m.Event) else event
        deadline = time.monotonic() + wait
        while True:
            found = await self._client.run(ops.list_tasks(event=name, tenant=tenant, page_size=1))
            if found.items or time.monotonic() >= deadline:
                return found.items[0] if found.items else None
            await asyncio.sleep(0.25)


class Layers(_Namespace):
    list = _async(ops.list_layers)
    iterate = _pages(ops.list_layers)
    get = _async(ops.get_layer)
    create = _async(ops.create_layer)
    delete = _async(ops.delete_layer)
    import_features = _async(ops.import_features)


class Map(_Namespace):
    locate = _async(ops.locate)


class Twin(_Namespace):
    entities = _async(ops.list_entities)
    iterate = _pages(ops.list_entities)
    get = _async(ops.get_entity)
    ingest = _async(ops.ingest_telemetry)


class Points(_Namespace):
    accounts = _async(ops.list_points_accounts)
    iterate = _pages(ops.list_points_accounts)
    get = _async(ops.get_points_account)
    create = _async(ops.create_points_account)
    credit = _async(ops.credit_points)
    redeem = _async(ops.redeem_points)
    ledger = _async(ops.list_ledger_entries)


class Forms(_Namespace):
    list = _async(ops.list_forms)
    get = _async(ops.get_form)
    create_record = _async(ops.create_form_record)
    records = _async(ops.list_form_records)
    iterate_records = _pages(ops.list_form_records)
