#!/usr/bin/env python3
"""Throughput and latency of this Python client, beside nats-py on NATS.

Two workloads, the ones ``busd bench`` and ``bench/compare.sh`` measure:

- ``pubsub``: one publisher, one subscriber, ``--size`` bytes per message
  (256 by default), ``--count`` messages; msgs/s from the publisher's
  first message to the subscriber's last. Each payload starts with its
  sequence number, and the subscriber checks that every message arrived,
  in order.
- ``reqrep``: one requester calling one responder, ``--size`` bytes (128 by
  default) each way, ``--count`` sequential requests; p50, p99 and mean
  round trip in microseconds.

Publisher, subscriber, requester and responder run as separate processes
(as ``busd bench --procs`` and compare.sh run theirs), each on its own
event loop; ``--in-process`` runs them on one loop instead.

Each system is driven the way its users drive it:

- busd: ``publish`` in a loop (the client coalesces frames into one write
  per turn of the event loop and waits only when the socket is full),
  ``flush`` once at the end; the subscription uses the lossless
  ``Block`` overflow policy, as compare.sh's busd subscribers do
  (``--overflow`` to change it); ``async for`` over the subscription;
  a service handler answering each request.
- NATS (nats-py): ``publish`` in a loop (nats-py buffers and flushes on its
  own, pacing the publisher when its pending buffer is full), ``flush``
  once at the end (``--nats-flush-every N`` adds one every N messages);
  ``async for`` over ``sub.messages``; a subscription callback answering
  with ``msg.respond``; the requester uses ``nc.request``.

Usage::

    pip install ./clients/python nats-py        # nats-server: apt-get install -y nats-server
    python clients/python/bench.py busd pubsub                  # starts its own busd (unix)
    python clients/python/bench.py busd reqrep --transport tcp
    python clients/python/bench.py busd pubsub --server unix:///run/user/1000/busd/busd.sock
    python clients/python/bench.py nats pubsub                  # starts its own nats-server
    python clients/python/bench.py nats reqrep --server nats://127.0.0.1:4222
    python clients/python/bench.py all all --rounds 3 --json    # both, both workloads, alternating

The same workloads from the Rust SDK, for comparison::

    busd bench pubsub --size 256 --count 100000 --procs --overflow block [--server URL]
    busd bench reqrep --size 128 --count 5000 --procs [--server URL]

``BUSD_BIN`` names the busd binary (default ``target/release/busd``, then
``target/debug/busd``, then ``busd`` on PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SUBJECT = "bench.pubsub"
SERVICE = "bench.reqrep"


# ---------------------------------------------------------------- servers


def _busd_bin() -> str:
    if "BUSD_BIN" in os.environ:
        return os.environ["BUSD_BIN"]
    for build in ("release", "debug"):
        path = REPO / "target" / build / "busd"
        if path.exists():
            return str(path)
    return shutil.which("busd") or "busd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def busd_server(transport: str) -> AsyncIterator[str]:
    """A ``busd run`` of its own on a temp socket and a free port; its URL."""
    with tempfile.TemporaryDirectory(prefix="busd-bench-") as tmp:
        sock = Path(tmp) / "busd.sock"
        port = _free_port()
        proc = await asyncio.create_subprocess_exec(
            _busd_bin(), "run", "--tcp", f"127.0.0.1:{port}", "--unix", str(sock),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )  # fmt: skip
        try:
            url = f"tcp://127.0.0.1:{port}" if transport == "tcp" else f"unix://{sock}"
            await _wait_listening(sock=sock, port=port)
            yield url
        finally:
            proc.terminate()
            await proc.wait()


@asynccontextmanager
async def nats_server() -> AsyncIterator[str]:
    """A ``nats-server`` of its own on a free loopback port; its URL."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        binary, "-a", "127.0.0.1", "-p", str(port),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _wait_listening(port=port)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()


async def _wait_listening(*, port: int, sock: Path | None = None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if sock is not None:
                _, w = await asyncio.open_unix_connection(str(sock))
            else:
                _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.02)
    raise SystemExit("the server did not start listening within 20 s")


# ---------------------------------------------------------------- roles: busd


async def busd_subscriber(url: str, count: int, overflow: str, ready: Any) -> dict[str, Any]:
    import busd

    async with busd.connect(url, name="bench-sub") as client:
        sub = await client.subscribe(SUBJECT, overflow=overflow, capacity=65536)
        await ready()
        return await _receive((m.payload async for m in sub), count)


async def busd_publisher(url: str, count: int, size: int) -> dict[str, Any]:
    import busd

    async with busd.connect(url, name="bench-pub") as client:
        body = bytes(size - 8)
        start = time.monotonic()
        for seq in range(count):
            await client.publish(SUBJECT, seq.to_bytes(8, "big") + body)
        await client.flush(timeout=60)
        return {"start": start, "end": time.monotonic()}


async def busd_responder(url: str, ready: Any, stop: asyncio.Event) -> dict[str, Any]:
    import busd

    async with busd.connect(url, name="bench-rep") as client:

        async def answer(request: busd.Request) -> bytes:
            return request.payload

        await client.serve(SERVICE, answer, concurrency=1)
        await ready()
        await stop.wait()
        return {}


async def busd_requester(url: str, count: int, size: int) -> dict[str, Any]:
    import busd

    async with busd.connect(url, name="bench-req") as client:
        payload = bytes(size)
        return await _time_requests(lambda: client.request(SERVICE, payload, timeout=10), count)


# ---------------------------------------------------------------- roles: nats-py


async def nats_subscriber(url: str, count: int, overflow: str, ready: Any) -> dict[str, Any]:
    import nats

    nc = await nats.connect(url, name="bench-sub")
    try:
        sub = await nc.subscribe(SUBJECT)
        await nc.flush()
        await ready()
        return await _receive((m.data async for m in sub.messages), count)
    finally:
        await nc.close()


async def nats_publisher(url: str, count: int, size: int, flush_every: int) -> dict[str, Any]:
    import nats

    nc = await nats.connect(url, name="bench-pub")
    try:
        body = bytes(size - 8)
        start = time.monotonic()
        for seq in range(count):
            await nc.publish(SUBJECT, seq.to_bytes(8, "big") + body)
            if flush_every and seq % flush_every == flush_every - 1:
                await nc.flush()
        await nc.flush(timeout=60)
        return {"start": start, "end": time.monotonic()}
    finally:
        await nc.close()


async def nats_responder(url: str, ready: Any, stop: asyncio.Event) -> dict[str, Any]:
    import nats

    nc = await nats.connect(url, name="bench-rep")
    try:

        async def answer(msg: Any) -> None:
            await msg.respond(msg.data)

        await nc.subscribe(SERVICE, cb=answer)
        await nc.flush()
        await ready()
        await stop.wait()
        return {}
    finally:
        await nc.close()


async def nats_requester(url: str, count: int, size: int) -> dict[str, Any]:
    import nats

    nc = await nats.connect(url, name="bench-req")
    try:
        payload = bytes(size)
        return await _time_requests(lambda: nc.request(SERVICE, payload, timeout=10), count)
    finally:
        await nc.close()


# ---------------------------------------------------------------- measuring


async def _receive(payloads: AsyncIterator[bytes], count: int) -> dict[str, Any]:
    """Takes ``count`` messages, checking their order; gives up on the rest
    after 10 s without one (they are counted as lost), as ``busd bench``'s
    ``--idle-timeout`` does. The idle check runs beside the loop, so that
    each message costs no timer."""
    got = {"received": 0, "out_of_order": 0, "first": 0.0, "last": 0.0}

    async def take() -> None:
        expected = 0
        async for payload in payloads:
            now = time.monotonic()
            if got["received"] == 0:
                got["first"] = now
            got["last"] = now
            seq = int.from_bytes(payload[:8], "big")
            if seq != expected:
                got["out_of_order"] += 1
            expected = seq + 1
            got["received"] += 1
            if got["received"] >= count:
                return

    task = asyncio.ensure_future(take())
    seen, idle = -1, 0.0
    while not task.done():
        await asyncio.wait({task}, timeout=1)
        if got["received"] == seen:
            idle += 1
            if idle >= 10:
                task.cancel()
        else:
            seen, idle = int(got["received"]), 0.0
    if not task.cancelled():
        task.result()
    return got


async def _time_requests(call: Any, count: int) -> dict[str, Any]:
    for _ in range(min(100, count)):  # warm-up, not counted
        await call()
    rtts = []
    for _ in range(count):
        t0 = time.perf_counter()
        await call()
        rtts.append(time.perf_counter() - t0)
    rtts.sort()
    us = [t * 1e6 for t in rtts]
    return {
        "p50_us": statistics.median(us),
        "p99_us": us[min(len(us) - 1, int(len(us) * 0.99))],
        "mean_us": statistics.fmean(us),
        "requests": count,
    }


# ---------------------------------------------------------------- running


Role = Callable[..., Awaitable[dict[str, Any]]]

ROLES: dict[tuple[str, str], Role] = {
    ("busd", "subscriber"): busd_subscriber,
    ("busd", "publisher"): busd_publisher,
    ("busd", "responder"): busd_responder,
    ("busd", "requester"): busd_requester,
    ("nats", "subscriber"): nats_subscriber,
    ("nats", "publisher"): nats_publisher,
    ("nats", "responder"): nats_responder,
    ("nats", "requester"): nats_requester,
}


def _role_args(system: str, role: str, url: str, args: argparse.Namespace) -> list[Any]:
    if role == "subscriber":
        return [url, args.count, args.overflow]
    if role == "publisher":
        extra = [args.nats_flush_every] if system == "nats" else []
        return [url, args.count, args.size, *extra]
    if role == "requester":
        return [url, args.count, args.size]
    return [url]


async def run_worker(system: str, role: str, argv: list[Any]) -> None:
    """A worker process: ``ready`` on stdout once set up, then its result as
    JSON; a waiting role (responder) ends at the end of stdin."""

    async def ready() -> None:
        print("ready", flush=True)

    fn = ROLES[(system, role)]
    if role == "subscriber":
        result = await fn(*argv, ready)
    elif role == "responder":
        stop = asyncio.Event()

        def stdin_ended() -> None:
            sys.stdin.read()
            stop.set()

        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stdin_ended)
        result = await fn(*argv, ready, stop)
    else:
        result = await fn(*argv)
    print(json.dumps(result), flush=True)


class Worker:
    """A role in a process of its own: this script, re-invoked."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, system: str, role: str, argv: list[Any]) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "_worker", system, role, json.dumps(argv),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def line(self) -> str:
        assert self.proc.stdout is not None
        text = (await asyncio.wait_for(self.proc.stdout.readline(), 120)).decode().strip()
        if not text:
            raise SystemExit(f"a worker exited with {await self.proc.wait()}")
        return text

    async def result(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(await self.line())
        await self.proc.wait()
        return result

    async def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return await self.result()


async def measure(system: str, workload: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run of ``workload``; its figures."""
    first, second = (
        ("subscriber", "publisher") if workload == "pubsub" else ("responder", "requester")
    )
    if args.in_process:
        return await _measure_in_process(system, workload, url, args, first, second)
    waiting = await Worker.start(system, first, _role_args(system, first, url, args))
    assert await waiting.line() == "ready"
    driver = await Worker.start(system, second, _role_args(system, second, url, args))
    driven = await driver.result()
    if workload == "pubsub":
        got = await waiting.result()
        return _pubsub_figures(args, driven, got)
    await waiting.stop()
    return driven


async def _measure_in_process(
    system: str, workload: str, url: str, args: argparse.Namespace, first: str, second: str
) -> dict[str, Any]:
    is_ready = asyncio.Event()

    async def ready() -> None:
        is_ready.set()

    stop = asyncio.Event()
    extra: list[Any] = [ready] if first == "subscriber" else [ready, stop]
    waiting = asyncio.ensure_future(
        ROLES[(system, first)](*_role_args(system, first, url, args), *extra)
    )
    await asyncio.wait_for(is_ready.wait(), 20)
    driven = await ROLES[(system, second)](*_role_args(system, second, url, args))
    if workload == "pubsub":
        return _pubsub_figures(args, driven, await waiting)
    stop.set()
    await waiting
    return driven


def _pubsub_figures(
    args: argparse.Namespace, pub: dict[str, Any], sub: dict[str, Any]
) -> dict[str, Any]:
    seconds = max(sub["last"] - pub["start"], 1e-9)
    return {
        "msgs_per_s": sub["received"] / seconds,
        "mb_per_s": sub["received"] * args.size / seconds / 1e6,
        "sent": args.count,
        "received": sub["received"],
        "lost": args.count - sub["received"],
        "out_of_order": sub["out_of_order"],
        "publish_msgs_per_s": args.count / max(pub["end"] - pub["start"], 1e-9),
    }


@asynccontextmanager
async def server_for(system: str, args: argparse.Namespace) -> AsyncIterator[str]:
    if args.server:
        yield args.server
    elif system == "busd":
        async with busd_server(args.transport) as url:
            yield url
    else:
        async with nats_server() as url:
            yield url


async def main(args: argparse.Namespace) -> None:
    systems = ["busd", "nats"] if args.system == "all" else [args.system]
    workloads = ["pubsub", "reqrep"] if args.workload == "all" else [args.workload]
    for round_ in range(1, args.rounds + 1):
        for workload in workloads:
            for system in systems:  # alternating, so a swing of the machine hits both
                run_args = argparse.Namespace(**vars(args))
                if run_args.size is None:
                    run_args.size = 256 if workload == "pubsub" else 128
                if run_args.count is None:
                    run_args.count = 100_000 if workload == "pubsub" else 5_000
                async with server_for(system, run_args) as url:
                    figures = await measure(system, workload, url, run_args)
                label = f"{system}{'' if system == 'nats' else ' ' + _transport_of(url)}"
                row = {"round": round_, "system": label, "workload": workload,
                       "size": run_args.size, **figures}  # fmt: skip
                _print(row, args.json)


def _transport_of(url: str) -> str:
    return url.split("://", 1)[0]


def _print(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    head = f"round {row['round']}  {row['system']:<10} {row['workload']:<7} {row['size']:>5} B"
    if row["workload"] == "pubsub":
        print(f"{head}  {row['msgs_per_s']:>12,.0f} msgs/s  {row['mb_per_s']:8.1f} MB/s  "
              f"lost {row['lost']}  out of order {row['out_of_order']}", flush=True)  # fmt: skip
    else:
        print(f"{head}  p50 {row['p50_us']:8.1f} µs  p99 {row['p99_us']:8.1f} µs  "
              f"mean {row['mean_us']:8.1f} µs", flush=True)  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("system", choices=["busd", "nats", "all"])
    p.add_argument("workload", choices=["pubsub", "reqrep", "all"])
    p.add_argument("--server", help="a running server's URL (else the bench starts its own)")
    p.add_argument("--transport", choices=["unix", "tcp"], default="unix",
                   help="busd's transport when the bench starts its own daemon")  # fmt: skip
    p.add_argument("--size", type=int, help="payload bytes (default 256 pubsub, 128 reqrep)")
    p.add_argument("--count", type=int, help="messages or requests (default 100000 / 5000)")
    p.add_argument("--overflow", default="Block", choices=["Block", "Disconnect", "DropOldest"],
                   help="busd subscription overflow policy (default Block: lossless)")  # fmt: skip
    p.add_argument(
        "--nats-flush-every",
        type=int,
        default=0,
        metavar="N",
        help="nats-py publisher: flush every N messages too (default: only at the end)",
    )
    p.add_argument("--in-process", action="store_true", help="run both roles on one event loop")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", action="store_true", help="one JSON object per result")
    args = p.parse_args(argv)
    if args.size is not None and args.size < 8:
        p.error("--size must be at least 8 (the sequence number)")
    if args.server and args.system == "all":
        p.error("--server names one system's server: give busd or nats")
    return args


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _, _, system, role, argv = sys.argv
        asyncio.run(run_worker(system, role, json.loads(argv)))
    else:
        asyncio.run(main(parse_args(sys.argv[1:])))
