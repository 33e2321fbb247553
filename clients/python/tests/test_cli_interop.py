"""The Python client and the Rust ``busd`` command on one daemon: each
side publishes to the other, calls the other's service, and reads the
other's ValueSets. Both implementations of the protocol must agree."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from conftest import run, unique
from daemon import Daemon, read_lines, stop_process

import busd


def test_python_publishes_and_busd_sub_prints_it(daemon: Daemon, transport: str) -> None:
    subject = unique("weather.today")
    sub = daemon.spawn("sub", "--count", "2", subject, transport=transport)
    try:
        daemon.wait_for_registration("subscription", subject)

        async def publish() -> int:
            async with busd.connect(daemon.url(transport)) as client:
                await client.publish(subject, b"sunny")
                await client.publish(subject, busd.pack({"city": "Paris", "high": 21}))
                await client.flush()
                return client.client_id

        client_id = run(publish())
        out, err = sub.communicate(timeout=20)
    finally:
        stop_process(sub)
    assert sub.returncode == 0, err
    # subject, sender (the daemon's word), payload; a ValueSet shown as JSON.
    lines = out.splitlines()
    assert lines[0] == f"{subject}\tunpackaged#{client_id}\tsunny"
    fields = lines[1].split("\t")
    assert fields[:2] == [subject, f"unpackaged#{client_id}"]
    assert json.loads(fields[2]) == {"city": "Paris", "high": 21}


def test_busd_pub_reaches_a_python_subscriber(daemon: Daemon, transport: str) -> None:
    subject = unique("weather.week")

    async def scenario() -> None:
        async with busd.connect(daemon.url(transport)) as client:
            sub = await client.subscribe(f"{subject}.>")
            # `busd pub` flushes before it exits: the messages are routed.
            done = daemon.cli("pub", "--count", "2", f"{subject}.paris", "rain")
            assert done.returncode == 0, done.stderr
            done = daemon.cli("pub", "--json", f"{subject}.lyon", '{"city":"Lyon","high":19}')
            assert done.returncode == 0, done.stderr
            first, second, third = [await sub.next(timeout=10) for _ in range(3)]
            assert (first.subject, first.payload) == (f"{subject}.paris", b"rain")
            assert second.payload == b"rain"
            assert third.subject == f"{subject}.lyon"
            assert third.value_set() == {"city": "Lyon", "high": 19}
            assert first.sender.pfn is None and first.sender.client_id != client.client_id
            assert third.sender.client_id != first.sender.client_id  # two processes

    run(scenario())


def test_python_calls_services_of_busd_reply(daemon: Daemon, transport: str) -> None:
    echo, broken, caller_id = (
        unique("contoso.echo"),
        unique("contoso.broken"),
        unique("contoso.who"),
    )
    servers = [
        daemon.spawn("reply", "--echo", echo, transport=transport),
        daemon.spawn("reply", "--fail", broken, "out of order", transport=transport),
        daemon.spawn("reply", caller_id, "--exec", "sh", "-c", "printf %s $BUSD_CALLER_ID"),
    ]
    try:
        for name in (echo, broken, caller_id):
            daemon.wait_for_registration("service", name)

        async def scenario() -> None:
            async with busd.connect(daemon.url(transport)) as client:
                answer = await client.request(echo, b"hello", timeout=10)
                assert answer.payload == b"hello"
                with pytest.raises(busd.ServiceFailure) as failed:
                    await client.request(broken, b"?", timeout=10)
                assert failed.value.payload == b"out of order"
                # The service is told who calls, as the daemon proved it.
                who = await client.request(caller_id, b"", timeout=10)
                assert who.payload == str(client.client_id).encode()

        run(scenario())
    finally:
        for server in servers:
            stop_process(server)


def test_busd_req_calls_a_python_service(daemon: Daemon, transport: str) -> None:
    upper, typed, failing = unique("contoso.upper"), unique("contoso.typed"), unique("contoso.fail")

    async def scenario() -> None:
        async with busd.connect(daemon.url(transport)) as client:

            async def shout(request: busd.Request) -> bytes:
                return request.payload.upper()

            async def forecast(request: busd.Request) -> bytes:
                ask = request.value_set()
                return busd.pack({"city": ask["city"], "high": 21, "unit": "C"})

            async def fails(request: busd.Request) -> bytes:
                raise ValueError("no such city")

            await client.serve(upper, shout)
            await client.serve(typed, forecast)
            await client.serve(failing, fails)

            async def req(*args: str) -> subprocess.CompletedProcess[str]:
                # The CLI blocks: run it off the loop that serves its request.
                return await asyncio.to_thread(daemon.cli, "req", *args, transport=transport)

            done = await req(upper, "hello")
            assert (done.returncode, done.stdout) == (0, "HELLO\n"), done.stderr
            done = await req("--json", typed, '{"city":"Paris"}')
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == {"city": "Paris", "high": 21, "unit": "C"}
            done = await req(failing, "Atlantis")
            assert done.returncode == 1
            # (The CLI may log a warning after it, as it exits: first line.)
            assert done.stderr.splitlines()[0] == "Failure: no such city", done.stderr
            done = await req(unique("contoso.nobody"), "?")
            assert done.returncode == 1 and done.stderr.startswith("NoResponders"), done.stderr

    run(scenario())


def test_a_busd_sub_in_a_queue_group_shares_with_python(daemon: Daemon) -> None:
    subject = unique("jobs")
    cli_worker = daemon.spawn("sub", "--queue", "workers", subject)
    try:
        daemon.wait_for_registration("subscription", subject)

        async def scenario() -> list[bytes]:
            async with busd.connect(daemon.unix_url) as client:
                mine = await client.subscribe(subject, queue="workers")
                for i in range(50):
                    await client.publish(subject, str(i))
                await client.flush()
                got = []
                while mine.pending:
                    got.append((await mine.next()).payload)
                return got

        mine = run(scenario())
        # The rest went to the CLI worker: wait until it has printed them.
        theirs = [line.split("\t")[2].encode() for line in read_lines(cli_worker, 50 - len(mine))]
    finally:
        stop_process(cli_worker)
    # Each message went to exactly one member, and both members got some.
    assert sorted(mine + theirs, key=int) == [str(i).encode() for i in range(50)]
    assert mine and theirs
