"""How a connection ends, as a user sees it: the daemon's reason, raised
by what was waiting, after everything received before it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run, unique
from daemon import Daemon

import busd


@pytest.fixture
def own_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon for one test, with small outbound queues (64 frames)."""
    d = Daemon(tmp_path / "busd", env={"BUSD_LIMITS__MAX_PENDING_MSGS": "64"}).start()
    try:
        yield d
    finally:
        d.stop()


def test_a_daemon_that_stops_fails_waiting_calls_with_its_reason(own_daemon: Daemon) -> None:
    subject, service = unique("news"), unique("contoso.slow")

    async def scenario() -> None:
        responder = await busd.connect(own_daemon.unix_url)
        client = await busd.connect(own_daemon.tcp_url)
        called = asyncio.Event()

        async def never(request: busd.Request) -> bytes:
            called.set()
            await asyncio.Event().wait()
            return b""

        await responder.serve(service, never)
        sub = await client.subscribe(subject)
        await client.publish(subject, b"before")
        call = asyncio.ensure_future(client.request(service, b"?", timeout=30))
        await asyncio.wait_for(called.wait(), 10)
        await asyncio.to_thread(own_daemon.stop)
        # What was received first is still delivered; then the reason.
        assert (await sub.next(timeout=10)).payload == b"before"
        with pytest.raises(busd.Disconnected) as ended:
            await sub.next(timeout=10)
        # Its responder went first (ResponderGone), or both went at once.
        with pytest.raises((busd.ResponderGone, busd.Disconnected)):
            await call
        assert isinstance(ended.value, busd.ShuttingDown), repr(ended.value)
        with pytest.raises(busd.Disconnected):
            await client.publish(subject, b"after")
        await client.close()
        await responder.close()

    run(scenario())


def test_a_subscriber_that_stops_reading_is_cut_off_after_what_it_got(own_daemon: Daemon) -> None:
    subject = unique("flood")
    count = 5000

    async def scenario() -> None:
        async with (
            busd.connect(own_daemon.unix_url) as slow,
            busd.connect(own_daemon.unix_url) as publisher,
        ):
            sub = await slow.subscribe(subject, capacity=1)  # holds one, then reading waits
            payload = bytes(1024)
            for _ in range(count):
                await publisher.publish(subject, payload)
            await publisher.flush()
            received = 0
            with pytest.raises(busd.SlowConsumer) as cut:
                async for _ in sub:
                    received += 1
            # The daemon's queue (64 frames) overflowed: it cut the
            # subscriber off, and said why once the client read that far.
            assert received < count
            assert cut.value.code == "SlowConsumer"
            # The publisher is not held up by it, and goes on.
            await publisher.publish(subject, b"still here")
            await publisher.flush()

    run(scenario())
