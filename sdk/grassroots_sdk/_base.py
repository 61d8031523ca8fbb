"""What the sync and async clients share: configuration, headers, paths, retry decisions."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from grassroots_sdk import __version__
from grassroots_sdk._call import TENANT, Call, tenant_id
from grassroots_sdk.auth import ApiKey, TokenSession
from grassroots_sdk.errors import ConnectionFailed, GrassrootsError, error_from_response
from grassroots_sdk.retry import Retry

DEFAULT_URL = "http://127.0.0.1:8080"
URL_VARIABLE = "GRASSROOTS_URL"
KEY_VARIABLE = "GRASSROOTS_API_KEY"
TENANT_VARIABLE = "GRASSROOTS_TENANT"
# A stream waits for changes: the gateway sends a keep-alive every 15 s, so a minute of
# silence means the connection is gone.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
# Transport failures after which the request surely never reached the gateway.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryNotice:
    """Told to `on_retry` before each wait: which call, why, and for how long."""

    method: str
    path: str
    attempt: int  # the try that failed, 1 for the first
    delay: float
    status: int  # 0 for a transport failure
    reason: str


def credentials_from(
    api_key: str | None,
    username: str | None,
    password: str | None,
    access_token: str | None,
    refresh_token: str | None,
    account_tenant: str | None,
) -> ApiKey | TokenSession | None:
    if api_key:
        return ApiKey(api_key)
    if username or access_token or refresh_token:
        return TokenSession(
            username=username,
            password=password,
            tenant=account_tenant,
            access_token=access_token,
            refresh_token=refresh_token,
        )
    key = os.environ.get(KEY_VARIABLE)
    return ApiKey(key) if key else None


class BaseClient:
    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        account_tenant: str | None = None,
        tenant: str | None = None,
        timeout: float = 10.0,
        retry: Retry | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = (url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")
        self.credentials = credentials_from(
            api_key, username, password, access_token, refresh_token, account_tenant
        )
        chosen = tenant or os.environ.get(TENANT_VARIABLE)
        self._tenant: str | None = tenant_id(chosen) if chosen else None
        self.timeout = timeout
        self.retry = retry or Retry()
        self.on_retry = on_retry
        self.default_headers = {"User-Agent": f"grassroots-sdk/{__version__}", **(headers or {})}

    @property
    def session(self) -> TokenSession | None:
        return self.credentials if isinstance(self.credentials, TokenSession) else None

    def _auth_headers(self) -> dict[str, str]:
        return self.credentials.headers() if self.credentials is not None else {}

    def _prepare(self, call: Call[Any]) -> tuple[str | None, bool]:
        """The idempotency key the call keeps across retries, and whether it may be
        retried after the request may have reached the gateway."""
        key = call.idempotency_key or (str(uuid.uuid4()) if call.create else None)
        safe = call.method in ("GET", "HEAD", "DELETE", "PUT") or key is not None
        return key, safe

    def _build(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], path: str, key: str | None
    ) -> httpx.Request:
        headers = {**call.headers, **self._auth_headers()}
        if key is not None:
            headers["Idempotency-Key"] = key
        return http.build_request(
            call.method,
            path,
            params=call.params,
            json=call.json,
            data=call.data,
            files=call.files,
            headers=headers,
            timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )

    def _path(self, call: Call[Any], tenant: str | None) -> str:
        if TENANT not in call.path:
            return call.path
        assert tenant is not None
        return call.path.replace(TENANT, tenant, 1)

    def _wait_for(
        self, call: Call[Any], attempt: int, response: httpx.Response | None, exc: Exception | None
    ) -> float | None:
        """Seconds to wait before another try, or None to stop; tells `on_retry`."""
        if response is not None:
            retry_after = error_from_response(response).retry_after
            status, reason = response.status_code, response.reason_phrase
        else:
            retry_after, status, reason = None, 0, type(exc).__name__
        delay = self.retry.delay(attempt, retry_after)
        if delay is not None and self.on_retry is not None:
            self.on_retry(RetryNotice(call.method, call.path, attempt + 1, delay, status, reason))
        return delay

    def _retryable(self, response: httpx.Response, safe: bool) -> bool:
        status = response.status_code
        return status in self.retry.statuses or (safe and status in self.retry.idempotent_statuses)

    @staticmethod
    def _connection_failed(call: Call[Any], exc: Exception) -> GrassrootsError:
        return ConnectionFailed(
            f"{call.method} {call.path}: {type(exc).__name__}: {exc}".rstrip(": "),
            code="CONNECTION_FAILED",
        )
