"""What a serving process does around its replies: reap orphans, and save on shutdown.

Under daphne (Twisted's asyncio reactor) chatsite.asgi installs these hooks:
- when the server starts, and then every REAP_SECONDS, replies left `streaming` by a
  process that died are finished as `interrupted` with their last text, and images
  uploaded but never sent are removed after CHAT_UNSENT_IMAGE_HOURS;
- when the server starts, the connection to the provider is warmed up (llm.provider_reachable);
- when the server stops (SIGTERM, Ctrl-C), new replies are refused (503 + Retry-After),
  running ones have CHATSITE_DRAIN_SECONDS to finish, and those still running are
  cancelled: each publishes and saves the text it has as `interrupted`. Their watchers
  here are sent the end before daphne cancels the connections (its own shutdown step).
"""

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings
from redis.exceptions import RedisError

from conversations import generation, images, llm
from conversations.store import reply_reap_orphans
from providers.clients import clients_close

if TYPE_CHECKING:
    from twisted.internet import defer

# The WebSocket close code for "the server is restarting: connect again".
SERVICE_RESTART = 1012

logger = logging.getLogger(__name__)

REAP_SECONDS = 30.0


async def reap_once() -> int:
    # First: it needs no Redis, so an outage (reaping raises) does not stop it.
    removed = await database_sync_to_async(images.attachment_unsent_purge)()
    if removed:
        logger.info("Removed %s uploaded image(s) never sent", removed)
    reaped: int = await database_sync_to_async(reply_reap_orphans)(running=generation.running_ids())
    if reaped:
        logger.info("Marked %s reply(ies) left unfinished by a stopped process as interrupted", reaped)
    return reaped


async def reap_forever() -> None:
    while True:
        try:
            await reap_once()
        except RedisError as exc:  # an outage: leases cannot be read, so nothing is reaped
            logger.warning("Redis unreachable (%r); looking for unfinished replies later", exc)
        except Exception:
            logger.exception("Reaping unfinished replies failed; trying again later")
        await asyncio.sleep(REAP_SECONDS)


_reaper: "asyncio.Task[None] | None" = None
_warm: "asyncio.Future[bool] | None" = None


def _close_oversized_frames_politely() -> None:
    """Make daphne answer a frame over its 1 MiB limit with close code 1009.

    Autobahn, under daphne, drops the TCP connection on a protocol violation by
    default (failByDrop), so a client only sees 1006 and cannot tell why.
    """
    from daphne.ws_protocol import WebSocketFactory

    if getattr(WebSocketFactory, "_chatsite_closes_politely", False):
        return
    original_init = WebSocketFactory.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = init
    WebSocketFactory._chatsite_closes_politely = True


def _send_small_writes_at_once() -> None:
    """TCP_NODELAY on daphne's HTTP connections, as autobahn sets it on WebSockets.

    An SSE stream is a run of small writes. With Nagle's algorithm on, a write waits for
    the client to acknowledge the one before, and clients delay their acknowledgements
    by up to 200 ms: the first token of a stream arrived ~200 ms late."""
    import os

    from daphne.http_protocol import HTTPFactory

    if getattr(HTTPFactory, "_chatsite_no_delay", False) or os.environ.get("CHATSITE_NODELAY") == "0":
        return
    build_protocol = HTTPFactory.buildProtocol

    def build(self: Any, addr: Any) -> Any:
        protocol = build_protocol(self, addr)
        make_connection = protocol.makeConnection

        def make(transport: Any) -> None:
            set_no_delay = getattr(transport, "setTcpNoDelay", None)
            if set_no_delay is not None:
                set_no_delay(True)
            make_connection(transport)

        protocol.makeConnection = make
        return protocol

    HTTPFactory.buildProtocol = build
    HTTPFactory._chatsite_no_delay = True


def _failure_logged(what: str) -> Callable[[Any], None]:
    """An errback that logs the failure of the shutdown step `what`, with its traceback.
    Each step is followed by one: the next step runs whatever the outcome, and swallows it."""

    def log(failure: Any) -> None:
        logger.error("%s on shutdown failed:\n%s", what, failure.getTraceback())

    return log


def _then(steps: "defer.Deferred[Any]", what: str, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` after the steps before it, whatever their outcome, and log its failure."""
    from twisted.internet import defer

    steps.addBoth(lambda _result: defer.Deferred.fromFuture(asyncio.ensure_future(step())))
    steps.addErrback(_failure_logged(what))


def _save_replies_before_connections_close() -> None:
    """Run generation.shutdown() inside daphne's own shutdown step, before it cancels
    every connection: daphne cancels them in a "before shutdown" trigger of its own, and
    Twisted runs all such triggers at once, so a separate trigger would save the replies
    but leave their SSE clients and sockets without the end event."""
    from daphne.server import Server
    from twisted.internet import defer

    if getattr(Server, "_chatsite_saves_replies", False):
        return
    kill_all_applications = Server.kill_all_applications

    def kill_after_saving(self: Any) -> "defer.Deferred[Any]":
        if _reaper is not None:
            _reaper.cancel()
        drained = generation.shutdown(drain=settings.CHATSITE_DRAIN_SECONDS)
        saved = defer.Deferred.fromFuture(asyncio.ensure_future(drained))
        saved.addErrback(_failure_logged("Saving replies"))
        saved.addBoth(lambda _result: kill_all_applications(self))
        saved.addErrback(_failure_logged("Cancelling the requests and sockets"))
        # Once nothing can write to them any more: a frame sent after the close would fail.
        _then(saved, "Telling sockets to reconnect", lambda: _sockets_told_to_reconnect(self))
        # Their aiohttp sessions, which say so in the log when they are collected open.
        _then(saved, "Closing the model clients", clients_close)
        return saved

    Server.kill_all_applications = kill_after_saving
    Server._chatsite_saves_replies = True


async def _sockets_told_to_reconnect(server: Any, *, within: float = 1.0) -> None:
    """Close every open WebSocket with 1012 (service restart) as the server stops, and
    wait (up to `within` seconds) for the close frames to go out.

    The page's socket (htmx's ws extension) reconnects after 1012, through the proxy to
    a server still serving, and the conversation's reply being written is reattached
    there. Daphne would drop the connections without a close frame (1006): the page
    reconnects after that too, but a client cannot tell a restart from a broken network.
    Twisted drops every connection as the reactor stops, with what it had not written
    yet, so the frames must be out first.
    """
    from daphne.ws_protocol import WebSocketProtocol

    closing = [
        protocol
        for protocol in list(server.connections)
        if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN
    ]
    for protocol in closing:
        # Not serverClose (autobahn's sendClose): it takes only 1000 and 3000-4999, the
        # codes an application may send; 1012 is the server's own.
        protocol.sendCloseFrame(code=SERVICE_RESTART, isReply=False)
    deadline = asyncio.get_running_loop().time() + within
    while any(protocol.state != protocol.STATE_CLOSED for protocol in closing):
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.02)


def install_daphne_hooks() -> None:
    """Hook into Twisted's start and shutdown when this process runs under daphne."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not under daphne (tests' in-process ASGI, management commands)
    from twisted.internet import reactor as twisted_reactor

    reactor: Any = twisted_reactor  # Twisted types the reactor as interfaces; it is all of them

    def start_reaper() -> None:
        global _reaper, _warm
        _reaper = asyncio.ensure_future(reap_forever())
        _warm = asyncio.ensure_future(llm.provider_reachable())

    _close_oversized_frames_politely()
    _send_small_writes_at_once()
    _save_replies_before_connections_close()
    reactor.callWhenRunning(start_reaper)
