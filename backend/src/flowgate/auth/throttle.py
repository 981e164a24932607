"""Sign-in throttling: failed password checks per account and per client address.

Contract (all numbers are settings, see :class:`LoginThrottle`):

- An attempt is counted as a failure when it *starts* and un-counted when the password turns out
  right, so a burst of concurrent guesses cannot overtake the count.
- Per account (the email, held only as a SHA-256 digest): after ``n`` failures within the window,
  the next attempt must come at least ``delay_base * 2**(n-1)`` seconds after the last one; after
  ``max_per_account`` failures within the window every attempt is refused, the correct password
  included, until the oldest of those failures is older than the window (a sliding window).
  A successful sign-in clears the account's failures.
- Per client address (IPv6 by /64, since one host usually holds a whole /64): after
  ``max_per_address`` failures within the window every attempt from it is refused likewise.
  A successful sign-in does not clear them: one account of one's own must not reset the count of
  guesses against other accounts.
- Refusals are ``429`` with ``Retry-After``; refused attempts check no password and do not count.
- Unknown emails are counted like known ones, so the answers do not reveal which accounts exist.

The state lives in this process's memory: with several replicas each applies the limits on its
own. It is bounded: each table keeps at most ``capacity`` keys and drops the least recently
touched first (expired entries are the usual victims).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from flowgate.core.errors import DomainError
from flowgate.core.settings import Settings

log = logging.getLogger(__name__)

#: Keys per table (accounts, addresses). About 0.5 KiB each at the default limits.
DEFAULT_CAPACITY = 50_000


class Throttled(DomainError):
    status_code = 429
    detail = "Too many failed sign-in attempts"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = max(1, math.ceil(retry_after))
        self.headers = {"Retry-After": str(self.retry_after)}


class _Failures:
    """Times of recent failures per key, within a sliding window, for at most ``capacity`` keys.

    Only the last ``limit`` times of a key are kept: that is all a lock decision needs.
    """

    def __init__(self, limit: int, window: float, capacity: int) -> None:
        self.limit = limit
        self.window = window
        self.capacity = capacity
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._times)

    def recent(self, key: str, now: float) -> deque[float]:
        """The key's failures within the window, oldest first (empty when none)."""
        times = self._times.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._times[key]
        return times

    def locked_for(self, key: str, now: float) -> float:
        """Seconds until the key may try again because of the failure limit (0: it may)."""
        times = self.recent(key, now)
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window - now

    def add(self, key: str, now: float) -> None:
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque(maxlen=self.limit)
            while len(self._times) > self.capacity:
                self._times.popitem(last=False)
        else:
            self._times.move_to_end(key)
        times.append(now)

    def discard(self, key: str, stamp: float) -> None:
        times = self._times.get(key)
        if times is not None and stamp in times:
            times.remove(stamp)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt in progress, counted as a failure until :meth:`succeeded` says not."""

    account: str
    address: str
    stamp: float


class LoginThrottle:
    def __init__(
        self,
        *,
        max_per_account: int,
        max_per_address: int,
        window_seconds: float,
        delay_base_seconds: float,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.delay_base = delay_base_seconds
        self.window = window_seconds
        self.accounts = _Failures(max_per_account, window_seconds, capacity)
        self.addresses = _Failures(max_per_address, window_seconds, capacity)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        return cls(
            max_per_account=settings.login_max_failures_per_account,
            max_per_address=settings.login_max_failures_per_address,
            window_seconds=settings.login_failure_window_seconds,
            delay_base_seconds=settings.login_delay_base_seconds,
        )

    def begin(self, email: str, address: str) -> Attempt:
        """Admit a password check for ``email`` from ``address``, or raise :class:`Throttled`."""
        now = time.monotonic()
        account = _account_key(email)
        address = _address_key(address)
        wait = self.addresses.locked_for(address, now)
        if wait > 0:
            raise Throttled(
                "Too many failed sign-ins from this address: signing in from it is blocked for "
                f"{math.ceil(wait)} seconds, even with the correct password",
                wait,
            )
        wait = self.accounts.locked_for(account, now)
        if wait > 0:
            raise Throttled(
                "Too many failed sign-ins for this account: it is locked for "
                f"{math.ceil(wait)} seconds, even with the correct password",
                wait,
            )
        wait = self._spacing(account, now)
        if wait > 0:
            raise Throttled(
                "Too many failed sign-ins for this account: wait "
                f"{math.ceil(wait)} seconds before trying again",
                wait,
            )
        self.accounts.add(account, now)
        self.addresses.add(address, now)
        return Attempt(account=account, address=address, stamp=now)

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong (the failure is already counted); log when that locks."""
        now = time.monotonic()
        if self.accounts.locked_for(attempt.account, now) > 0:
            log.warning("sign-in locked for an account", extra={"account": attempt.account[:16]})
        if self.addresses.locked_for(attempt.address, now) > 0:
            log.warning("sign-in locked for an address", extra={"address": attempt.address})

    def succeeded(self, attempt: Attempt) -> None:
        self.accounts.clear(attempt.account)
        self.addresses.discard(attempt.address, attempt.stamp)

    def _spacing(self, account: str, now: float) -> float:
        """Seconds the account must still wait after its last failure (exponential)."""
        times = self.accounts.recent(account, now)
        if not times or self.delay_base <= 0:
            return 0.0
        delay = min(math.ldexp(self.delay_base, len(times) - 1), self.window)  # base * 2**(n-1)
        return times[-1] + delay - now


def _account_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()


def _address_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(request: Request) -> str:
    """The peer address as the server sees it (uvicorn applies ``X-Forwarded-For`` only from
    the proxies it trusts, ``FORWARDED_ALLOW_IPS``)."""
    return request.client.host if request.client else "unknown"


async def get_login_throttle(request: Request) -> LoginThrottle:
    """The process's throttle, made on first use from the app's settings."""
    state = request.app.state
    throttle: LoginThrottle | None = getattr(state, "login_throttle", None)
    if throttle is None:
        throttle = state.login_throttle = LoginThrottle.from_settings(state.settings)
    return throttle


LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
