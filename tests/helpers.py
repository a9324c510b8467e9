"""Helpers shared by tests: users, tokens, waiting for the replay."""

from __future__ import annotations

import asyncio
from typing import Any

from hotline.service import Services
from journal.users import add_user


async def create_user(services: Services, login: str, role: str, password: str = "secret-pass-1",
                      smo: str | None = None, extension: str | None = None) -> None:
    async with services.db.sessions.begin() as session:
        await add_user(session, login, password, role, smo, extension)


async def login(harness: Any, login_name: str, password: str = "secret-pass-1") -> str:
    async with harness.http.post(harness.url("/api/v1/auth/login"),
                                 json={"login": login_name, "password": password}) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for(predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval_s)
    raise AssertionError("condition not met in time")
