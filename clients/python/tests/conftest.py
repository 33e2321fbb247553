"""Fixtures: a real daemon per test module, temp dirs, unique subjects."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from daemon import BUSD_BIN, WAIT, Daemon  # noqa: E402

T = TypeVar("T")

TRANSPORTS = ("tcp", "unix")

_names = itertools.count(1)


def run(coro: Coroutine[Any, Any, T], limit: float = 2 * WAIT) -> T:
    """Runs a test's coroutine on a fresh event loop, bounded: a hung
    exchange fails the test instead of hanging the run."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


def unique(prefix: str) -> str:
    """A subject or service name no other test uses (tests share a daemon)."""
    return f"{prefix}.t{os.getpid()}n{next(_names)}"


@pytest.fixture(scope="session", autouse=True)
def _busd_binary() -> None:
    if not os.access(BUSD_BIN, os.X_OK):
        pytest.exit(
            f"no busd binary at {BUSD_BIN}: build it (cargo build -p busd) or set BUSD_BIN",
            returncode=2,
        )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with the embedded default config (unpackaged clients of
    one uid talk to each other)."""
    d = Daemon(tmp_path_factory.mktemp("busd")).start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per transport."""
    return str(request.param)
