"""Credentials: an app's API key, or a person's sign-in with access and refresh tokens.

A key goes in `X-API-Key` on every call. A person signs in at the OAuth 2.0 token
endpoint (`grant_type=password`) and gets a short access token (15 minutes) and a
refresh token. The platform rotates refresh tokens: each may be used once, and using one
twice signs every session of that login out. So a `TokenSession` refreshes one at a time
(the clients hold a lock around it), keeps the new refresh token each time, and refreshes
shortly before the access token expires, or once after a 401.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

TOKEN_PATH = "/v1/auth/token"  # noqa: S105 - a path, not a secret
REVOKE_PATH = "/v1/auth/revoke"
EARLY_SECONDS = 30.0  # refresh this long before the access token expires


@dataclass
class ApiKey:
    key: str

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


@dataclass
class TokenSession:
    """A person's tokens. Give a username and password to sign in, or tokens you hold."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tenant: str | None = None  # the account's tenant node, when its name is used at several
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float = 0.0  # time.monotonic() when the access token expires; 0: unknown
    password_change_required: bool = False
    refreshes: int = 0  # how many times the tokens were refreshed (for a program's logs)

    def usable(self) -> bool:
        """True while the access token is not about to expire."""
        if not self.access_token:
            return False
        return self.expires_at == 0.0 or time.monotonic() < self.expires_at - EARLY_SECONDS

    def grant(self) -> dict[str, str] | None:
        """The form to post to the token endpoint now, or None when nothing can be done."""
        if self.refresh_token:
            return {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        if self.username and self.password is not None:
            form = {"grant_type": "password", "username": self.username}
            form["password"] = self.password
            if self.tenant:
                form["tenant"] = self.tenant.replace("/", "-")
            return form
        return None

    def password_grant(self) -> dict[str, str] | None:
        """Signing in again, when a refresh token was refused (expired or revoked)."""
        if self.username and self.password is not None:
            self.refresh_token = None
            return self.grant()
        return None

    def accept(self, answer: dict[str, Any], *, refreshed: bool) -> None:
        self.access_token = str(answer["access_token"])
        # A refresh answers a new refresh token; the old one is spent.
        self.refresh_token = answer.get("refresh_token") or None
        self.expires_at = time.monotonic() + float(answer.get("expires_in") or 0)
        self.password_change_required = bool(answer.get("password_change_required"))
        if refreshed:
            self.refreshes += 1

    def expire(self) -> None:
        """Forget the access token (the gateway refused it), so the next call refreshes."""
        self.access_token = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"} if self.access_token else {}
