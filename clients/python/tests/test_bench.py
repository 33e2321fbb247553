"""bench.py still runs: a few messages and requests through each role, as
separate processes, to check the script, not to measure anything (as the
workspace's ``bench_smoke`` e2e test does for ``busd bench``)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from daemon import Daemon

BENCH = Path(__file__).resolve().parents[1] / "bench.py"


def bench(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    row: dict[str, object] = json.loads(done.stdout)
    return row


def test_the_busd_workloads_run_and_lose_nothing(daemon: Daemon) -> None:
    row = bench("busd", "pubsub", "--server", daemon.unix_url, "--count", "300")
    assert (row["received"], row["lost"], row["out_of_order"]) == (300, 0, 0)
    row = bench("busd", "reqrep", "--server", daemon.tcp_url, "--count", "20")
    assert row["requests"] == 20 and isinstance(row["p50_us"], float)


@pytest.mark.skipif(
    importlib.util.find_spec("nats") is None or shutil.which("nats-server") is None,
    reason="nats-py or nats-server is not installed",
)
def test_the_nats_workloads_run_and_lose_nothing() -> None:
    row = bench("nats", "pubsub", "--count", "300")
    assert (row["received"], row["lost"], row["out_of_order"]) == (300, 0, 0)
    row = bench("nats", "reqrep", "--count", "20")
    assert row["requests"] == 20
