"""Sign-in for people: the OAuth 2.0 token endpoint, revocation, the JWKS and "who am I".

`POST /v1/auth/token` follows RFC 6749 (form fields): `grant_type=password` with
username and password, or `grant_type=refresh_token`. Access tokens are JWTs signed
by the identity service (EdDSA); anyone can verify them with `/.well-known/jwks.json`.
These routes are public by nature and limited per client address; the identity
service locks an account after repeated wrong passwords.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request, Security
from fastapi.responses import Response
from pydantic import BaseModel

from gateway.auth import access, limit_anonymous
from gateway.errors import ApiError, call
from gateway.security.sources import gateway_principal
from grassroots.empower.v1 import identity_service_pb2 as pb
from services.kit.errors import FieldViolation
from services.kit.principal import Principal

router = APIRouter(tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


class PrincipalOut(BaseModel):
    subject: str
    kind: str
    tenant: str
    roles: list[str]
    scopes: list[str]
    app: str


def _as_gateway(request: Request) -> tuple[tuple[str, bytes], ...]:
    return gateway_principal(request.app.state.settings.service_tenant).to_metadata()


def _missing(field: str) -> ApiError:
    return ApiError(400, f"{field} is required", violations=[FieldViolation(field, "is required")])


@router.post(
    "/v1/auth/token",
    response_model=TokenOut,
    summary="Sign in (password grant) or refresh tokens (refresh_token grant)",
    dependencies=[Depends(limit_anonymous)],
)
async def token(
    request: Request,
    grant_type: Annotated[Literal["password", "refresh_token"], Form()],
    username: Annotated[str | None, Form(max_length=128)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    refresh_token: Annotated[str | None, Form(max_length=512)] = None,
) -> TokenOut:
    identity = request.app.state.upstreams.identity
    if grant_type == "password":
        if not username:
            raise _missing("username")
        if not password:
            raise _missing("password")
        rpc = identity.Login(
            pb.LoginRequest(username=username, password=password), metadata=_as_gateway(request)
        )
    else:
        if not refresh_token:
            raise _missing("refresh_token")
        rpc = identity.RefreshToken(
            pb.RefreshTokenRequest(refresh_token=refresh_token), metadata=_as_gateway(request)
        )
    issued = await call(rpc)
    return TokenOut(
        access_token=issued.access_token,
        token_type=issued.token_type or "Bearer",
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
    )


@router.post(
    "/v1/auth/revoke",
    status_code=200,
    summary="Sign out: revoke a refresh token and the rest of its sign-in (RFC 7009)",
    dependencies=[Depends(limit_anonymous)],
)
async def revoke(request: Request, token: Annotated[str, Form(max_length=512)]) -> Response:
    await call(
        request.app.state.upstreams.identity.RevokeRefreshToken(
            pb.RevokeRefreshTokenRequest(refresh_token=token), metadata=_as_gateway(request)
        )
    )
    return Response(status_code=200)


@router.get(
    "/.well-known/jwks.json",
    summary="Public keys that verify access tokens",
    dependencies=[Depends(limit_anonymous)],
)
async def jwks(request: Request) -> Response:
    keys = await call(
        request.app.state.upstreams.identity.GetJwks(
            pb.GetJwksRequest(), metadata=_as_gateway(request)
        )
    )
    return Response(
        keys.json, media_type="application/json", headers={"Cache-Control": "max-age=60"}
    )


@router.get("/v1/me", response_model=PrincipalOut, summary="Who the gateway thinks you are")
async def me(who: Annotated[Principal, Security(access(""))]) -> dict[str, Any]:
    return {
        "subject": who.subject,
        "kind": who.kind,
        "tenant": who.tenant,
        "roles": list(who.roles),
        "scopes": sorted(who.scopes),
        "app": who.app,
    }
