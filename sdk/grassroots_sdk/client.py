"""The synchronous client: `Client(url, api_key=...)` or `Client(url, username=..., password=...)`.

with Client() as gr:                       # GRASSROOTS_URL, GRASSROOTS_API_KEY
    event = gr.events.create("roads.damage", "Pothole", 121.159, 31.289)
    for change in gr.events.stream():      # resumes after Last-Event-ID by itself
        ...
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
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


class Client(BaseClient):
    """A connection to the gateway; thread-safe, reuse one per program."""

    def __init__(
        self,
        url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        self._http = httpx.Client(
            base_url=self.url,
            timeout=self.timeout,
            transport=transport,
            headers=self.default_headers,
        )
        self._lock = threading.Lock()
        self.events = Events(self)
        self.tasks = Tasks(self)
        self.layers = Layers(self)
        self.map = Map(self)
        self.twin = Twin(self)
        self.points = Points(self)
        self.forms = Forms(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- who and where -----------------------------------------------------------------

    def me(self) -> m.Principal:
        return self.run(ops.me())

    @property
    def tenant(self) -> str:
        """The tenant id calls default to: given, or your key's or account's own node."""
        if self._tenant is None:
            self._tenant = self.me().tenant_id
        return self._tenant

    # --- sign-in -------------------------------------------------------------------------

    def sign_in(self) -> TokenSession:
        """Get tokens now (otherwise the first call does)."""
        session = self._require_session()
        with self._lock:
            self._grant(session)
        return session

    def sign_out(self) -> None:
        """Revoke the refresh token (RFC 7009): every session of this login ends."""
        session = self._require_session()
        if session.refresh_token:
            self._execute(
                Call("POST", REVOKE_PATH, as_json, data={"token": session.refresh_token}),
                authenticate=False,
            )
        session.access_token = session.refresh_token = None

    def _require_session(self) -> TokenSession:
        if self.session is None:
            raise AuthError("this client has no username or tokens", code="NO_SESSION")
        return self.session

    def _ensure_token(self, refused: str | None = None) -> None:
        session = self.session
        if session is None:
            return
        if refused is not None or not session.usable():
            with self._lock:  # one refresh at a time: a refresh token works once
                if refused is not None and session.access_token == refused:
                    session.expire()
                if not session.usable():
                    self._grant(session)

    def _grant(self, session: TokenSession) -> None:
        form = session.grant()
        if form is None:
            raise Unauthenticated(
                "the access token expired and there is no refresh token or password",
                status=401,
                code="UNAUTHENTICATED",
            )
        refreshing = form["grant_type"] == "refresh_token"
        try:
            answer = self._execute(Call("POST", TOKEN_PATH, as_json, data=form), authenticate=False)
        except AuthError:
            again = session.password_grant() if refreshing else None
            if again is None:
                raise
            again_call = Call("POST", TOKEN_PATH, as_json, data=again)
            answer = self._execute(again_call, authenticate=False)
            refreshing = False
        session.accept(answer, refreshed=refreshing)

    # --- calls ---------------------------------------------------------------------------

    def run(self, call: Call[T]) -> T:
        """Execute a described call (`grassroots_sdk.ops`): authenticate, retry, raise."""
        return self._execute(call, authenticate=True)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        create: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Any route of the gateway, answered as parsed JSON. A POST to a collection is a
        create and gets an Idempotency-Key unless `create=False`."""
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
        return self.run(call)

    def _execute(self, call: Call[T], *, authenticate: bool) -> T:
        key, safe = self._prepare(call)
        tenant = self.tenant if TENANT in call.path else None
        path = self._path(call, tenant)
        attempt, refused = 0, False
        while True:
            if authenticate:
                self._ensure_token()
            sent_token = self.session.access_token if self.session else None
            request = self._build(self._http, call, path, key)
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                delay = (
                    self._wait_for(call, attempt, None, exc)
                    if safe or isinstance(exc, NOT_SENT)
                    else None
                )
                if delay is None:
                    raise self._connection_failed(call, exc) from exc
                time.sleep(delay)
                attempt += 1
                continue
            if response.status_code == 401 and authenticate and self.session and not refused:
                refused = True  # once: a second 401 is the answer
                self._ensure_token(refused=sent_token)
                continue
            if self._retryable(response, safe):
                delay = self._wait_for(call, attempt, response, None)
                if delay is not None:
                    time.sleep(delay)
                    attempt += 1
                    continue
            if response.is_success:
                return call.parse(response)
            raise error_from_response(response)

    # --- lists and streams ---------------------------------------------------------------

    def pages(self, op: Callable[..., Call[m.Page[T]]], *args: Any, **kwargs: Any) -> Iterator[T]:
        """Every item of a list operation, page after page (`next_page_token`)."""
        token = ""
        while True:
            page = self.run(op(*args, page_token=token, **kwargs))
            yield from page.items
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
    ) -> EventSource:
        """A server-sent event stream that reconnects with `Last-Event-ID` when it breaks."""
        return EventSource(self, path, params or {}, last_event_id, reconnect, max_reconnects)


class EventSource:
    """Iterate for messages; `last_event_id` is where a new stream would resume."""

    def __init__(
        self,
        client: Client,
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

    def __iter__(self) -> Iterator[ServerSentEvent]:
        client = self._client
        failures = 0
        wait_ms: int | None = None
        while not self._closed:
            try:
                for message in self._messages():
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
            time.sleep(min(client.retry.max_backoff, base * (2 ** min(failures - 1, 6))))

    def open(self) -> EventSource:
        """Connect now, so the stream starts from this moment rather than the first read."""
        if self._pending is None:
            self._pending = self._connect()
        return self

    def _connect(self) -> httpx.Response:
        client = self._client
        client._ensure_token()
        path = self._path
        if TENANT in path:
            path = path.replace(TENANT, client.tenant, 1)
        headers = {"Accept": "text/event-stream", **client._auth_headers()}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        request = client._http.build_request(
            "GET", path, params=params(**self._query), headers=headers, timeout=STREAM_TIMEOUT
        )
        response = client._http.send(request, stream=True)
        if response.status_code == 200:
            return response
        try:
            response.read()
        finally:
            response.close()
        error = error_from_response(response)
        if response.status_code == 401 and client.session is not None:
            client._ensure_token(refused=client.session.access_token)
            raise ConnectionFailed(str(error), code="TOKEN_REFRESHED")
        raise error

    def _messages(self) -> Iterator[ServerSentEvent]:
        response = self._pending or self._connect()
        self._pending = None
        self._response = response
        try:
            decoder = Decoder()
            for line in response.iter_lines():
                message = decoder.feed(line)
                if decoder.last_event_id is not None:
                    self.last_event_id = decoder.last_event_id
                if message is not None:
                    yield message
        finally:
            response.close()
            self._response = None

    def close(self) -> None:
        self._closed = True
        for response in (self._response, self._pending):
            if response is not None:
                response.close()


# --- resource namespaces -----------------------------------------------------------------


class _Namespace:
    def __init__(self, client: Client) -> None:
        self._client = client


def _sync(op: Callable[P, Call[T]]) -> Callable[Concatenate[_Namespace, P], T]:
    def method(self: _Namespace, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._client.run(op(*args, **kwargs))

    return functools.wraps(op)(method)  # type: ignore[return-value]


def _pages(op: Callable[P, Call[m.Page[T]]]) -> Callable[Concatenate[_Namespace, P], Iterator[T]]:
    def method(self: _Namespace, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        kwargs.pop("page_token", None)
        return self._client.pages(op, *args, **kwargs)

    method.__doc__ = f"Every item of `{op.__name__}`, page after page."
    return method


class Events(_Namespace):
    create = _sync(ops.create_event)
    get = _sync(ops.get_event)
    list = _sync(ops.list_events)
    iterate = _pages(ops.list_events)
    transition = _sync(ops.transition_event)
    comment = _sync(ops.comment_event)
    evaluate = _sync(ops.evaluate_event)
    statistics = _sync(ops.event_statistics)

    def stream(
        self,
        *,
        tenant: str | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
    ) -> EventChanges:
        """Every change in the tenant's subtree from this call on (or after `last_event_id`).

        The stream is connected before this returns, so a report made next is on it."""
        source = self._client.sse(
            ops.events_stream_path(tenant),
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
        )
        return EventChanges(source.open())


class EventChanges:
    """The events stream as typed changes; `last_event_id` resumes a later stream."""

    def __init__(self, source: EventSource) -> None:
        self.source = source

    @property
    def last_event_id(self) -> str | None:
        return self.source.last_event_id

    def __iter__(self) -> Iterator[m.EventChange]:
        for message in self.source:
            yield m.EventChange(
                offset=int(message.id or 0),
                type=message.event,
                event=m.Event.model_validate_json(message.data),
            )

    def close(self) -> None:
        self.source.close()


class Tasks(_Namespace):
    list = _sync(ops.list_tasks)
    iterate = _pages(ops.list_tasks)
    get = _sync(ops.get_task)
    accept = _sync(ops.accept_task)
    start = _sync(ops.start_task)
    resolve = _sync(ops.resolve_task)
    decline = _sync(ops.decline_task)

    def for_event(
        self, event: str | m.Event, *, wait: float = 10.0, tenant: str | None = None
    ) -> m.Task | None:
        """The event's task, waiting up to `wait` seconds for command to make it
        (dispatch reads the report from the bus a moment after it is stored)."""
        name = event.name if isinstance(event, m.Event) else event
        deadline = time.monotonic() + wait
        while True:
            found = self._client.run(ops.list_tasks(event=name, tenant=tenant, page_size=1))
            if found.items or time.monotonic() >= deadline:
                return found.items[0] if found.items else None
            time.sleep(0.25)


class Layers(_Namespace):
    list = _sync(ops.list_layers)
    iterate = _pages(ops.list_layers)
    get = _sync(ops.get_layer)
    create = _sync(ops.create_layer)
    delete = _sync(ops.delete_layer)
    import_features = _sync(ops.import_features)


class Map(_Namespace):
    locate = _sync(ops.locate)


class Twin(_Namespace):
    entities = _sync(ops.list_entities)
    iterate = _pages(ops.list_entities)
    get = _sync(ops.get_entity)
    ingest = _sync(ops.ingest_telemetry)


class Points(_Namespace):
    accounts = _sync(ops.list_points_accounts)
    iterate = _pages(ops.list_points_accounts)
    get = _sync(ops.get_points_account)
    create = _sync(ops.create_points_account)
    credit = _sync(ops.credit_points)
    redeem = _sync(ops.redeem_points)
    ledger = _sync(ops.list_ledger_entries)


class Forms(_Namespace):
    list = _sync(ops.list_forms)
    get = _sync(ops.get_form)
    create_record = _sync(ops.create_form_record)
    records = _sync(ops.list_form_records)
    iterate_records = _pages(ops.list_form_records)
