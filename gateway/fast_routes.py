"""The gateway's hottest routes answered without FastAPI's routing (ADR 33).

A device's reading, a report and reading an event back are each called thousands of
times a second, and through FastAPI each request spent more of the gateway's CPU on
trying routes, solving dependencies and the framework's layers than on admitting the
caller and forwarding the call. `FastRoutes` is an ASGI middleware that sits innermost
of the gateway's own, so request ids, metrics, security headers, body limits,
idempotent replays and CORS still apply as to every route, and answers a few routes
itself when the request is the plain case: no query string, credentials in a header
(each header read at most once in the request), a path whose parameters match the
route's patterns, and, for a body, JSON the route's model accepts.

Each `FastRoute` stands in for one FastAPI route: it admits the caller with the same
`Guard` and the scopes the route's contract declares (`@calls`), and answers with the
same code the route runs. What it does not find plain - a body the model refuses, a
malformed header, no credentials, a query parameter - goes on, body and all, to the
FastAPI route, which answers it as before. That is decided before the caller is
admitted, so no request is charged to the rate limits twice. A fast route should only
be added where a profile shows the framework costing more than the work, and with a
test that sends the same requests both ways and compares the answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import Guard, endpoint_scopes
from gateway.errors import ApiError
from services.kit.principal import Principal

# Headers every fast route reads: credentials, the body's type, the client's address.
_COMMON = frozenset({b"authorization", b"x-api-key", b"content-type", b"x-forwarded-for"})
_Credentials = tuple[str | None, str | None]  # (bearer token, API key)
Model = TypeVar("Model", bound=BaseModel)


class FastRoute:
    """One route's plain case; subclasses say what is plain (`take`) and answer it.

    `patterns` gives each path parameter's pattern (anchored, as the route declares it);
    the path is the route's own template with those filled in.
    """

    method: ClassVar[str]
    body: ClassVar[bool] = False  # reads a JSON body
    headers: ClassVar[frozenset[bytes]] = frozenset()  # further headers `take` reads

    def __init__(self, route: APIRoute, patterns: Mapping[str, str]) -> None:
        if self.method not in (route.methods or ()):
            raise ValueError(f"{route.path} does not answer {self.method}")
        scopes = endpoint_scopes(route.endpoint)
        if scopes is None:
            raise ValueError(f"{route.path} declares no RPC")
        self.route = route
        self.scopes = scopes
        self.path = _template(route.path, patterns)
        self.reads = _COMMON | self.headers

    def take(self, params: dict[str, str], headers: dict[bytes, str], body: bytes) -> Any:
        """What `answer` needs when the request is plainly valid for the route, else None
        (the route then answers it). Runs before the caller is admitted."""
        raise NotImplementedError

    async def answer(self, state: Any, who: Principal, taken: Any) -> Response:
        """What the route answers `who` for the request `take` returned."""
        raise NotImplementedError


class FastRoutes:
    """See the module docstring: answers `routes`' plain cases, passes on the rest."""

    def __init__(self, app: ASGIApp, routes: Sequence[FastRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._plain(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        fast, params, headers, credentials = found
        body = b""
        if fast.body:
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
        taken = fast.take(params, headers, body)
        if taken is None:
            await self.app(scope, _replaying(body, receive) if fast.body else receive, send)
            return
        try:
            who = await self._admit(scope, fast, params, headers, *credentials)
            response = await fast.answer(scope["app"].state, who, taken)
        except ApiError as exc:
            response = exc.response()
        await response(scope, receive, send)

    def _plain(
        self, scope: Scope
    ) -> tuple[FastRoute, dict[str, str], dict[bytes, str], _Credentials] | None:
        """The fast route, its path parameters, the headers it reads and the caller's
        credentials, when the request may be its plain case; else None."""
        if scope["type"] != "http" or scope["query_string"]:
            return None
        for fast in self.routes:
            if fast.method != scope["method"]:
                continue
            matched = fast.path.fullmatch(scope["path"])
            if matched is None:
                continue
            headers = _headers(scope, fast.reads)
            if headers is None:
                return None
            credentials = _credentials(headers)
            if credentials == (None, None):
                return None
            if fast.body:
                kind = headers.get(b"content-type", "")
                if kind.split(";", 1)[0].strip() != "application/json":
                    return None
            return fast, matched.groupdict(), headers, credentials
        return None

    @staticmethod
    async def _admit(
        scope: Scope,
        fast: FastRoute,
        params: dict[str, str],
        headers: dict[bytes, str],
        bearer: str | None,
        api_key: str | None,
    ) -> Principal:
        """The caller, as the route's `access` dependency admits them."""
        guard: Guard = scope["app"].state.guard
        peer = scope.get("client")
        source = guard.clients.resolve(peer[0] if peer else None, headers.get(b"x-forwarded-for"))
        # As FastAPI's router does on a match, before any dependency: metrics and traces
        # name the route, a refused caller's answer included.
        scope["route"] = fast.route
        scope["endpoint"] = fast.route.endpoint
        scope["path_params"] = params
        who = await guard.admit(bearer, api_key, fast.scopes, source)
        scope.setdefault("state", {})["principal"] = who
        return who


def json_body(body: bytes, model: type[Model]) -> Model | None:
    """The body as a route reads it (JSON, then its model), or None for the route to
    refuse in its own words."""
    try:
        return model.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):
        return None


def _credentials(headers: dict[bytes, str]) -> _Credentials:
    """(bearer token, API key), as FastAPI's HTTPBearer and APIKeyHeader read them."""
    kind, token = get_authorization_scheme_param(headers.get(b"authorization"))
    bearer = token if kind.lower() == "bearer" and token else None
    return bearer, headers.get(b"x-api-key") or None


def _template(path: str, patterns: Mapping[str, str]) -> re.Pattern[str]:
    """The route's path template as a pattern, each parameter matched by its own."""
    names = re.findall(r"\{([^}]+)\}", path)
    if sorted(names) != sorted(patterns):
        raise ValueError(f"{path} has parameters {names}, patterns given for {list(patterns)}")
    text = re.escape(path)
    for name in names:
        inner = patterns[name].removeprefix("^").removesuffix("$")
        text = text.replace(re.escape("{" + name + "}"), f"(?P<{name}>{inner})", 1)
    return re.compile(text)


def _headers(scope: Scope, wanted: frozenset[bytes]) -> dict[bytes, str] | None:
    """The `wanted` headers sent, decoded as Starlette does; None when one comes twice
    (which one the route would read is not this middleware's to guess)."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key in wanted:
            if key in found:
                return None
            found[key] = value.decode("latin-1")
    return found


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app behind: the body already read, then whatever comes next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
