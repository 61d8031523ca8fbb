"""REST for administering identities: a tenant node's users, apps and API keys.

Creating or disabling users needs `users:write`; registering apps and issuing,
listing or revoking their keys needs `apps:write`. Reading users and apps is open to
any signed-in caller at the gateway, as the contract says: the identity service answers
403 unless the caller holds `empower:read` or the matching `:write` scope (anyone may
read their own user). It also refuses grants beyond the caller's own scopes.
A user's password is write-only, and a key's text is returned once, when it is
issued (with `Cache-Control: no-store`); every other answer carries key records only.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, Security
from google.protobuf.field_mask_pb2 import FieldMask

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.idempotency import WITHHOLD_HEADER
from gateway.patch_bodies import fields_sent
from gateway.schemas.identity import (
    RESOURCE_ID_PATTERN,
    TENANT_ID_PATTERN,
    ApiKeyList,
    ApiKeyOut,
    AppCreate,
    AppCreated,
    AppList,
    AppOut,
    AppUpdate,
    IssuedApiKey,
    PasswordReset,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
)
from grassroots.empower.v1 import identity_service_pb2 as pb
from services.kit.principal import Principal

router = APIRouter(prefix="/v1/tenants", tags=["identity"])
SERVICE = "grassroots.empower.v1.IdentityService"
Who = Annotated[Principal, Security(access("empower"))]
TenantId = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="tenant id")]
UserId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN)]
AppId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN)]
KeyId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="the key id")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]
# Answers that carry a new key's text: never cached, never repeated by a replay.
SHOWN_ONCE = {"Cache-Control": "no-store", WITHHOLD_HEADER: "key"}


def _id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def user_out(user: pb.User) -> UserOut:
    kind = pb.User.Kind.Name(user.kind).removeprefix("KIND_").lower()
    return UserOut(
        id=_id(user.name),
        name=user.name,
        username=user.username,
        display_name=user.display_name,
        kind=None if kind == "unspecified" else kind,  # type: ignore[arg-type]
        roles=list(user.roles),
        scopes=list(user.scopes),
        disabled=user.disabled,
        create_time=user.create_time.ToDatetime(tzinfo=UTC),
    )


def app_out(app: pb.App) -> AppOut:
    return AppOut(
        id=_id(app.name),
        name=app.name,
        display_name=app.display_name,
        scopes=list(app.scopes),
        quota_per_minute=app.quota_per_minute,
        create_time=app.create_time.ToDatetime(tzinfo=UTC),
    )


def api_key_out(key: pb.ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=_id(key.name),
        name=key.name,
        key_id=key.key_id,
        revoked=key.revoked,
        create_time=key.create_time.ToDatetime(tzinfo=UTC),
        revoke_time=key.revoke_time.ToDatetime(tzinfo=UTC) if key.HasField("revoke_time") else None,
    )


@router.post("/{tenant}/users", status_code=201, response_model=UserOut, summary="Create a user")
@calls(SERVICE, "CreateUser")
async def create_user(
    tenant: TenantId, body: UserCreate, request: Request, response: Response, who: Who
) -> UserOut:
    """Roles may grant only scopes the caller holds itself."""
    message = pb.CreateUserRequest(
        parent=f"tenants/{tenant}",
        user=pb.User(
            username=body.username,
            display_name=body.display_name,
            kind=pb.User.Kind.Value(f"KIND_{body.kind.upper()}"),
            roles=body.roles,
        ),
        password=body.password.get_secret_value() if body.password is not None else "",
    )
    rpc = request.app.state.upstreams.identity.CreateUser(message, metadata=call_metadata(who))
    created = user_out(await call(rpc, strip_prefix="user."))
    response.headers["Location"] = f"/v1/tenants/{tenant}/users/{created.id}"
    return created


@router.get("/{tenant}/users", response_model=UserList, summary="List users")
@calls(SERVICE, "ListUsers")
async def list_users(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> UserList:
    """Users of the node and of its subtree."""
    response = await call(
        request.app.state.upstreams.identity.ListUsers(
            pb.ListUsersRequest(
                parent=f"tenants/{tenant}", page_size=page_size, page_token=page_token
            ),
            metadata=call_metadata(who),
        )
    )
    return UserList(
        users=[user_out(u) for u in response.users], next_page_token=response.next_page_token
    )


@router.get("/{tenant}/users/{user}", response_model=UserOut, summary="Get a user")
@calls(SERVICE, "GetUser")
async def get_user(tenant: TenantId, user: UserId, request: Request, who: Who) -> UserOut:
    rpc = request.app.state.upstreams.identity.GetUser(
        pb.GetUserRequest(name=f"tenants/{tenant}/users/{user}"), metadata=call_metadata(who)
    )
    return user_out(await call(rpc))


@router.post("/{tenant}/users/{user}:disable", response_model=UserOut, summary="Disable a user")
@calls(SERVICE, "DisableUser")
async def disable_user(tenant: TenantId, user: UserId, request: Request, who: Who) -> UserOut:
    """No more sign-ins or token refreshes for this user."""
    rpc = request.app.state.upstreams.identity.DisableUser(
        pb.DisableUserRequest(name=f"tenants/{tenant}/users/{user}"), metadata=call_metadata(who)
    )
    return user_out(await call(rpc))


@router.post(
    "/{tenant}/apps", status_code=201, response_model=AppCreated, summary="Register an app"
)
@calls(SERVICE, "CreateApp")
async def create_app(
    tenant: TenantId, body: AppCreate, request: Request, response: Response, who: Who
) -> AppCreated:
    """Registers the app and issues its first API key, whose text is shown only here."""
    rpc = request.app.state.upstreams.identity.CreateApp(
        pb.CreateAppRequest(
            parent=f"tenants/{tenant}",
            app=pb.App(
                display_name=body.display_name,
                scopes=body.scopes,
                quota_per_minute=body.quota_per_minute,
            ),
        ),
        metadata=call_metadata(who),
    )
    created = await call(rpc, strip_prefix="app.")
    app = app_out(created.app)
    response.headers.update(SHOWN_ONCE)
    response.headers["Location"] = f"/v1/tenants/{tenant}/apps/{app.id}"
    return AppCreated(app=app, api_key=api_key_out(created.api_key), key=created.key)


@router.get("/{tenant}/apps", response_model=AppList, summary="List apps")
@calls(SERVICE, "ListApps")
async def list_apps(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> AppList:
    """Apps of the node and of its subtree."""
    response = await call(
        request.app.state.upstreams.identity.ListApps(
            pb.ListAppsRequest(
                parent=f"tenants/{tenant}", page_size=page_size, page_token=page_token
            ),
            metadata=call_metadata(who),
        )
    )
    return AppList(
        apps=[app_out(a) for a in response.apps], next_page_token=response.next_page_token
    )


@router.get("/{tenant}/apps/{app}", response_model=AppOut, summary="Get an app")
@calls(SERVICE, "GetApp")
async def get_app(tenant: TenantId, app: AppId, request: Request, who: Who) -> AppOut:
    rpc = request.app.state.upstreams.identity.GetApp(
        pb.GetAppRequest(name=f"tenants/{tenant}/apps/{app}"), metadata=call_metadata(who)
    )
    return app_out(await call(rpc))


@router.post(
    "/{tenant}/apps/{app}/apiKeys",
    status_code=201,
    response_model=IssuedApiKey,
    summary="Issue another API key (rotation)",
)
@calls(SERVICE, "CreateApiKey")
async def create_api_key(
    tenant: TenantId, app: AppId, request: Request, response: Response, who: Who
) -> IssuedApiKey:
    """Earlier keys keep working until they are revoked."""
    rpc = request.app.state.upstreams.identity.CreateApiKey(
        pb.CreateApiKeyRequest(parent=f"tenants/{tenant}/apps/{app}"), metadata=call_metadata(who)
    )
    issued = await call(rpc)
    response.headers.update(SHOWN_ONCE)
    return IssuedApiKey(api_key=api_key_out(issued.api_key), key=issued.key)


@router.get("/{tenant}/apps/{app}/apiKeys", response_model=ApiKeyList, summary="List an app's keys")
@calls(SERVICE, "ListApiKeys")
async def list_api_keys(tenant: TenantId, app: AppId, request: Request, who: Who) -> ApiKeyList:
    """Key records, newest first, without secrets."""
    response = await call(
        request.app.state.upstreams.identity.ListApiKeys(
            pb.ListApiKeysRequest(parent=f"tenants/{tenant}/apps/{app}"),
            metadata=call_metadata(who),
        )
    )
    return ApiKeyList(api_keys=[api_key_out(k) for k in response.api_keys])


@router.delete(
    "/{tenant}/apps/{app}/apiKeys/{api_key}", response_model=ApiKeyOut, summary="Revoke an API key"
)
@calls(SERVICE, "RevokeApiKey")
async def revoke_api_key(
    tenant: TenantId, app: AppId, api_key: KeyId, request: Request, who: Who
) -> ApiKeyOut:
    """Answers the revoked key's record; gateways refuse the key within seconds."""
    rpc = request.app.state.upstreams.identity.RevokeApiKey(
        pb.RevokeApiKeyRequest(name=f"tenants/{tenant}/apps/{app}/apiKeys/{api_key}"),
        metadata=call_metadata(who),
    )
    return api_key_out(await call(rpc))


def _paths(body: UserUpdate | AppUpdate) -> list[str]:
    return fields_sent(body, type(body).model_fields)


@router.patch("/{tenant}/users/{user}", response_model=UserOut, summary="Change a user")
@calls(SERVICE, "UpdateUser")
async def update_user(
    tenant: TenantId, user: UserId, body: UserUpdate, request: Request, who: Who
) -> UserOut:
    """Only the fields sent change. Your roles must be allowed to assign the user's
    current and new roles; new roles apply at the user's next token refresh."""
    paths = _paths(body)
    kind = pb.User.Kind.Value(f"KIND_{body.kind.upper()}") if body.kind else 0
    rpc = request.app.state.upstreams.identity.UpdateUser(
        pb.UpdateUserRequest(
            user=pb.User(
                name=f"tenants/{tenant}/users/{user}",
                display_name=body.display_name or "",
                kind=kind,  # type: ignore[arg-type]
                roles=body.roles or [],
            ),
            update_mask=FieldMask(paths=paths),
        ),
        metadata=call_metadata(who),
    )
    return user_out(await call(rpc, strip_prefix="user."))


@router.delete("/{tenant}/users/{user}", status_code=204, summary="Delete a user")
@calls(SERVICE, "DeleteUser")
async def delete_user(tenant: TenantId, user: UserId, request: Request, who: Who) -> Response:
    """Every session of the user is signed out; access tokens lapse within minutes."""
    await call(
        request.app.state.upstreams.identity.DeleteUser(
            pb.DeleteUserRequest(name=f"tenants/{tenant}/users/{user}"),
            metadata=call_metadata(who),
        )
    )
    return Response(status_code=204)


@router.post("/{tenant}/users/{user}:enable", response_model=UserOut, summary="Re-enable a user")
@calls(SERVICE, "EnableUser")
async def enable_user(tenant: TenantId, user: UserId, request: Request, who: Who) -> UserOut:
    rpc = request.app.state.upstreams.identity.EnableUser(
        pb.EnableUserRequest(name=f"tenants/{tenant}/users/{user}"), metadata=call_metadata(who)
    )
    return user_out(await call(rpc))


@router.post(
    "/{tenant}/users/{user}:resetPassword",
    response_model=UserOut,
    summary="Set a new password for another user",
)
@calls(SERVICE, "ResetUserPassword")
async def reset_user_password(
    tenant: TenantId, user: UserId, body: PasswordReset, request: Request, who: Who
) -> UserOut:
    """Clears the sign-in delay and signs the user out everywhere; the password is never echoed."""
    rpc = request.app.state.upstreams.identity.ResetUserPassword(
        pb.ResetUserPasswordRequest(
            name=f"tenants/{tenant}/users/{user}", password=body.password.get_secret_value()
        ),
        metadata=call_metadata(who),
    )
    return user_out(await call(rpc))


@router.patch("/{tenant}/apps/{app}", response_model=AppOut, summary="Change an app")
@calls(SERVICE, "UpdateApp")
async def update_app(
    tenant: TenantId, app: AppId, body: AppUpdate, request: Request, who: Who
) -> AppOut:
    """Only the fields sent change; scopes only ones you hold. Keys keep working and
    carry the new scopes once gateways' key caches expire (seconds)."""
    paths = _paths(body)
    rpc = request.app.state.upstreams.identity.UpdateApp(
        pb.UpdateAppRequest(
            app=pb.App(
                name=f"tenants/{tenant}/apps/{app}",
                display_name=body.display_name or "",
                scopes=body.scopes or [],
                quota_per_minute=body.quota_per_minute or 0,
            ),
            update_mask=FieldMask(paths=paths),
        ),
        metadata=call_metadata(who),
    )
    return app_out(await call(rpc, strip_prefix="app."))


@router.delete("/{tenant}/apps/{app}", status_code=204, summary="Delete an app and its keys")
@calls(SERVICE, "DeleteApp")
async def delete_app(tenant: TenantId, app: AppId, request: Request, who: Who) -> Response:
    await call(
        request.app.state.upstreams.identity.DeleteApp(
            pb.DeleteAppRequest(name=f"tenants/{tenant}/apps/{app}"), metadata=call_metadata(who)
        )
    )
    return Response(status_code=204)
