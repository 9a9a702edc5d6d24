"""Requests daphne's HTTP parser refuses get an answer, not a dropped connection.

Under daphne, Twisted's HTTPChannel reads the request line and headers before the
application sees anything. It allows a request line of 16 KiB (`MAX_LENGTH`), 16 KiB
for the request line and headers together (`totalHeadersSize`) and 500 headers
(`maxHeaders`). Past the first limit it drops the connection without a word (a 1 MiB
query string: no response, nothing logged); past the others, or for a header, chunk
or form body it cannot parse, it writes a bare `400 Bad Request` with no body. Either
way it closes at once, while the client may still be sending: unread data makes the
close a reset, which can destroy even that answer before the client reads it.

install() makes each of these a real answer with the API's JSON error body, logged:
414 for a request line over the limit, 431 for headers over theirs, 400 for anything
else the parser cannot read. The connection then closes its write side and reads and
drops what the client still sends, for LINGER_SECONDS at most, so the client gets to
read the answer.
"""

import json
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

LINGER_SECONDS = 5.0

_REASONS = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large"}


def _response(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response carrying the API's error shape, ending the connection."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


def _discard(*args: Any) -> None:
    return None


def _refuse(channel: Any, status: int, code: str, message: str) -> None:
    """Answer, stop parsing, and linger so that closing does not reset the answer away."""
    transport = channel.transport
    if transport is None:
        return
    peer = transport.getPeer()
    logger.warning("Refused a request from %s with %s: %s", getattr(peer, "host", peer), status, message)
    # Nothing more from this connection is parsed: the rest of the request is dropped.
    channel._buffer = b""
    channel.dataReceived = channel.lineReceived = channel.rawDataReceived = _discard
    transport.write(_response(status, code, message))
    channel._networkProducer.unregisterProducer()
    lose_write_connection = getattr(transport, "loseWriteConnection", None)
    if lose_write_connection is None:
        transport.loseConnection()
        return
    lose_write_connection()
    transport.resumeProducing()  # keep reading (and dropping) what the client still sends
    channel.callLater(LINGER_SECONDS, transport.abortConnection)


def _line_too_long(channel: Any, line: bytes) -> None:
    if getattr(channel, "_HTTPChannel__first_line", 0):
        _refuse(
            channel,
            414,
            "uri_too_long",
            f"The request's URL is too long (the limit is {channel.MAX_LENGTH} bytes).",
        )
    else:
        _refuse(
            channel,
            431,
            "headers_too_large",
            f"A request header is too long (the limit is {channel.MAX_LENGTH} bytes).",
        )


def _bad_request(channel: Any) -> None:
    if channel._receivedHeaderSize > channel.totalHeadersSize:
        _refuse(
            channel,
            431,
            "headers_too_large",
            f"The request's URL and headers are too large (the limit is {channel.totalHeadersSize} bytes).",
        )
    elif channel._receivedHeaderCount > channel.maxHeaders:
        _refuse(
            channel,
            431,
            "headers_too_large",
            f"The request has too many headers (the limit is {channel.maxHeaders}).",
        )
    else:
        _refuse(channel, 400, "bad_request", "The request could not be read.")


def install() -> None:
    """Patch Twisted's HTTPChannel, when this process runs under daphne."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not under daphne (tests' in-process ASGI, management commands)
    from twisted.web.http import HTTPChannel

    channel: Any = HTTPChannel  # patched by assignment: Twisted's types don't allow it
    channel.lineLengthExceeded = _line_too_long
    channel._respondToBadRequestAndDisconnect = _bad_request
