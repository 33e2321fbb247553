"""Three implementations on one daemon, under access rules: the Rust
``busd`` command (a service and a subscriber), a C program on the C API
(``probe.c``) and the Python client, each a package proven by its token.
Each must reach exactly whom the rules allow, whatever language it is in.

Non-delivery is never shown by waiting. The denied publisher flushes (its
``Pong`` says the daemon has routed the message, PROTOCOL.md 7 and 11.1),
then an allowed publisher sends a marker on the same subject: had the
denied message been delivered, it would be in the subscriber's queue
before the marker, so the marker must be the next line the subscriber
prints.

Needs ``target/debug/busd`` (or ``BUSD_BIN``) and
``target/debug/libbusd_capi.a``: ``cargo build -p busd -p busd-capi``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The Python client's own daemon harness, shared rather than copied.
sys.path.insert(0, str(REPO / "clients" / "python" / "tests"))

from daemon import BUSD_BIN, WAIT, Daemon, read_lines, stop_process  # noqa: E402

import busd  # noqa: E402

CAPI = REPO / "crates" / "busd-capi"
CAPI_LIB = REPO / "target" / "debug" / "libbusd_capi.a"

SERVICE = "Cross.Service_1234567890abc"
C = "Cross.C_1234567890abc"
PY = "Cross.Py_1234567890abc"

# Service accepts C only and may reach C; C reaches Service and Py and
# accepts Py; Py reaches C only and accepts C. (Service's `out` to C is
# moot while C's `in` does not name Service: a message needs both.)
CONFIG = f"""
[daemon]
unpackaged = "same-uid"

[[package]]
pfn = "{SERVICE}"
loopback = true
token_file = "tokens/service.key"
in = ["{C}"]
out = ["{C}"]

[[package]]
pfn = "{C}"
loopback = true
token_file = "tokens/c.key"
in = ["{PY}"]
out = ["{SERVICE}", "{PY}"]

[[package]]
pfn = "{PY}"
loopback = true
token_file = "tokens/py.key"
in = ["{C}"]
out = ["{C}"]
"""

ECHO = "cross.echo"
FROM_PY = "cross.from_py"
FROM_C = "cross.from_c"

# The system libraries Rust's std needs when linked statically.
STATIC_LIBS = ["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"]


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    """``probe.c`` compiled against the static C library, warnings as
    errors: the header must compile cleanly too."""
    if not os.access(BUSD_BIN, os.X_OK):
        pytest.fail(f"no busd binary at {BUSD_BIN}: run `cargo build -p busd` or set BUSD_BIN")
    if not CAPI_LIB.is_file():
        pytest.fail(f"no C library at {CAPI_LIB}: run `cargo build -p busd-capi`")
    program = tmp_path / "probe"
    compiler = os.environ.get("CC") or "cc"
    done = subprocess.run(
        [compiler, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread"]
        + ["-I", str(CAPI / "include"), str(HERE / "probe.c"), str(CAPI_LIB)]
        + [*STATIC_LIBS, "-o", str(program)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"compiling probe.c failed:\n{done.stderr}"
    return program


@pytest.fixture
def rules(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of its own with the three packages above."""
    d = Daemon(tmp_path / "busd", CONFIG)
    for name in ("service", "c", "py"):
        d.token(name)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _token(d: Daemon, name: str) -> str:
    return str(d.dir / "tokens" / f"{name}.key")


def _probe_argv(probe: Path, d: Daemon, *args: str) -> list[str]:
    # The C client comes over tcp, the others over the unix socket: the
    # token proof and the rules must not depend on the transport.
    return [str(probe), d.tcp_url, C, _token(d, "c"), *args]


def _probe_env() -> dict[str, str]:
    # The probe names its daemon in argv; none of the test's own BUSD_*
    # may point it elsewhere.
    return {k: v for k, v in os.environ.items() if not k.startswith("BUSD_")}


def _run_probe(probe: Path, d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _probe_argv(probe, d, *args), capture_output=True, text=True, timeout=WAIT, env=_probe_env()
    )


def _rust_line(line: str) -> tuple[str, str, str]:
    """A ``busd sub`` line, ``SUBJECT<TAB>PFN#ID<TAB>PAYLOAD``, as
    (subject, sender's package, payload)."""
    subject, sender, payload = line.split("\t")
    return subject, sender.rpartition("#")[0], payload


def test_each_language_reaches_exactly_whom_the_rules_allow(probe: Path, rules: Daemon) -> None:
    service_id = ("--pfn", SERVICE, "--token-file", _token(rules, "service"))
    rust_service = rules.spawn("reply", "--echo", ECHO, identity=service_id)
    # Two messages are all it may get (C's marker and C's publish): it
    # exits after them, so its whole output is read at once.
    rust_sub = rules.spawn("sub", "--count", "2", "cross.>", identity=service_id)
    c_sub: subprocess.Popen[str] | None = None
    try:
        rules.wait_for_registration("service", ECHO)
        rules.wait_for_registration("subscription", "cross.>")

        # 1. C calls the Rust service: C's `out` and the service's `in` both
        # name the other.
        done = _run_probe(probe, rules, "req", ECHO, "hello from C")
        assert done.returncode == 0, f"C's request to the Rust service failed: {done.stderr}"
        assert done.stdout == "hello from C\n", "the Rust service did not echo C's payload"

        # Started before Python's publish, and awaited: its "ready" line says
        # the daemon has its subscription. (It prints nothing more until
        # Python publishes, so reading that line buffers nothing that
        # `communicate` below would miss.) Each message is waited for 10 s
        # at most: it then exits by itself.
        c_sub = subprocess.Popen(
            _probe_argv(probe, rules, "sub", FROM_PY, "2", "10000"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_probe_env(),
        )
        assert read_lines(c_sub, 1) == ["ready"], "the C subscriber did not subscribe"

        async def python_side() -> None:
            token = _token(rules, "py")
            async with busd.connect(rules.unix_url, pfn=PY, token_file=token) as py:
                assert py.pfn == PY, "the daemon did not take Python's token as Cross.Py's"

                # 2. Python calls the Rust service: Py's `out` names only C.
                with pytest.raises(busd.NotAuthorized):
                    await py.request(ECHO, b"hello from Python", timeout=10)

                # 3. Python publishes where C and the Rust subscriber listen;
                # only C accepts it. Flushed: routed (or denied) before C's
                # marker below is even sent.
                await py.publish(FROM_PY, b"from Python")
                await py.flush()
                done = await asyncio.to_thread(
                    _run_probe, probe, rules, "pub", FROM_PY, "marker from C"
                )
                assert done.returncode == 0, f"C's marker was not published: {done.stderr}"

                # 4. C publishes where Python and the Rust subscriber listen;
                # both accept C. Subscribed first: `subscribe` returns once
                # the daemon has the subscription.
                inbox = await py.subscribe(FROM_C)
                done = await asyncio.to_thread(
                    _run_probe, probe, rules, "pub", FROM_C, "hello from C"
                )
                assert done.returncode == 0, f"C's publish failed: {done.stderr}"
                try:
                    msg = await inbox.next(timeout=WAIT)
                except busd.Timeout:
                    pytest.fail("Python did not receive C's publish")
                assert (msg.subject, msg.payload) == (FROM_C, b"hello from C")
                assert msg.sender.pfn == C, f"C's message came from {msg.sender}"

        asyncio.run(asyncio.wait_for(python_side(), 2 * WAIT))

        # 3, the C side: Python's message, then C's own marker (one package:
        # C's two connections reach each other).
        out, err = c_sub.communicate(timeout=WAIT)
        assert out.splitlines() == [f"{PY}\tfrom Python", f"{C}\tmarker from C"], (
            f"the C subscriber printed {out!r}, expected Python's message then C's marker;"
            f" stderr: {err}"
        )
        assert c_sub.returncode == 0, f"the C subscriber failed: {err}"

        # 3 and 4, the Rust side: C's marker is the first thing it saw, so
        # Python's earlier message was not delivered; then C's publish.
        try:
            out, err = rust_sub.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            out, err = stop_process(rust_sub)
        seen = [_rust_line(line) for line in out.splitlines()]
        assert seen[:1] == [(FROM_PY, C, "marker from C")], (
            f"the Rust subscriber saw {seen}, expected C's marker first:"
            f" Python's denied message reached it, or the marker did not; stderr: {err}"
        )
        assert seen[1:] == [(FROM_C, C, "hello from C")], (
            f"the Rust subscriber saw {seen}, expected C's publish after the marker; stderr: {err}"
        )
        assert rust_sub.returncode == 0, f"the Rust subscriber failed: {err}"
    finally:
        if c_sub is not None:
            stop_process(c_sub)
        stop_process(rust_sub)
        stop_process(rust_service)
