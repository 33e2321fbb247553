"""busd: an asyncio client of the busd local message bus.

An independent implementation of the wire protocol (``docs/PROTOCOL.md``),
not a binding to the Rust SDK::

    import asyncio, busd

    async def main() -> None:
        async with busd.connect("tcp://127.0.0.1:4271") as client:
            sub = await client.subscribe("weather.*.paris")
            await client.publish("weather.today.paris", b"sunny")
            msg = await sub.next(timeout=5)
            print(msg.subject, msg.sender, msg.payload)

            async def forecast(request: busd.Request) -> bytes:
                return b"21C in " + request.payload

            await client.serve("contoso.weather.forecast", forecast)
            answer = await client.request("contoso.weather.forecast", b"paris")
            print(answer.payload)

    asyncio.run(main())
"""

from .client import Client
from .connecting import connect
from .endpoint import default_unix_path, default_url, parse_endpoint
from .errors import (
    ERROR_CODES,
    AppServiceUnavailable,
    AppUnavailable,
    AuthFailed,
    BusdError,
    Closed,
    Config,
    Connect,
    Decode,
    Disconnected,
    Encode,
    FrameTooLarge,
    InvalidSubject,
    LimitExceeded,
    NoResponders,
    NotAuthorized,
    Protocol,
    ProtocolViolation,
    Refused,
    ResourceLimitsExceeded,
    ResponderGone,
    ServiceFailure,
    ShuttingDown,
    SlowConsumer,
    Timeout,
    UnknownService,
    Unsupported,
)
from .handshake import PROTOCOL_VERSION
from .messages import Message, Reply, Request, Response
from .ops import Headers, Limits, Overflow, Sender, Status
from .pfn import publisher_id
from .service import Service
from .subject import matches
from .subscription import Subscription
from .values import ValueSet, pack, unpack

__version__ = "0.1.0"

__all__ = [
    "ERROR_CODES",
    "PROTOCOL_VERSION",
    "AppServiceUnavailable",
    "AppUnavailable",
    "AuthFailed",
    "BusdError",
    "Client",
    "Closed",
    "Config",
    "Connect",
    "Decode",
    "Disconnected",
    "Encode",
    "FrameTooLarge",
    "Headers",
    "InvalidSubject",
    "LimitExceeded",
    "Limits",
    "Message",
    "NoResponders",
    "NotAuthorized",
    "Overflow",
    "Protocol",
    "ProtocolViolation",
    "Refused",
    "Reply",
    "Request",
    "ResourceLimitsExceeded",
    "ResponderGone",
    "Response",
    "Sender",
    "Service",
    "ServiceFailure",
    "ShuttingDown",
    "SlowConsumer",
    "Status",
    "Subscription",
    "Timeout",
    "UnknownService",
    "Unsupported",
    "ValueSet",
    "connect",
    "default_unix_path",
    "default_url",
    "matches",
    "pack",
    "parse_endpoint",
    "publisher_id",
    "unpack",
]
