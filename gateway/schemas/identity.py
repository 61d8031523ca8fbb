"""JSON shapes of the tenant tree and identity APIs: tenants, users, apps and API keys.

Request bodies refuse unknown fields, so a body cannot set what the server derives
(a tenant, a resource name, an owner) or what belongs to another kind of account (a
user's scopes come from its roles; an app has scopes and no roles). Responses carry
no password and no key secret; the only secret ever returned is the `key` text of a
newly issued API key, once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from gateway.schemas.contract import item, limited
from grassroots.empower.v1 import empower_service_pb2 as tenants_pb
from grassroots.empower.v1 import identity_service_pb2 as pb

# A tenant path in URL form: its segments joined by "-" (sh-jiading-anting-xingming).
TENANT_ID_PATTERN = r"^[a-z0-9]{1,40}(-[a-z0-9]{1,40}){0,5}$"
# The last segment of a resource name: a user, app, API key or person id.
RESOURCE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
KEY_NOTE = "The key is shown once, in this response: store it now. Only its hash is kept."

LevelName = Literal["city", "district", "town", "village", "grid"]
UserKindName = Literal["staff", "grid_worker", "volunteer", "resident"]
Role = Annotated[str, item(pb.User, "roles")]
Scope = Annotated[str, item(pb.App, "scopes")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TenantCreate(_Body):
    """A child node of the tenant in the URL."""

    id: str = limited(
        tenants_pb.CreateTenantRequest,
        "tenant_id",
        description="the new node's last path segment",
        examples=["xingming"],
    )
    display_name: str = limited(tenants_pb.Tenant, "display_name")
    level: LevelName
    admin_code: str = limited(
        tenants_pb.Tenant,
        "admin_code",
        description="division code (6-12 digits); a grid's own code",
        examples=["310114102201"],
    )


class TenantUpdate(_Body):
    """The fields to change; those left out stay as they are."""

    display_name: str | None = limited(tenants_pb.Tenant, "display_name", None)
    admin_code: str | None = limited(
        tenants_pb.Tenant, "admin_code", None, examples=["310114102201"]
    )


class TenantOut(BaseModel):
    id: str = Field(description="the tenant id used in URLs")
    name: str
    path: str
    display_name: str
    level: LevelName | None
    admin_code: str
    create_time: datetime


class TenantList(BaseModel):
    tenants: list[TenantOut]
    next_page_token: str


class UserCreate(_Body):
    """A person who signs in; what they may do follows from their roles."""

    username: str = limited(pb.User, "username", examples=["li.wei"])
    display_name: str = limited(pb.User, "display_name")
    kind: UserKindName
    roles: list[Role] = limited(pb.User, "roles", [], examples=[["grid_worker"]])
    password: SecretStr | None = Field(
        None,
        max_length=256,
        description="initial password, at least 10 characters; never returned. "
        "Leave it out for people who never sign in with one.",
    )


class UserUpdate(_Body):
    """The fields to change; new roles must be ones your roles may assign."""

    display_name: str | None = limited(pb.User, "display_name", None)
    kind: UserKindName | None = None
    roles: list[Role] | None = limited(pb.User, "roles", None, examples=[["village_secretary"]])


class PasswordReset(_Body):
    """A new password for another user; it clears the sign-in delay and signs them out."""

    password: SecretStr = Field(
        ..., max_length=256, description="at least 10 characters; never returned"
    )


class PasswordChange(_Body):
    """Your own new password, with the current one (the one someone else gave you)."""

    current_password: SecretStr = Field(..., max_length=256, description="never returned")
    new_password: SecretStr = Field(
        ...,
        max_length=256,
        description="at least 10 characters, not your username, not the current one; "
        "never returned",
    )


class UserOut(BaseModel):
    id: str
    name: str
    username: str
    display_name: str
    kind: UserKindName | None
    roles: list[str]
    scopes: list[str] = Field(description="what the roles grant")
    disabled: bool
    create_time: datetime


class UserList(BaseModel):
    users: list[UserOut]
    next_page_token: str


class AppCreate(_Body):
    """A developer's application; its keys carry exactly these scopes."""

    display_name: str = limited(pb.App, "display_name")
    scopes: list[Scope] = limited(pb.App, "scopes", examples=[["events:read", "events:write"]])
    quota_per_minute: int = limited(pb.App, "quota_per_minute", 600)


class AppUpdate(_Body):
    """The fields to change; scopes only ones you hold."""

    display_name: str | None = limited(pb.App, "display_name", None)
    scopes: list[Scope] | None = limited(pb.App, "scopes", None, examples=[["events:read"]])
    quota_per_minute: int | None = limited(pb.App, "quota_per_minute", None)


class AppOut(BaseModel):
    id: str
    name: str
    display_name: str
    scopes: list[str]
    quota_per_minute: int
    create_time: datetime


class AppList(BaseModel):
    apps: list[AppOut]
    next_page_token: str


class ApiKeyOut(BaseModel):
    """An API key's record; the secret is never part of it."""

    id: str
    name: str
    key_id: str
    revoked: bool
    create_time: datetime
    revoke_time: datetime | None


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyOut] = Field(description="newest first")


class IssuedApiKey(BaseModel):
    api_key: ApiKeyOut
    key: str = Field(description="`grk_<key id>_<secret>`: send it as X-API-Key")
    note: str = KEY_NOTE


class AppCreated(BaseModel):
    app: AppOut
    api_key: ApiKeyOut
    key: str = Field(description="`grk_<key id>_<secret>`: send it as X-API-Key")
    note: str = KEY_NOTE
