"""Who is calling, whether they may, and how often: the dependencies every route uses.

A route states what it needs in its signature and the RPCs it calls above it:

    Who = Annotated[Principal, Security(access("events"))]
    @router.get(...)
    @calls("grassroots.events.v1.EventsService", "GetEvent")
    async def get_event(..., who: Who): ...

    Anyone = Annotated[Principal, Depends(public("events"))]    # meant to be public
    Passerby = Annotated[Principal, Depends(public_intake("events"))]  # reports, ADR 35
    Reader = Annotated[Principal, Security(public_or_access("events"))]  # public, or keyed
    Me = Annotated[Principal, Security(signed_in())]            # calls no component

`access` authenticates (an access token or an API key), charges the rate limits
(app or person, and tenant) and checks the scopes - in that order, so a caller
without credentials learns nothing about limits or scopes. Before it authenticates,
it refuses (429) a source address that has used up its failed authentications
(`gateway.security.preauth`); the source is the peer, or `X-Forwarded-For` when the
peer is a configured proxy (`gateway.security.client_address`).

The scopes a route needs are never written in the gateway: they are those its RPCs'
contracts declare (the `access` method option, read by `services.kit.scopes`), the
same the services enforce. The rules:

* A route calling one RPC needs that RPC's scope. One calling several (NGSI-LD's
  create that removes a half-made entity, Open311's lookups) stacks `@calls` once
  per RPC and needs every scope they name, since the service would refuse it
  part-way otherwise.
* An RPC declared `any_principal` adds no scope: any signed-in caller passes the
  gateway and the service's domain decides (a user reads their own record, a
  secretary every record of her village), answering 403 or 404 itself.
* A route that calls no component (`GET /v1/me`, which answers from the caller's
  verified credentials) uses `signed_in()`; it has no scope to take from anywhere.
* A public route without a caller's principal (sign-in, sign-out, the JWKS) calls
  as the gateway itself, which holds `identity:verify` only; its `@calls` name RPCs
  of that scope (tests/contract/test_route_access.py checks it).
* A route under `access` without `@calls` is refused (403) after authentication:
  fail closed. `access` takes a component's name only, so a scope cannot be written
  by hand; tests/contract/test_route_access.py fails when a route's `@calls` differ
  from the RPCs its code reaches or name another component's.

A route with none of these dependencies has no principal and cannot call a component;
tests/security walks the OpenAPI and fails on any route that is not one or the other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from gateway.errors import ApiError
from gateway.security.authenticator import API_KEY_PREFIX, Authenticator, Caller
from gateway.security.client_address import ClientAddresses, parse_networks
from gateway.security.preauth import AuthenticationFailures
from gateway.security.ratelimit import Decision, Limit, RateLimiter
from gateway.security.sources import IdentitySources
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from gateway.usage import CALLER_TENANT
from services.kit import context as ctx
from services.kit.components import NAMES
from services.kit.errors import Unauthenticated
from services.kit.principal import ANONYMOUS_ROLE, Principal
from services.kit.scopes import scope_of

# The RPCs (`/pkg.Service/Method`) each route's endpoint calls, as `@calls` declares them.
ENDPOINT_RPCS: dict[Callable[..., Any], tuple[str, ...]] = {}
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An access token from POST /v1/auth/token, or an app's API key (grk_...).",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An app's API key (grk_...)."
)


@dataclass
class Guard:
    """What `access` needs at request time; lives on `app.state.guard`."""

    authenticator: Authenticator | None
    limiter: RateLimiter
    user_requests_per_minute: int
    tenant_requests_per_minute: int
    anonymous_requests_per_minute: int
    public_tenant: str
    anonymous_reports_per_hour: int = 10
    clients: ClientAddresses = field(default_factory=ClientAddresses)
    # Failed authentications per source; by default as many as anonymous calls.
    failures: AuthenticationFailures | None = None
    fixed_caller: Caller | None = None  # benchmarks only: auth "turned off"

    @classmethod
    def from_settings(cls, settings: GatewaySettings, fixed_caller: Caller | None = None) -> Guard:
        """The limits and rate-limit store a gateway (REST or gRPC edge) is configured with."""
        redis = (
            Redis.from_url(settings.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
            if settings.redis_url
            else None
        )
        limiter = RateLimiter(redis)
        return cls(
            authenticator=None,
            limiter=limiter,
            user_requests_per_minute=settings.user_requests_per_minute,
            tenant_requests_per_minute=settings.tenant_requests_per_minute,
            anonymous_requests_per_minute=settings.anonymous_requests_per_minute,
            public_tenant=settings.public_tenant,
            anonymous_reports_per_hour=settings.anonymous_reports_per_hour,
            clients=ClientAddresses(parse_networks(settings.trusted_proxies)),
            failures=AuthenticationFailures(limiter, settings.unauthenticated_requests_per_minute),
            fixed_caller=fixed_caller,
        )

    def connect(self, upstreams: Upstreams, settings: GatewaySettings) -> None:
        """Start authenticating: keys and signing keys come from the identity service."""
        sources = IdentitySources(upstreams, settings.service_tenant)
        self.authenticator = Authenticator(
            sources.jwks,
            sources.key,
            key_cache_seconds=settings.api_key_cache_seconds,
            key_cache_size=settings.api_key_cache_size,
        )

    def __post_init__(self) -> None:
        if self.failures is None:
            self.failures = AuthenticationFailures(self.limiter, self.anonymous_requests_per_minute)

    def source(self, request: Request) -> str:
        """The client's address, as far as the configured proxies vouch for it."""
        peer = request.client.host if request.client else None
        return self.clients.resolve(peer, request.headers.get("x-forwarded-for"))

    async def authenticate(self, bearer: str | None, api_key: str | None, source: str) -> Caller:
        """`caller`, behind the source's budget of failed authentications."""
        if self.fixed_caller is not None:
            return self.fixed_caller
        assert self.failures is not None  # set in __post_init__
        refused = self.failures.refused(source)
        if refused is not None:
            raise _rate_limited("requests without valid credentials from your address", refused)
        try:
            return await self.caller(bearer, api_key)
        except ApiError as exc:
            if exc.http_status != 401:
                raise
            decision = await self.failures.failed(source)
            if not decision.allowed:
                raise _rate_limited(
                    "requests without valid credentials from your address", decision
                ) from None
            raise

    async def caller(self, bearer: str | None, api_key: str | None) -> Caller:
        if self.fixed_caller is not None:
            return self.fixed_caller
        if self.authenticator is None:
            raise ApiError(503, "authentication is not ready yet", headers={"Retry-After": "1"})
        try:
            if api_key:
                return await self.authenticator.from_api_key(api_key)
            if bearer:
                if bearer.startswith(API_KEY_PREFIX):
                    return await self.authenticator.from_api_key(bearer)
                return await self.authenticator.from_access_token(bearer)
        except Unauthenticated as exc:
            raise _unauthenticated(exc.message) from None
        raise _unauthenticated("send an access token (Authorization: Bearer) or an API key")

    async def admit(
        self, bearer: str | None, api_key: str | None, scopes: Collection[str], source: str
    ) -> Principal:
        """Authenticate (unless `source` has spent its failures), charge the limits,
        check every one of `scopes` ("" stands for none), in that order.

        REST routes and the gRPC edge both admit callers here, so both answer the same
        credentials, quotas and scopes the same way (as `ApiError`s in HTTP terms).
        """
        caller = await self.authenticate(bearer, api_key, source)
        await self.charge(caller)
        for scope in sorted(s for s in scopes if s):
            if not caller.principal.has_scope(scope):
                raise ApiError(403, f"this call needs the {scope!r} scope", reason="MISSING_SCOPE")
        return caller.principal

    async def charge(self, caller: Caller) -> None:
        if self.fixed_caller is not None:
            return
        who = caller.principal
        per_minute = caller.quota_per_minute or self.user_requests_per_minute
        decision = await self.limiter.check(
            Limit.per_minute_with_burst(f"sub:{who.subject}", per_minute),
            Limit.per_minute_with_burst(f"tenant:{who.tenant}", self.tenant_requests_per_minute),
        )
        if not decision.allowed:
            raise _rate_limited(f"{who.subject} or its tenant", decision)


def _rate_limited(whose: str, decision: Decision) -> ApiError:
    return ApiError(
        429,
        f"rate limit reached for {whose}; retry later",
        reason="RATE_LIMITED",
        headers={"Retry-After": str(decision.retry_after_seconds)},
    )


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="grassroots"'})


def calls(service: str, method: str) -> Callable[[Endpoint], Endpoint]:
    """Declare an RPC a route calls; the route then needs the scope its contract names.

    Put it under the router's decorator, once per RPC the route may call. A name the
    contracts do not know, or one whose contract declares no access rule, fails at
    import, so a route cannot ship with a mistyped or scopeless RPC.
    """
    path = f"/{service}/{method}"
    if scope_of(path) is None:
        raise ValueError(f"{path} is not an RPC with a declared scope")

    def mark(endpoint: Endpoint) -> Endpoint:
        # Decorators apply bottom-up; keep the RPCs in the order they are written.
        ENDPOINT_RPCS[endpoint] = (path, *ENDPOINT_RPCS.get(endpoint, ()))
        return endpoint

    return mark


def endpoint_scopes(endpoint: Callable[..., Any]) -> frozenset[str] | None:
    """The scopes a route's endpoint needs: every non-empty scope of the RPCs it
    declares with `calls` (empty when they all admit any principal); None when it
    declares none."""
    rpcs = ENDPOINT_RPCS.get(endpoint)
    if rpcs is None:
        return None
    return frozenset(scope for scope in map(scope_of, rpcs) if scope)


def access(component: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: an authenticated, rate-limited principal holding every scope the
    contracts of the route's RPCs (`calls`) declare. `component` names the component
    the route fronts; a scope cannot be given here (see the module's rules)."""
    if component not in NAMES:
        raise ValueError(f"access() takes a component ({', '.join(NAMES)}), not {component!r}")

    async def authorize(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),  # noqa: B008
        api_key: str | None = Security(api_key_scheme),
    ) -> Principal:
        guard: Guard = request.app.state.guard
        token = bearer.credentials if bearer is not None else None
        if api_key is None and token is None:
            api_key = await _open311_api_key(request)
        scopes = endpoint_scopes(request.scope.get("endpoint"))  # type: ignore[arg-type]
        principal = await guard.admit(token, api_key, scopes or (), guard.source(request))
        if scopes is None:  # fail closed, after authentication answered as usual
            raise ApiError(403, "this route declares no RPC and is refused", reason="MISSING_SCOPE")
        return _adopt(request, principal)

    authorize.__name__ = f"access_{component}"
    return authorize


def signed_in() -> Callable[..., Awaitable[Principal]]:
    """Dependency for a route that calls no component (`GET /v1/me`): any
    authenticated, rate-limited caller; there is no RPC whose scope it could need."""

    async def authenticated(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),  # noqa: B008
        api_key: str | None = Security(api_key_scheme),
    ) -> Principal:
        guard: Guard = request.app.state.guard
        token = bearer.credentials if bearer is not None else None
        principal = await guard.admit(token, api_key, (), guard.source(request))
        return _adopt(request, principal)

    return authenticated


def public(component: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency for the parts meant to be public: an anonymous reader of shared data.

    The anonymous principal acts for the configured public tenant (the city) with
    only `<component>:read`, so it sees what is published for everyone and nothing
    of a village's own; it is rate limited per client address.
    """
    return _passer_by(f"{component}:read", f"public_{component}")


def public_intake(component: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency for the narrow public intake (ADR 35): reports without an account.

    The caller is the anonymous principal of `public`, holding `<component>:intake`
    instead of `:read`, so the only RPCs it reaches are those the contract gives that
    scope; the component decides which villages take such reports and how many.
    """
    return _passer_by(f"{component}:intake", f"public_intake_{component}")


def _passer_by(scope: str, name: str) -> Callable[..., Awaitable[Principal]]:
    """The anonymous principal holding one scope, rate limited per client address."""
    # One principal per public tenant, so it is serialised and signed once, not per call.
    known: dict[str, Principal] = {}

    async def anonymous(request: Request) -> Principal:
        guard: Guard = request.app.state.guard
        await limit_anonymous(request)
        who = known.get(guard.public_tenant)
        if who is None:
            who = known[guard.public_tenant] = Principal(
                subject="anonymous",
                tenant=guard.public_tenant,
                kind="app",
                roles=(ANONYMOUS_ROLE,),
                scopes=frozenset({scope}),
                app="anonymous",
            )
        return _adopt(request, who)

    anonymous.__name__ = name
    return anonymous


async def limit_anonymous_reports(request: Request) -> None:
    """Charge the client address's hourly bucket of reports without an account."""
    guard: Guard = request.app.state.guard
    if guard.fixed_caller is not None:
        return
    decision = await guard.limiter.check(
        Limit.per_hour(f"anon-report:{guard.source(request)}", guard.anonymous_reports_per_hour)
    )
    if not decision.allowed:
        raise _rate_limited("reports without an account from your address", decision)


async def limit_anonymous_photos(request: Request) -> None:
    """Charge the client address's hourly bucket of photos without an account: as
    many as reports, since each photo goes with one report."""
    guard: Guard = request.app.state.guard
    if guard.fixed_caller is not None:
        return
    decision = await guard.limiter.check(
        Limit.per_hour(f"anon-photo:{guard.source(request)}", guard.anonymous_reports_per_hour)
    )
    if not decision.allowed:
        raise _rate_limited("photos without an account from your address", decision)


def public_or_access(component: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency for reads that are public but richer with credentials (Open311).

    Without credentials the caller is the anonymous reader of `public`; with any, they
    must be valid (401 otherwise) and hold `<component>:read` (403), as with `access`.
    """
    keyed = access(component)
    anonymous = public(component)

    async def reader(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),  # noqa: B008
        api_key: str | None = Security(api_key_scheme),
    ) -> Principal:
        if bearer is None and api_key is None and await _open311_api_key(request) is None:
            return await anonymous(request)
        return await keyed(request, bearer, api_key)

    reader.__name__ = f"public_or_access_{component}"
    return reader


async def limit_anonymous(request: Request) -> None:
    """Charge the client address's anonymous bucket (sign-in, public pages)."""
    guard: Guard = request.app.state.guard
    if guard.fixed_caller is not None:
        return
    decision = await guard.limiter.check(
        Limit.per_minute_with_burst(
            f"anon:{guard.source(request)}", guard.anonymous_requests_per_minute
        )
    )
    if not decision.allowed:
        raise _rate_limited("anonymous calls from your address", decision)


async def _open311_api_key(request: Request) -> str | None:
    """Open311 clients send `api_key` as a parameter (form field on POST), not a header."""
    if not request.url.path.startswith("/open311/"):
        return None
    key = request.query_params.get("api_key")
    if key is None and request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get("api_key")
            key = value if isinstance(value, str) else None
    return key or None


def _adopt(request: Request, who: Principal) -> Principal:
    request.state.principal = who
    return who


def call_metadata(who: Principal) -> tuple[tuple[str, str | bytes], ...]:
    """Metadata every gRPC call from the gateway carries: signed principal and request id."""
    CALLER_TENANT.set(who.tenant)  # the call is counted for this tenant (gateway.usage)
    metadata: list[tuple[str, str | bytes]] = list(who.to_metadata())
    request_id = ctx.current_request_id()
    if request_id:
        metadata.append((ctx.REQUEST_ID_HEADER, request_id))
    return tuple(metadata)
