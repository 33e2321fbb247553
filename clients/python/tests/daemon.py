"""A real ``busd run`` for the tests, and the ``busd`` command beside it.

The daemon listens on 127.0.0.1 at a port the kernel picks and on a unix
socket in a temp dir; it announces both in its ``ready: serving …`` log
line, which is where the tests read them. Every wait is bounded polling of
a condition (a log line, a registration the daemon lists), never a sleep
that hopes something happened meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[3]

#: The ``busd`` binary: ``BUSD_BIN``, else the workspace's debug build.
BUSD_BIN = os.environ.get("BUSD_BIN", str(REPO / "target" / "debug" / "busd"))

#: How long any single awaited condition may take before a test fails.
WAIT = 20.0

_READY = re.compile(r"ready: serving (?P<endpoints>.*?); config")


def poll(what: str, probe: Callable[[], T | None], limit: float = WAIT) -> T:
    """Calls ``probe`` until it returns something, at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Daemon:
    """``busd run`` on ``127.0.0.1:0`` and ``DIR/busd.sock``, with an
    optional config file and token files in ``DIR``."""

    def __init__(
        self, directory: Path, config: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.dir = directory
        self.env = env or {}
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sock = self.dir / "busd.sock"
        self.log_path = self.dir / "busd.log"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.dir / "busd.toml"
            self.config_path.write_text(config)
        self.tcp_url = ""
        self.unix_url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def token(self, name: str) -> Path:
        """Writes a token file ``tokens/NAME.key`` as ``busd token new``
        does (64 hex digits, mode 0600); its path."""
        tokens = self.dir / "tokens"
        tokens.mkdir(mode=0o700, exist_ok=True)
        path = tokens / f"{name}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        return path

    def start(self) -> Daemon:
        args = [BUSD_BIN, "run", "--tcp", "127.0.0.1:0", "--unix", str(self.sock)]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        env = {**os.environ, "RUST_LOG": "info", **self.env}
        env.pop("BUSD_URL", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env
            )
        endpoints = poll("the daemon's ready line", self._ready)
        for url in endpoints.split(", "):
            if url.startswith("tcp://"):
                self.tcp_url = url
            elif url.startswith("unix://"):
                self.unix_url = url
        assert self.tcp_url and self.unix_url, f"endpoints: {endpoints}"
        return self

    def _ready(self) -> str | None:
        assert self.proc is not None
        found = _READY.search(self.log())
        if found:
            return found.group("endpoints")
        if self.proc.poll() is not None:
            raise AssertionError(f"busd exited with {self.proc.returncode}:\n{self.log()}")
        return None

    def log(self) -> str:
        """The daemon's log (stderr) so far."""
        return self.log_path.read_text(errors="replace")

    def url(self, transport: str) -> str:
        """The URL of ``"tcp"`` or ``"unix"``."""
        return self.tcp_url if transport == "tcp" else self.unix_url

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # -- the busd command, as a script would use it

    def cli(
        self,
        *args: str,
        transport: str = "unix",
        identity: Sequence[str] = (),
        timeout: float = WAIT,
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``busd ARGS --server URL`` to completion."""
        return subprocess.run(
            self._argv(args, transport, identity),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self._cli_env(),
        )

    def spawn(
        self, *args: str, transport: str = "unix", identity: Sequence[str] = ()
    ) -> subprocess.Popen[str]:
        """Starts ``busd ARGS --server URL`` (``sub``, ``reply``…); the
        caller waits for it or :func:`stop_process`\\ es it."""
        return subprocess.Popen(
            self._argv(args, transport, identity),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._cli_env(),
        )

    def _argv(self, args: Sequence[str], transport: str, identity: Sequence[str]) -> list[str]:
        # Right after the subcommand: `reply … --exec CMD ARGS…` gives every
        # word after --exec to the command.
        command, *rest = args
        return [BUSD_BIN, command, "--server", self.url(transport), *identity, *rest]

    def _cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUSD_")}
        env["RUST_LOG"] = "warn"
        return env

    def ctl(self, what: str) -> Any:
        """``busd ctl --json WHAT``, parsed (the tests run as the daemon's
        uid, an admin)."""
        done = self.cli("ctl", "--json", what)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def wait_for_registration(self, kind: str, subject: str) -> None:
        """Waits until some connection holds a ``kind`` (``"subscription"``
        or ``"service"``) registration of ``subject``, as ``busd ctl subs``
        lists them: how a test knows a ``busd sub`` or ``busd reply`` it
        started is ready."""

        def registered() -> bool | None:
            rows = self.ctl("subs")
            return (
                True if any(r["kind"] == kind and r["subject"] == subject for r in rows) else None
            )

        poll(f"a {kind} of {subject}", registered)


def stop_process(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Ends a spawned command (SIGTERM, then SIGKILL); its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def read_lines(proc: subprocess.Popen[str], count: int, limit: float = WAIT) -> list[str]:
    """The next ``count`` lines a spawned command prints, waiting at most
    ``limit`` seconds for them (read on a thread: a pipe has no timeout)."""
    lines: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        while len(lines) < count:
            line = proc.stdout.readline()
            if not line:
                return
            lines.append(line.rstrip("\n"))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(limit)
    if len(lines) < count:
        raise AssertionError(f"{proc.args!r} printed {len(lines)} of {count} lines: {lines}")
    return lines
