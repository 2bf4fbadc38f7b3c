"""Expiring credentials: fetched off the loop, once at a time, refreshed before they expire."""

from __future__ import annotations

import asyncio
import threading

import pytest

from anygate.providers.credentials import Expiring, RefreshingCredential


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """A token endpoint: each fetch issues the next token, valid for ``lifetime`` seconds."""

    def __init__(self, clock: Clock, lifetime: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.fetches = 0
        self.threads: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def __call__(self) -> Expiring[str]:
        self.threads.add(threading.get_ident())
        self.gate.wait(5)
        self.fetches += 1
        if self.fail:
            raise OSError("token endpoint unreachable")
        return Expiring(f"token-{self.fetches}", self.clock.now + self.lifetime)


async def test_the_first_requests_share_one_fetch_made_off_the_loop() -> None:
    clock = Clock()
    issuer = Issuer(clock)
    issuer.gate.clear()
    credential = RefreshingCredential(issuer, clock=clock)
    waiting = [asyncio.create_task(credential.get()) for _ in range(5)]
    await asyncio.sleep(0.01)
    issuer.gate.set()
    assert await asyncio.gather(*waiting) == ["token-1"] * 5
    assert issuer.fetches == 1 and threading.get_ident() not in issuer.threads
    assert await credential.get() == "token-1" and issuer.fetches == 1


async def test_a_credential_near_expiry_is_refreshed_in_the_background() -> None:
    clock = Clock()
    issuer = Issuer(clock)
    credential = RefreshingCredential(issuer, refresh_before=300, clock=clock)
    assert await credential.get() == "token-1"
    clock.now += 3600 - 200  # inside the refresh window, still valid
    issuer.gate.clear()
    assert await credential.get() == "token-1"  # served at once, not waiting for the refresh
    issuer.gate.set()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if issuer.fetches == 2:
            break
    assert await credential.get() == "token-2"


async def test_an_expired_credential_is_waited_for_and_failures_reach_the_request() -> None:
    clock = Clock()
    issuer = Issuer(clock)
    credential = RefreshingCredential(issuer, clock=clock)
    assert await credential.get() == "token-1"
    clock.now += 4000
    issuer.fail = True
    with pytest.raises(OSError, match="unreachable"):
        await credential.get()
    issuer.fail = False
    assert await credential.get() == "token-3"
    credential.invalidate()
    assert await credential.get() == "token-4"
