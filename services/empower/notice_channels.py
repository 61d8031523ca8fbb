"""Channels behind one interface (`NoticeChannel`): in-app now, SMS and WeChat gateways.

In-app delivery is the platform's own: a delivery is `sent` when it is in the
recipient's list and `delivered` when their app lists it. SMS and WeChat hand the
message to an HTTP gateway the platform is configured with; a 4xx answer is final
(failed), a 5xx answer or a network error is retried by the notice board.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from services.empower.domain.notices_model import Channel, ChannelError, Contact


class InAppChannel:
    channel = Channel.IN_APP

    async def send(self, contact: Contact, title: str, body: str) -> bool:
        return False  # listed by the recipient's app: delivered when it fetches it


async def _post(client: httpx.AsyncClient, url: str, payload: Mapping[str, object]) -> None:
    try:
        answer = await client.post(url, json=payload)
    except httpx.HTTPError as exc:
        raise ChannelError(f"gateway unreachable: {type(exc).__name__}") from None
    if answer.status_code >= 500:
        raise ChannelError(f"gateway answered {answer.status_code}")
    if answer.status_code >= 400:
        raise ChannelError(f"gateway refused the message ({answer.status_code})", retryable=False)


class SmsChannel:
    """Text messages through an SMS gateway: POST {"to", "text"} with a bearer key."""

    channel = Channel.SMS

    def __init__(self, url: str, key: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.client = httpx.AsyncClient(
            timeout=timeout, headers={"Authorization": f"Bearer {key}"} if key else {}
        )

    async def send(self, contact: Contact, title: str, body: str) -> bool:
        if not contact.phone:
            raise ChannelError("no mobile number on record", retryable=False)
        await _post(self.client, self.url, {"to": contact.phone, "text": f"{title}: {body}"})
        return False

    async def close(self) -> None:
        await self.client.aclose()


class WeChatChannel:
    """WeChat template messages through the official account's gateway."""

    channel = Channel.WECHAT

    def __init__(self, url: str, key: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.client = httpx.AsyncClient(
            timeout=timeout, headers={"Authorization": f"Bearer {key}"} if key else {}
        )

    async def send(self, contact: Contact, title: str, body: str) -> bool:
        if not contact.wechat_openid:
            raise ChannelError("the recipient has not bound WeChat", retryable=False)
        payload = {"touser": contact.wechat_openid, "data": {"title": title, "content": body}}
        await _post(self.client, self.url, payload)
        return False

    async def close(self) -> None:
        await self.client.aclose()
