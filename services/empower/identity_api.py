"""gRPC adapter of identity: tenants, users, apps and keys, sign-in, JWKS.

Only translation lives here; every rule (scopes, subtree, escalation, sign-in delays)
is in `services.empower.domain.identity`.
"""

from __future__ import annotations

import json

from google.protobuf.empty_pb2 import Empty

from grassroots.empower.v1 import empower_service_pb2 as tenant_pb
from grassroots.empower.v1 import empower_service_pb2_grpc as tenant_grpc
from grassroots.empower.v1 import identity_service_pb2 as pb
from grassroots.empower.v1 import identity_service_pb2_grpc as pb_grpc
from services.empower.domain.identity import IdentityDirectory, parse_api_key_name
from services.empower.domain.model import (
    ApiKey,
    App,
    IssuedKey,
    Level,
    Tenant,
    TokenPair,
    User,
    UserKind,
)
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument, NotFound, Unauthenticated
from services.kit.field_masks import fields_to_update
from services.kit.timestamps import to_timestamp

_LEVELS = {
    Level.CITY: tenant_pb.Tenant.LEVEL_CITY,
    Level.DISTRICT: tenant_pb.Tenant.LEVEL_DISTRICT,
    Level.TOWN: tenant_pb.Tenant.LEVEL_TOWN,
    Level.VILLAGE: tenant_pb.Tenant.LEVEL_VILLAGE,
    Level.GRID: tenant_pb.Tenant.LEVEL_GRID,
}
_LEVELS_BACK = {v: k for k, v in _LEVELS.items()}
_KINDS = {
    UserKind.STAFF: pb.User.KIND_STAFF,
    UserKind.GRID_WORKER: pb.User.KIND_GRID_WORKER,
    UserKind.VOLUNTEER: pb.User.KIND_VOLUNTEER,
    UserKind.RESIDENT: pb.User.KIND_RESIDENT,
}
_KINDS_BACK = {v: k for k, v in _KINDS.items()}


def parent_path(parent: str, field: str = "parent") -> str:
    return tenancy.parse_parent(parent, field)


def tenant_to_proto(tenant: Tenant) -> tenant_pb.Tenant:
    return tenant_pb.Tenant(
        name=tenant.name,
        path=tenant.path,
        display_name=tenant.display_name,
        level=_LEVELS[tenant.level],
        admin_code=tenant.admin_code,
        create_time=to_timestamp(tenant.create_time),
    )


def user_to_proto(user: User) -> pb.User:
    return pb.User(
        name=user.name,
        username=user.username,
        display_name=user.display_name,
        kind=_KINDS[user.kind],
        roles=list(user.roles),
        scopes=sorted(user.scopes),
        disabled=user.disabled,
        create_time=to_timestamp(user.create_time),
    )


def app_to_proto(app: App) -> pb.App:
    return pb.App(
        name=app.name,
        display_name=app.display_name,
        scopes=sorted(app.scopes),
        quota_per_minute=app.quota_per_minute,
        create_time=to_timestamp(app.create_time),
    )


def key_to_proto(key: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(
        name=key.name,
        key_id=key.id,
        revoked=key.revoked,
        create_time=to_timestamp(key.create_time),
        revoke_time=to_timestamp(key.revoke_time),
    )


def issued_to_proto(issued: IssuedKey) -> pb.ApiKey:
    return pb.ApiKey(
        name=issued.name,
        key_id=issued.key_id,
        create_time=to_timestamp(issued.create_time),
    )


def token_to_proto(pair: TokenPair) -> pb.Token:
    return pb.Token(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        token_type=pair.token_type,
        password_change_required=pair.password_change_required,
    )


def _time_left(context: object) -> float | None:
    """Seconds until the caller's deadline (None without one)."""
    remaining = getattr(context, "time_remaining", None)
    left = remaining() if callable(remaining) else None
    return float(left) if isinstance(left, int | float) else None


class TenantServicer(tenant_grpc.EmpowerServiceServicer):
    """The tenant tree (the catalog RPCs stay UNIMPLEMENTED until the catalog lands)."""

    def __init__(self, directory: IdentityDirectory) -> None:
        self.directory = directory

    async def CreateTenant(
        self, request: tenant_pb.CreateTenantRequest, context: object
    ) -> tenant_pb.Tenant:
        parent = parent_path(request.parent) if request.parent else ""
        level = _LEVELS_BACK.get(request.tenant.level)
        if level is None:
            raise InvalidArgument.field("tenant.level", "is required")
        created = await self.directory.create_tenant(
            require_principal(),
            parent,
            request.tenant_id,
            request.tenant.display_name,
            level,
            request.tenant.admin_code,
        )
        return tenant_to_proto(created)

    async def GetTenant(
        self, request: tenant_pb.GetTenantRequest, context: object
    ) -> tenant_pb.Tenant:
        path = tenancy.parse_parent(request.name, "name")
        return tenant_to_proto(await self.directory.get_tenant(require_principal(), path))

    async def UpdateTenant(
        self, request: tenant_pb.UpdateTenantRequest, context: object
    ) -> tenant_pb.Tenant:
        path = tenancy.parse_parent(request.tenant.name, "tenant.name")
        paths = fields_to_update(
            request.update_mask, request.tenant, ("display_name", "admin_code"), "tenant."
        )
        changed = await self.directory.update_tenant(
            require_principal(),
            path,
            display_name=request.tenant.display_name if "display_name" in paths else None,
            admin_code=request.tenant.admin_code if "admin_code" in paths else None,
        )
        return tenant_to_proto(changed)

    async def DeleteTenant(self, request: tenant_pb.DeleteTenantRequest, context: object) -> Empty:
        path = tenancy.parse_parent(request.name, "name")
        await self.directory.delete_tenant(require_principal(), path)
        return Empty()

    async def ListTenants(
        self, request: tenant_pb.ListTenantsRequest, context: object
    ) -> tenant_pb.ListTenantsResponse:
        parent = parent_path(request.parent) if request.parent else ""
        found, token = await self.directory.list_tenants(
            require_principal(), parent, request.page_size, request.page_token
        )
        return tenant_pb.ListTenantsResponse(
            tenants=[tenant_to_proto(t) for t in found], next_page_token=token
        )


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, directory: IdentityDirectory) -> None:
        self.directory = directory

    async def CreateUser(self, request: pb.CreateUserRequest, context: object) -> pb.User:
        kind = _KINDS_BACK.get(request.user.kind)
        if kind is None:
            raise InvalidArgument.field("user.kind", "is required")
        user = await self.directory.create_user(
            require_principal(),
            parent_path(request.parent),
            request.user.username,
            request.user.display_name,
            kind,
            tuple(request.user.roles),
            request.password or None,
        )
        return user_to_proto(user)

    async def GetUser(self, request: pb.GetUserRequest, context: object) -> pb.User:
        return user_to_proto(await self.directory.get_user(require_principal(), request.name))

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: object
    ) -> pb.ListUsersResponse:
        users, token = await self.directory.list_users(
            require_principal(), parent_path(request.parent), request.page_size, request.page_token
        )
        return pb.ListUsersResponse(users=[user_to_proto(u) for u in users], next_page_token=token)

    async def DisableUser(self, request: pb.DisableUserRequest, context: object) -> pb.User:
        return user_to_proto(await self.directory.disable_user(require_principal(), request.name))

    async def UpdateUser(self, request: pb.UpdateUserRequest, context: object) -> pb.User:
        paths = fields_to_update(
            request.update_mask, request.user, ("display_name", "kind", "roles"), "user."
        )
        kind = None
        if "kind" in paths:
            kind = _KINDS_BACK.get(request.user.kind)
            if kind is None:
                raise InvalidArgument.field("user.kind", "is required when it is to change")
        user = await self.directory.update_user(
            require_principal(),
            request.user.name,
            display_name=request.user.display_name if "display_name" in paths else None,
            kind=kind,
            roles=tuple(request.user.roles) if "roles" in paths else None,
        )
        return user_to_proto(user)

    async def DeleteUser(self, request: pb.DeleteUserRequest, context: object) -> Empty:
        await self.directory.delete_user(require_principal(), request.name)
        return Empty()

    async def EnableUser(self, request: pb.EnableUserRequest, context: object) -> pb.User:
        return user_to_proto(await self.directory.enable_user(require_principal(), request.name))

    async def ResetUserPassword(
        self, request: pb.ResetUserPasswordRequest, context: object
    ) -> pb.User:
        user = await self.directory.reset_password(
            require_principal(), request.name, request.password
        )
        return user_to_proto(user)

    async def UpdateApp(self, request: pb.UpdateAppRequest, context: object) -> pb.App:
        paths = fields_to_update(
            request.update_mask,
            request.app,
            ("display_name", "scopes", "quota_per_minute"),
            "app.",
        )
        app = await self.directory.update_app(
            require_principal(),
            request.app.name,
            display_name=request.app.display_name if "display_name" in paths else None,
            scopes=tuple(request.app.scopes) if "scopes" in paths else None,
            quota_per_minute=request.app.quota_per_minute if "quota_per_minute" in paths else None,
        )
        return app_to_proto(app)

    async def DeleteApp(self, request: pb.DeleteAppRequest, context: object) -> Empty:
        await self.directory.delete_app(require_principal(), request.name)
        return Empty()

    async def CreateApp(
        self, request: pb.CreateAppRequest, context: object
    ) -> pb.CreateAppResponse:
        app, issued = await self.directory.create_app(
            require_principal(),
            parent_path(request.parent),
            request.app.display_name,
            tuple(request.app.scopes),
            request.app.quota_per_minute,
        )
        return pb.CreateAppResponse(
            app=app_to_proto(app), api_key=issued_to_proto(issued), key=issued.api_key
        )

    async def GetApp(self, request: pb.GetAppRequest, context: object) -> pb.App:
        return app_to_proto(await self.directory.get_app(require_principal(), request.name))

    async def ListApps(self, request: pb.ListAppsRequest, context: object) -> pb.ListAppsResponse:
        apps, token = await self.directory.list_apps(
            require_principal(), parent_path(request.parent), request.page_size, request.page_token
        )
        return pb.ListAppsResponse(apps=[app_to_proto(a) for a in apps], next_page_token=token)

    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: object
    ) -> pb.CreateApiKeyResponse:
        issued = await self.directory.create_api_key(require_principal(), request.parent)
        return pb.CreateApiKeyResponse(api_key=issued_to_proto(issued), key=issued.api_key)

    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: object
    ) -> pb.ListApiKeysResponse:
        keys = await self.directory.list_api_keys(require_principal(), request.parent)
        return pb.ListApiKeysResponse(api_keys=[key_to_proto(k) for k in keys])

    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context: object) -> pb.ApiKey:
        app_name, key_id = parse_api_key_name(request.name)
        return key_to_proto(
            await self.directory.revoke_api_key(require_principal(), app_name, key_id)
        )

    async def LookupApiKey(
        self, request: pb.LookupApiKeyRequest, context: object
    ) -> pb.LookupApiKeyResponse:
        try:
            key, app = await self.directory.lookup_api_key(request.key_id)
        except Unauthenticated as exc:
            # For the gateway, an unknown key is an absent resource, not a failed call.
            raise NotFound("no such API key") from exc
        return pb.LookupApiKeyResponse(
            api_key=key_to_proto(key), app=app_to_proto(app), secret_sha256=key.secret_hash
        )

    async def Login(self, request: pb.LoginRequest, context: object) -> pb.Token:
        return token_to_proto(
            await self.directory.login(
                request.username,
                request.password,
                request.client_address[:64],
                request.tenant[:200],
                time_left=_time_left(context),
            )
        )

    async def ChangePassword(self, request: pb.ChangePasswordRequest, context: object) -> pb.Token:
        return token_to_proto(
            await self.directory.change_password(
                require_principal(),
                request.current_password,
                request.new_password,
                request.client_address[:64],
            )
        )

    async def RefreshToken(self, request: pb.RefreshTokenRequest, context: object) -> pb.Token:
        return token_to_proto(await self.directory.refresh(request.refresh_token))

    async def RevokeRefreshToken(
        self, request: pb.RevokeRefreshTokenRequest, context: object
    ) -> Empty:
        await self.directory.logout(request.refresh_token)
        return Empty()

    async def GetJwks(self, request: pb.GetJwksRequest, context: object) -> pb.Jwks:
        return pb.Jwks(json=json.dumps(await self.directory.jwks(), separators=(",", ":")))

    async def RotateSigningKey(
        self, request: pb.RotateSigningKeyRequest, context: object
    ) -> pb.Jwks:
        await self.directory.rotate_signing_key(require_principal())
        return pb.Jwks(json=json.dumps(await self.directory.jwks(), separators=(",", ":")))
