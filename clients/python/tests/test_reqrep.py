"""Requests and services between Python clients, over tcp and unix."""

from __future__ import annotations

import asyncio

import pytest
from conftest import run, unique
from daemon import Daemon

import busd


def test_a_service_answers_with_what_its_handler_returns(daemon: Daemon, transport: str) -> None:
    service = unique("contoso.forecast")

    async def scenario() -> None:
        async with (
            busd.connect(daemon.url(transport)) as server,
            busd.connect(daemon.url(transport)) as caller,
        ):
            callers: list[busd.Sender] = []

            async def forecast(request: busd.Request) -> busd.Reply:
                callers.append(request.sender)
                assert request.service == service
                assert request.headers == {"lang": "fr"}
                return busd.Reply(b"21C in " + request.payload, headers={"unit": "celsius"})

            await server.serve(service, forecast)
            answer = await caller.request(service, b"paris", headers={"lang": "fr"})
            assert answer.ok and answer.status is busd.Status.SUCCESS
            assert answer.payload == b"21C in paris"
            assert answer.headers == {"unit": "celsius"}
            assert callers == [busd.Sender(caller.client_id, None)]

    run(scenario())


def test_a_handler_that_raises_answers_failure(daemon: Daemon) -> None:
    service = unique("contoso.broken")

    async def scenario() -> None:
        async with busd.connect(daemon.unix_url) as client:

            async def broken(request: busd.Request) -> bytes:
                if request.payload == b"custom":
                    raise busd.ServiceFailure("custom", payload=b"\x01\x02")
                raise RuntimeError("out of order")

            await client.serve(service, broken)
            with pytest.raises(busd.ServiceFailure) as failed:
                await client.request(service, b"x")
            assert failed.value.payload == b"out of order"
            assert failed.value.response is not None
            assert failed.value.response.status is busd.Status.FAILURE
            with pytest.raises(busd.ServiceFailure) as custom:
                await client.request(service, b"custom")
            assert custom.value.payload == b"\x01\x02"

    run(scenario())


def test_the_daemons_verdicts_are_exceptions_of_their_names(daemon: Daemon) -> None:
    async def scenario() -> None:
        async with busd.connect(daemon.tcp_url) as client:
            with pytest.raises(busd.NoResponders) as none:
                await client.request(unique("nobody.serves"), b"?")
            assert none.value.code == "NoResponders"

            slow = unique("contoso.slow")
            release = asyncio.Event()

            async def stalls(request: busd.Request) -> bytes:
                await release.wait()
                return b"too late"

            await client.serve(slow, stalls)
            with pytest.raises(busd.Timeout) as late:
                await client.request(slow, b"?", timeout=0.2)
            assert late.value.code == "Timeout"  # the daemon's verdict, not the local guard
            assert isinstance(late.value, TimeoutError)
            release.set()
            await client.flush()  # the late answer is dropped by the daemon, quietly

    run(scenario())


def test_a_responder_that_leaves_fails_its_calls_at_once(daemon: Daemon) -> None:
    service = unique("contoso.leaving")

    async def scenario() -> None:
        caller = await busd.connect(daemon.unix_url)
        responder = await busd.connect(daemon.unix_url)
        started = asyncio.Event()

        async def never(request: busd.Request) -> bytes:
            started.set()
            await asyncio.Event().wait()
            return b""

        await responder.serve(service, never)
        call = asyncio.ensure_future(caller.request(service, b"?", timeout=30))
        await asyncio.wait_for(started.wait(), 10)
        await responder.close()
        with pytest.raises(busd.ResponderGone):
            await call
        await caller.close()

    run(scenario())


def test_requests_are_balanced_over_responders(daemon: Daemon) -> None:
    service = unique("contoso.pool")

    async def scenario() -> None:
        async with (
            busd.connect(daemon.unix_url) as a,
            busd.connect(daemon.unix_url) as b,
            busd.connect(daemon.tcp_url) as caller,
        ):
            await a.serve(service, lambda r: _const(b"a"))
            await b.serve(service, lambda r: _const(b"b"))
            answers = {(await caller.request(service)).payload for _ in range(6)}
            assert answers == {b"a", b"b"}

    run(scenario())


async def _const(value: bytes) -> bytes:
    return value


def test_stopping_a_service_leaves_no_responder(daemon: Daemon) -> None:
    service = unique("contoso.stopped")

    async def scenario() -> None:
        async with busd.connect(daemon.unix_url) as client:
            svc = await client.serve(service, lambda r: _const(b"up"))
            assert (await client.request(service)).payload == b"up"
            await svc.stop()
            with pytest.raises(busd.NoResponders):
                await client.request(service)

    run(scenario())


def test_many_requests_in_flight_each_get_their_own_answer(daemon: Daemon) -> None:
    service = unique("contoso.echo")

    async def scenario() -> None:
        async with busd.connect(daemon.unix_url) as server, busd.connect(daemon.unix_url) as caller:

            async def echo(request: busd.Request) -> bytes:
                await asyncio.sleep(0)  # let answers overtake each other
                return request.payload

            await server.serve(service, echo, concurrency=8)
            payloads = [str(i).encode() for i in range(200)]
            answers = await asyncio.gather(*(caller.request(service, p) for p in payloads))
            assert [a.payload for a in answers] == payloads

    run(scenario())
