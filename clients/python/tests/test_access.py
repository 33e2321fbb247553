"""Packages: proofs by token (the HMAC challenge) and by peer credentials,
and the access rules deciding who reaches whom, under a config written
here.

Non-delivery is never shown by waiting: a marker the rules allow is
published after the denied message, on the same subject to the same
subscriber, and must be the next message it sees.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run, unique
from daemon import Daemon

import busd

WEATHER = "Contoso.Weather_8wekyb3d8bbwe"
MAPS = "Fabrikam.Maps_1234567890abc"
OTHER = "Litware.Other_1234567890abc"
LOCAL = "Contoso.Local_8wekyb3d8bbwe"

CONFIG = f"""
[daemon]
unpackaged = "same-uid"

[[package]]
pfn = "{WEATHER}"
loopback = true
token_file = "tokens/weather.key"
in = ["{MAPS}"]
out = ["{MAPS}"]

[[package]]
pfn = "{MAPS}"
loopback = true
token_file = "tokens/maps.key"
in = ["{WEATHER}"]
out = ["{WEATHER}"]

[[package]]
pfn = "{OTHER}"
loopback = true
token_file = "tokens/other.key"

[[package]]
pfn = "{LOCAL}"
loopback = true
uids = [{os.getuid()}]
"""


def _start(directory: Path) -> Daemon:
    d = Daemon(directory, CONFIG)
    for name in ("weather", "maps", "other"):
        d.token(name)
    return d.start()


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with the packages above; only proofs that hold are made
    here (a failed proof slows that uid's later claims)."""
    d = _start(tmp_path_factory.mktemp("rules"))
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def fresh_rules(tmp_path: Path) -> Iterator[Daemon]:
    """The same rules on a daemon of its own, for proofs meant to fail."""
    d = _start(tmp_path / "busd")
    try:
        yield d
    finally:
        d.stop()


def _as(d: Daemon, pfn: str, key: str, transport: str = "unix") -> busd.connect:
    return busd.connect(d.url(transport), pfn=pfn, token_file=d.dir / "tokens" / f"{key}.key")


def test_a_token_proves_the_package_and_receivers_see_it(rules: Daemon, transport: str) -> None:
    subject = unique("weather.today")

    async def scenario() -> None:
        async with (
            _as(rules, WEATHER, "weather", transport) as weather,
            _as(rules, MAPS, "maps", transport) as maps,
        ):
            assert (weather.pfn, maps.pfn) == (WEATHER, MAPS)
            sub = await maps.subscribe(subject)
            await weather.publish(subject, b"sunny")
            msg = await sub.next(timeout=10)
            assert msg.sender == busd.Sender(weather.client_id, WEATHER)

            service = unique("contoso.weather.forecast")

            async def forecast(request: busd.Request) -> bytes:
                assert request.sender.pfn == MAPS
                return b"21C"

            await weather.serve(service, forecast)
            assert (await maps.request(service, b"paris")).payload == b"21C"

    run(scenario())


def test_a_package_the_rules_do_not_name_is_denied(rules: Daemon) -> None:
    subject, service = unique("maps.inbox"), unique("contoso.weather.private")

    async def scenario() -> None:
        async with (
            _as(rules, MAPS, "maps") as maps,
            _as(rules, WEATHER, "weather") as weather,
            _as(rules, OTHER, "other") as other,
            busd.connect(rules.unix_url) as unpackaged,
        ):
            assert other.pfn == OTHER
            inbox = await maps.subscribe(subject)
            # Neither another package nor an unpackaged client reaches Maps;
            # publishing is no error: a publisher never learns who listens.
            await other.publish(subject, b"from other")
            await unpackaged.publish(subject, b"from unpackaged")
            await other.flush()
            await unpackaged.flush()
            await weather.publish(subject, b"marker")
            assert (await inbox.next(timeout=10)).payload == b"marker"

            async def private(request: busd.Request) -> bytes:
                return b"secret"

            await weather.serve(service, private)
            with pytest.raises(busd.NotAuthorized) as denied:
                await other.request(service, b"?")
            assert denied.value.code == "NotAuthorized"
            with pytest.raises(busd.NotAuthorized):
                await unpackaged.request(service, b"?")
            assert (await maps.request(service, b"?")).payload == b"secret"

    run(scenario())


def test_peer_credentials_prove_a_package_over_the_unix_socket(rules: Daemon) -> None:
    async def scenario() -> None:
        async with busd.connect(rules.unix_url, pfn=LOCAL) as local:
            assert local.pfn == LOCAL
            await local.flush()

    run(scenario())


def test_a_bad_token_is_refused(fresh_rules: Daemon, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("0123456789abcdef" * 4 + "\n")
    wrong.chmod(0o600)

    async def scenario() -> None:
        with pytest.raises(busd.AuthFailed) as refused:
            await busd.connect(fresh_rules.unix_url, pfn=WEATHER, token_file=wrong)
        assert refused.value.code == "AuthFailed"
        assert f"cannot prove package {WEATHER}" in str(refused.value)

    run(scenario())


def test_a_package_not_configured_is_refused_as_a_wrong_proof_is(
    fresh_rules: Daemon, tmp_path: Path
) -> None:
    async def scenario() -> None:
        token = fresh_rules.dir / "tokens" / "weather.key"
        stranger = "Fabrikam.Stranger_1234567890abc"
        with pytest.raises(busd.AuthFailed):
            await busd.connect(fresh_rules.tcp_url, pfn=stranger, token_file=token)
        # A package with no token configured: the same answer.
        with pytest.raises(busd.AuthFailed):
            await busd.connect(fresh_rules.unix_url, pfn=LOCAL, token_file=token)

    run(scenario())


def test_options_that_cannot_prove_anything_fail_before_connecting(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(busd.Config):
            await busd.connect("unix:///nonexistent/busd.sock", token_file=tmp_path / "x.key")
        with pytest.raises(busd.Config):
            await busd.connect("unix:///nonexistent/busd.sock", pfn="Contoso.Weather")
        with pytest.raises(busd.Config):
            await busd.connect(
                "unix:///nonexistent/busd.sock", pfn=WEATHER, token_file=tmp_path / "missing.key"
            )

    run(scenario())
