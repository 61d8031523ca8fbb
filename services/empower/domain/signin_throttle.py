"""Growing delays between sign-in attempts, per account name and per source address.

A hard lock after N wrong passwords lets anyone lock anyone out, and its distinct
answer tells that the account exists. Instead, after a few free failures each further
attempt must wait longer (1 s, 2 s, 4 s, ... up to a cap) before it is even checked,
and the wait is kept for the name as typed, whether an account has it or not, so
known and unknown names behave alike. A source address gets its own, larger budget,
so one address cannot spread guesses over many names; a success clears the name's
count, never the source's.

The counts live in process memory, bounded in size: with several replicas of the
identity service the limits loosen by their number, which the gateway's per-address
limit on sign-in still caps.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class _Entry:
    failures: int
    next_attempt: datetime
    last_failure: datetime


@dataclass(frozen=True)
class ThrottlePolicy:
    """`free` failures without delay, then `first_delay` doubling up to `max_delay`."""

    free: int
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=15)
    forget_after: timedelta = timedelta(hours=1)

    def delay(self, failures: int) -> timedelta:
        beyond = failures - self.free
        if beyond <= 0:
            return timedelta(0)
        return min(self.max_delay, self.first_delay * (2 ** min(beyond - 1, 30)))


ACCOUNT_POLICY = ThrottlePolicy(free=3)
SOURCE_POLICY = ThrottlePolicy(free=50)


class SignInThrottle:
    """Decides whether an attempt may be checked now, and records how it went."""

    def __init__(
        self,
        account: ThrottlePolicy = ACCOUNT_POLICY,
        source: ThrottlePolicy = SOURCE_POLICY,
        max_entries: int = 100_000,
    ) -> None:
        self.policies = {"account": account, "source": source}
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def _keys(self, account: str, source: str) -> list[tuple[str, str]]:
        keys = [("account", account)]
        if source:
            keys.append(("source", source))
        return keys

    def _entry(self, key: tuple[str, str], now: datetime) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last_failure > self.policies[key[0]].forget_after:
            del self._entries[key]
            return None
        return entry

    def may_try(self, account: str, source: str, now: datetime) -> bool:
        """Whether an attempt for `account` from `source` may be checked at `now`.

        An attempt past the free ones reserves its delay at once, so guesses sent
        together do not all get through while the first is being checked.
        """
        for key in self._keys(account, source):
            entry = self._entry(key, now)
            if entry is not None and now < entry.next_attempt:
                return False
        entry = self._entry(("account", account), now)
        if entry is not None and entry.failures >= self.policies["account"].free:
            entry.next_attempt = now + self.policies["account"].delay(entry.failures + 1)
        return True

    def failed(self, account: str, source: str, now: datetime) -> None:
        """Count a failed attempt against the name and the source."""
        for key in self._keys(account, source):
            entry = self._entry(key, now)
            if entry is None:
                entry = _Entry(0, now, now)
            entry.failures += 1
            entry.last_failure = now
            entry.next_attempt = now + self.policies[key[0]].delay(entry.failures)
            self._entries[key] = entry
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def succeeded(self, account: str) -> None:
        """The name's count starts again; the source's does not."""
        self._entries.pop(("account", account), None)
