"""A Python service the daemon starts on demand: it finds the connection
the daemon handed it (``BUSD_FD``) with a bare ``busd.connect()``, and is
its package without proving anything."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run
from daemon import Daemon

import busd

PACKAGE = "Contoso.Activated_8wekyb3d8bbwe"
SERVICE = "contoso.activated.whoami"

# What the daemon runs: it answers with the package its connection is.
SERVICE_SCRIPT = """
import asyncio, os, busd

async def main() -> None:
    async with busd.connect() as client:
        async def whoami(request: busd.Request) -> str:
            return f"{client.pfn} via {client.endpoint}: {request.payload.decode()}"

        service = await client.serve(os.environ["BUSD_SERVICE"], whoami)
        await service.wait()

asyncio.run(main())
"""


@pytest.fixture
def activating(tmp_path: Path) -> Iterator[Daemon]:
    script = tmp_path / "whoami.py"
    script.write_text(SERVICE_SCRIPT)
    config = f"""
[[package]]
pfn = "{PACKAGE}"
loopback = true
exempt_in = true
uids = [{os.getuid()}]  # a proof is required; the started process never uses it

[[package.service]]
name = "{SERVICE}"
exec = ["{sys.executable}", "{script}"]
"""
    d = Daemon(tmp_path / "busd", config).start()
    try:
        yield d
    finally:
        d.stop()


def test_a_started_service_connects_where_it_was_handed(activating: Daemon) -> None:
    async def scenario() -> None:
        async with busd.connect(activating.unix_url) as caller:
            answer = await caller.request(SERVICE, b"hello", timeout=15)
        assert answer.payload.decode() == f"{PACKAGE} via fd://3: hello"

    try:
        run(scenario())
    except BaseException:
        print(activating.log())  # the service's own output is in the daemon's log
        raise
