"""Publish and subscribe between Python clients, over tcp and unix."""

from __future__ import annotations

import asyncio

import pytest
from conftest import run, unique
from daemon import Daemon

import busd


def test_a_message_reaches_a_subscriber_with_its_headers_and_sender(
    daemon: Daemon, transport: str
) -> None:
    subject = unique("weather.today")

    async def scenario() -> None:
        async with (
            busd.connect(daemon.url(transport)) as sub_client,
            busd.connect(daemon.url(transport)) as pub_client,
        ):
            sub = await sub_client.subscribe(subject)
            await pub_client.publish(subject, b"sunny", headers={"unit": "celsius", "a": "1"})
            msg = await sub.next(timeout=10)
            assert msg.subject == subject
            assert msg.payload == b"sunny"
            assert msg.headers == {"a": "1", "unit": "celsius"}
            # The sender is the daemon's word: the publisher's connection id.
            assert msg.sender == busd.Sender(pub_client.client_id, None)
            assert pub_client.pfn is None
            assert msg.relayed_for is None
            # Only a daemon's bridge may name a remote sender: the daemon
            # removes the claim from anyone else's headers.
            forged = {"Busd-Sender": "hq/Contoso.Boss_8wekyb3d8bbwe", "unit": "k"}
            await pub_client.publish(subject, b"x", headers=forged)
            msg = await sub.next(timeout=10)
            assert msg.headers == {"unit": "k"}
            assert msg.relayed_for is None

    run(scenario())


def test_wildcards_match_as_the_daemon_routes_them(daemon: Daemon) -> None:
    base = unique("w")

    async def scenario() -> None:
        async with busd.connect(daemon.unix_url) as client:
            star = await client.subscribe(f"{base}.*.paris")
            tail = await client.subscribe(f"{base}.>")
            for subject in (f"{base}.today.paris", f"{base}.today.lyon", f"{base}.week.paris.am"):
                await client.publish(subject, subject)
            await client.flush()
            got_star = [(await star.next(timeout=10)).subject]
            got_tail = [(await tail.next(timeout=10)).subject for _ in range(3)]
            # `*` is exactly one token: only the first; `>` one or more: all three.
            assert got_star == [f"{base}.today.paris"]
            assert got_tail == [
                f"{base}.today.paris",
                f"{base}.today.lyon",
                f"{base}.week.paris.am",
            ]
            await client.flush()
            assert star.pending == 0

    run(scenario())


def test_a_queue_group_shares_messages_and_plain_subscribers_get_all(daemon: Daemon) -> None:
    subject = unique("jobs")
    count = 40

    async def scenario() -> None:
        async with busd.connect(daemon.tcp_url) as a, busd.connect(daemon.unix_url) as b:
            worker_a = await a.subscribe(subject, queue="workers")
            worker_b = await b.subscribe(subject, queue="workers")
            watcher = await a.subscribe(subject)
            for i in range(count):
                await b.publish(subject, str(i))
            seen = [(await watcher.next(timeout=10)).payload for _ in range(count)]
            assert seen == [str(i).encode() for i in range(count)]
            # Each message went to exactly one member of the group.
            await a.flush()
            await b.flush()
            shared = []
            for worker in (worker_a, worker_b):
                while worker.pending:
                    shared.append((await worker.next()).payload)
            assert sorted(shared) == sorted(seen)

    run(scenario())


def test_messages_arrive_in_publish_order(daemon: Daemon, transport: str) -> None:
    subject = unique("ordered")

    async def scenario() -> None:
        async with busd.connect(daemon.url(transport)) as client:
            sub = await client.subscribe(subject, capacity=64)
            # More than the subscription holds: reading pauses and resumes.
            for i in range(2000):
                await client.publish(subject, i.to_bytes(4, "big"))
            for i in range(2000):
                msg = await sub.next(timeout=10)
                assert int.from_bytes(msg.payload, "big") == i

    run(scenario())


def test_unsubscribe_ends_the_iteration(daemon: Daemon) -> None:
    subject = unique("gone")

    async def scenario() -> None:
        async with busd.connect(daemon.unix_url) as client:
            async with await client.subscribe(subject) as sub:
                await client.publish(subject, b"1")
                assert (await sub.next(timeout=10)).payload == b"1"
            with pytest.raises(StopAsyncIteration):
                await sub.next(timeout=1)
            # The daemon no longer routes to it: a later publish is not an error.
            await client.publish(subject, b"2")
            await client.flush()

    run(scenario())


def test_value_sets_travel_as_messagepack_maps(daemon: Daemon) -> None:
    subject = unique("typed")
    forecast = {"city": "Paris", "high": 21, "rain": 0.25, "alerts": [], "raw": b"\x00", "ok": True}

    async def scenario() -> None:
        async with busd.connect(daemon.unix_url) as client:
            sub = await client.subscribe(subject)
            await client.publish(subject, busd.pack(forecast))
            msg = await sub.next(timeout=10)
            assert msg.value_set() == forecast

    run(scenario())


def test_bad_subjects_fail_locally_and_the_connection_stays(daemon: Daemon) -> None:
    async def scenario() -> None:
        async with busd.connect(daemon.unix_url) as client:
            with pytest.raises(busd.InvalidSubject):
                await client.publish("weather.*", b"x")
            with pytest.raises(busd.InvalidSubject):
                await client.subscribe("weather..paris")
            with pytest.raises(busd.InvalidSubject):
                await client.subscribe("weather.>.paris")
            await client.flush()  # still connected

    run(scenario())


def test_a_frame_over_max_frame_is_refused_before_sending(daemon: Daemon) -> None:
    async def scenario() -> None:
        async with busd.connect(daemon.unix_url) as client:
            too_big = b"x" * (client.limits.max_frame + 1)
            with pytest.raises(busd.FrameTooLarge):
                await client.publish(unique("big"), too_big)
            await client.flush()

    run(scenario())


def test_close_ends_iterations_and_fails_later_calls(daemon: Daemon) -> None:
    subject = unique("closing")

    async def scenario() -> None:
        client = await busd.connect(daemon.unix_url)
        sub = await client.subscribe(subject)
        waiting = asyncio.ensure_future(sub.next())
        await client.close()
        with pytest.raises(StopAsyncIteration):
            await waiting
        with pytest.raises(busd.Closed):
            await client.publish(subject, b"late")
        assert client.is_closed

    run(scenario())
