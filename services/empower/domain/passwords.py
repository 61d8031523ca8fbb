"""Passwords: the policy for new ones and argon2id hashing.

Passwords are low-entropy secrets people choose, so they are hashed with a slow,
memory-hard function (argon2id, argon2-cffi's production parameters by default). The
hasher is injectable so tests can use cheap parameters that are still real argon2.
Hashing takes tens of milliseconds, so it runs on a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.kit.errors import InvalidArgument

MIN_LENGTH = 10
# Long enough for any passphrase; short enough that hashing one is not a weapon.
MAX_LENGTH = 256


def check_policy(password: str, username: str = "") -> str:
    """A new password must be long enough and must not be the username."""
    if len(password) < MIN_LENGTH:
        raise InvalidArgument.field("password", f"must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidArgument.field("password", f"must have at most {MAX_LENGTH} characters")
    if username and password.strip().lower() == username.lower():
        raise InvalidArgument.field("password", "must not be the username")
    return password


class Passwords:
    """argon2id hashing on a worker thread, with a dummy hash for unknown users."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        # Verified against when the user is unknown, so that "no such user" takes as
        # long as "wrong password" and timing does not reveal which usernames exist.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        # How long a check takes here lately: an attempt refused without a check
        # waits as long, so its timing looks like any other failure.
        self.typical_seconds = 0.0

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; a missing hash costs as much as a real check."""
        target = password_hash or self._dummy
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.hasher.verify, target, password)
        except (VerificationError, InvalidHashError):
            return False
        finally:
            self._observe(time.perf_counter() - started)
        return password_hash is not None

    def _observe(self, seconds: float) -> None:
        if self.typical_seconds == 0.0:
            self.typical_seconds = seconds
        else:
            self.typical_seconds += (seconds - self.typical_seconds) / 8

    async def pause_like_a_check(self) -> None:
        """Wait about as long as a check takes, without the work (or a place in the gate)."""
        await asyncio.sleep(self.typical_seconds)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
