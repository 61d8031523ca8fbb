"""Sign-in for people: the OAuth 2.0 token endpoint, revocation, the JWKS and "who am I".

`POST /v1/auth/token` follows RFC 6749 (form fields): `grant_type=password` with
username and password (usernames are unique per tenant node: `name@tenant-id`, or a
`tenant` field, names the node when a name is used at several), or
`grant_type=refresh_token`; its errors are RFC 6749's
`{"error": "invalid_grant", "error_description": ...}`, not the platform's shape, so
OAuth client libraries understand them. Revocation follows RFC 7009. Access tokens are JWTs signed
by the identity service (EdDSA); anyone can verify them with `/.well-known/jwks.json`.
These routes are public by nature and limited per client address; the identity
service delays further attempts, growing, after repeated failures for a name or
from an address (it is told the client's address).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from gateway.auth import access, call_metadata, calls, limit_anonymous, signed_in
from gateway.errors import ApiError, call
from gateway.schemas.identity import PasswordChange
from gateway.security.sources import gateway_principal
from grassroots.empower.v1 import identity_service_pb2 as pb
from services.kit.principal import Principal

SERVICE = "grassroots.empower.v1.IdentityService"
router = APIRouter(tags=["auth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None = Field(
        None, description="absent when password_change_required (RFC 6749 makes it optional)"
    )
    password_change_required: bool = Field(
        False,
        description="someone else set this account's password: the access token can only "
        "change it (POST /v1/me:changePassword), which answers full tokens",
    )

    def body(self) -> dict[str, Any]:
        """The JSON answer, without a refresh token that was not issued."""
        return self.model_dump(exclude_none=True)


class PrincipalOut(BaseModel):
    subject: str
    kind: str
    tenant: str
    roles: list[str]
    scopes: list[str]
    app: str


def _as_gateway(request: Request) -> tuple[tuple[str, bytes], ...]:
    return gateway_principal(request.app.state.settings.service_tenant).to_metadata()


FORM = "application/x-www-form-urlencoded"
_FORM_BODY = {
    "required": True,
    "content": {
        FORM: {
            "schema": {
                "type": "object",
                "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
                    "username": {
                        "type": "string",
                        "maxLength": 128,
                        "description": "The sign-in name; `name@tenant-id` names the "
                        "account's tenant node when the name is used at several nodes",
                    },
                    "tenant": {
                        "type": "string",
                        "maxLength": 200,
                        "description": "The account's tenant node (id), as `@tenant-id` "
                        "in the username would; optional",
                    },
                    "password": {"type": "string", "maxLength": 256, "format": "password"},
                    "refresh_token": {"type": "string", "maxLength": 512},
                },
            }
        }
    },
}


class OAuthErrorOut(BaseModel):
    """RFC 6749 section 5.2: what OAuth client libraries expect from a token endpoint."""

    error: Literal["invalid_request", "invalid_grant", "unsupported_grant_type"]
    error_description: str


_OAUTH_ERROR: dict[str, Any] = {
    "model": OAuthErrorOut,
    "description": "An RFC 6749 error: `invalid_request` (not a form body, a field "
    "missing or too long), `unsupported_grant_type`, or `invalid_grant` (wrong username "
    "or password, too many attempts, disabled account, expired, used or revoked refresh token)",
    "content": {
        "application/json": {
            "example": {
                "error": "invalid_grant",
                "error_description": "wrong username or password",
            }
        }
    },
}
_REVOKE_BODY = {
    "required": True,
    "content": {
        FORM: {
            "schema": {
                "type": "object",
                "required": ["token"],
                "properties": {
                    "token": {"type": "string", "maxLength": 512},
                    "token_type_hint": {"type": "string", "maxLength": 32},
                },
            }
        }
    },
}
_FIELD_LIMITS = {
    "username": 128,
    "tenant": 200,
    "password": 256,
    "refresh_token": 512,
    "token": 512,
    "token_type_hint": 32,
}


class OAuthError(Exception):
    """A token endpoint error in RFC 6749's shape (section 5.2), always 400 here."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=400,
            headers=NO_STORE,
        )


async def _form(request: Request, example: str) -> dict[str, str]:
    """The form fields, or invalid_request when the body is not a form (JSON, say)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise OAuthError(
            "invalid_request",
            f"this endpoint takes a form body ({FORM}, RFC 6749), not "
            f"{content_type or 'a body without a content type'}; send {example}",
        )
    fields: dict[str, str] = {}
    for name, value in (await request.form()).multi_items():
        if not isinstance(value, str):
            raise OAuthError("invalid_request", f"{name} must be a text field")
        if name in fields:
            raise OAuthError("invalid_request", f"{name} is repeated")
        limit = _FIELD_LIMITS.get(name)
        if limit is not None and len(value) > limit:
            raise OAuthError("invalid_request", f"{name} must have at most {limit} characters")
        fields[name] = value
    return fields


def _needed(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"{name} is required")
    return value


async def _issue(request: Request) -> TokenOut:
    fields = await _form(request, "grant_type=password&username=...&password=...")
    grant_type = _needed(fields, "grant_type")
    identity = request.app.state.upstreams.identity
    if grant_type == "password":
        rpc = identity.Login(
            pb.LoginRequest(
                username=_needed(fields, "username"),
                password=_needed(fields, "password"),
                client_address=request.app.state.guard.source(request),
                tenant=fields.get("tenant", ""),
            ),
            metadata=_as_gateway(request),
        )
    elif grant_type == "refresh_token":
        rpc = identity.RefreshToken(
            pb.RefreshTokenRequest(refresh_token=_needed(fields, "refresh_token")),
            metadata=_as_gateway(request),
        )
    else:
        raise OAuthError(
            "unsupported_grant_type",
            f"grant_type {grant_type[:40]!r} is not supported; use password or refresh_token",
        )
    try:
        issued = await call(rpc)
    except ApiError as exc:
        # Bad credentials, held-back attempts, disabled accounts and bad refresh tokens are all
        # invalid_grant (400); overload and outages keep the platform's shape.
        if exc.http_status in (400, 401):
            raise OAuthError("invalid_grant", exc.message) from None
        raise
    return token_out(issued)


def token_out(issued: pb.Token) -> TokenOut:
    return TokenOut(
        access_token=issued.access_token,
        token_type=issued.token_type or "Bearer",
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token or None,
        password_change_required=issued.password_change_required,
    )


@router.post(
    "/v1/auth/token",
    response_model=TokenOut,
    summary="Sign in (password grant) or refresh tokens (refresh_token grant)",
    dependencies=[Depends(limit_anonymous)],
    openapi_extra={"requestBody": _FORM_BODY},
    responses={400: _OAUTH_ERROR},
)
@calls(SERVICE, "Login")
@calls(SERVICE, "RefreshToken")
async def token(request: Request) -> Response:
    """RFC 6749 token endpoint: a form body in, tokens or `{"error": ...}` out, never cached."""
    try:
        issued = await _issue(request)
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(issued.body(), headers=NO_STORE)


@router.post(
    "/v1/auth/revoke",
    status_code=200,
    summary="Sign out: revoke a refresh token and the rest of its sign-in (RFC 7009)",
    dependencies=[Depends(limit_anonymous)],
    openapi_extra={"requestBody": _REVOKE_BODY},
    responses={400: _OAUTH_ERROR},
)
@calls(SERVICE, "RevokeRefreshToken")
async def revoke(request: Request) -> Response:
    """An unknown, malformed or already revoked token answers 200 too (RFC 7009, 2.2):
    the caller's goal, that the token no longer works, holds either way."""
    try:
        token = _needed(await _form(request, "token=..."), "token")
    except OAuthError as exc:
        return exc.response()
    try:
        await call(
            request.app.state.upstreams.identity.RevokeRefreshToken(
                pb.RevokeRefreshTokenRequest(refresh_token=token), metadata=_as_gateway(request)
            )
        )
    except ApiError as exc:
        if exc.http_status not in (400, 401, 404):
            raise
    return Response(status_code=200, headers=NO_STORE)


@router.get(
    "/.well-known/jwks.json",
    summary="Public keys that verify access tokens",
    dependencies=[Depends(limit_anonymous)],
)
@calls(SERVICE, "GetJwks")
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
async def me(who: Annotated[Principal, Security(signed_in())]) -> dict[str, Any]:
    """Answered from the caller's verified credentials: no component is asked."""
    return {
        "subject": who.subject,
        "kind": who.kind,
        "tenant": who.tenant,
        "roles": list(who.roles),
        "scopes": sorted(who.scopes),
        "app": who.app,
    }


@router.post(
    "/v1/me:changePassword",
    response_model=TokenOut,
    response_model_exclude_none=True,
    summary="Change your own password; answers new tokens and signs other sessions out",
)
@calls(SERVICE, "ChangePassword")
async def change_password(
    body: PasswordChange,
    request: Request,
    who: Annotated[Principal, Security(access("empower"))],
) -> Response:
    """The way out of a password someone else set (a new account's, a reset one): its
    sign-in only gets a token for this call. A wrong current password is 400 naming
    `current_password` and counts as a failed sign-in. Audited."""
    issued = await call(
        request.app.state.upstreams.identity.ChangePassword(
            pb.ChangePasswordRequest(
                current_password=body.current_password.get_secret_value(),
                new_password=body.new_password.get_secret_value(),
                client_address=request.app.state.guard.source(request),
            ),
            metadata=call_metadata(who),
        )
    )
    return JSONResponse(token_out(issued).body(), headers=NO_STORE)
