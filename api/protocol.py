"""The HTTP/1.1 protocol the API is served with: uvicorn's httptools protocol plus limits on what
a request may send before the app sees it.

httptools hands uvicorn a header only once it is complete and builds it by concatenating bytes,
so a 64 MB header was read in full and held the event loop (and ``/healthz``) for seconds;
uvicorn has no cap on header size or count for httptools and no timeout for a request that
trickles in (``timeout_keep_alive`` covers idle connections only). Here:

- the bytes of a request's head are counted as they arrive, before the parser sees them, and
  its headers when the head is complete; over ``NAO_MAX_HEADER_BYTES`` or ``NAO_MAX_HEADERS``
  the answer is ``431 Request Header Fields Too Large`` and the connection is closed;
- a request whose head or body is not complete ``NAO_REQUEST_READ_TIMEOUT_S`` after its first
  byte (or after the connection opened) is answered ``408 Request Timeout`` and closed
  (slowloris).

Parsing a keep-alive GET costs about 0.6 us more than uvicorn's 4.7 us (a request is served in
about 500 us); `nao bench api` serves through this class.
``serve_api`` (``nao api``, ``nao up``, the API image) passes it as uvicorn's ``http``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from store.settings import get_settings

logger = logging.getLogger(__name__)

# After a refusal, what the client still sends is read and dropped this long, so that a client
# busy sending a huge header reads the answer instead of a connection reset.
_LINGER_S = 1.0


class HeadTooLarge(Exception):
    """Raised inside the parser's callback to stop it; the protocol answers 431."""


class HttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with header caps and a read timeout (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.read_timeout = settings.request_read_timeout_s
        self.in_head = True  # from a request's first byte (or its predecessor's end) to its head's
        self.head_bytes = 0  # bytes received while in_head: the head so far
        self.request_started: float | None = None  # loop time of the current request's start
        self.read_timer: asyncio.TimerHandle | None = None  # one per connection, re-armed lazily
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.request_started = self.loop.time()  # a connection that never sends is timed out too
        self._arm_read_timer(self.read_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the head counted and a refusal answered instead of a 400."""
        if self.refused:
            return  # lingering: dropped
        self._unset_keepalive_if_required()
        if self.in_head:
            if self.request_started is None:
                self.request_started = self.loop.time()
                if self.read_timer is None:
                    self._arm_read_timer(self.read_timeout)
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self.refuse(431, "Request header fields too large.")
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            self._cancel_read_timer()  # the connection is another protocol's now
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # Still in the head: every byte counted since the head began is the head's.
        if self.in_head and self.head_bytes > self.max_header_bytes:
            self.refuse(431, "Request header fields too large.")

    def on_headers_complete(self) -> None:
        self.in_head = False
        if len(self.headers) > self.max_headers or (
            # head_bytes may hold the start of the body too: then count the head exactly
            self.head_bytes > self.max_header_bytes
            and self._exact_head_bytes() > self.max_header_bytes
        ):
            raise HeadTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_head, self.head_bytes, self.request_started = True, 0, None
        super().on_message_complete()

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with ``Connection: close`` unless a response is already under way,
        then close: at once, or, when the write side can be shut first, after a short linger."""
        self.refused = True
        self._cancel_read_timer()
        cycle = self.cycle
        answering = cycle is not None and cycle.response_started
        if answering and self.in_head:  # the previous request's answer: is it complete?
            answering = not cycle.response_complete
        self.logger.warning("%d %s The connection is closed.", status, message)
        if answering or self.transport.is_closing():
            self.transport.close()
            return
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() ends, its answer is dropped
            cycle.message_event.set()
        body = message.encode("ascii")
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()  # drop what comes until the client closes or the linger ends
        self.loop.call_later(_LINGER_S, self.transport.close)

    def _exact_head_bytes(self) -> int:
        """The request target plus each header line (name, ": ", value, CRLF)."""
        return len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)

    def _arm_read_timer(self, delay: float) -> None:
        self.read_timer = self.loop.call_later(delay, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def _read_timed_out(self) -> None:
        """Not a timer per request (arming and cancelling one cost 3 us, more than half of
        parsing): one per connection, which looks at the request under way when it fires."""
        self.read_timer = None
        if self.request_started is None or self.transport.is_closing():
            return  # between requests: the next one arms it again
        left = self.request_started + self.read_timeout - self.loop.time()
        if left > 0:
            self._arm_read_timer(left)
        else:
            self.refuse(408, "Request not received in time.")
