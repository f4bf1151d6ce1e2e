"""Connection limits for the HTTP server: header size, header and body read timeouts.

uvicorn's httptools protocol has none of them (a 32 MiB header is accepted, a client
that sends a header byte a minute holds its connection forever), so
:func:`limited_protocol` makes a subclass that

* answers ``431`` and closes once the request line and headers pass
  ``http_max_header_bytes`` (counted as they arrive, so memory stays bounded);
* answers ``408`` and closes when the headers are not complete within
  ``http_header_timeout_s`` of the connection (or of the request's first byte);
* closes the connection when the body stalls for ``http_body_timeout_s`` while the
  app waits for it (the app sees a disconnect). Time the app itself spends before it
  reads the body does not count.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import Settings


@dataclass(frozen=True)
class HttpLimits:
    """The limits one server applies to every connection."""

    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float

    @classmethod
    def of(cls, settings: Settings) -> HttpLimits:
        """The limits configured in ``settings``."""
        return cls(
            settings.http_max_header_bytes,
            settings.http_header_timeout_s,
            settings.http_body_timeout_s,
        )


def _answer(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


_TOO_LARGE = _answer(b"431 Request Header Fields Too Large")
_TIMEOUT = _answer(b"408 Request Timeout")


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HttpLimits` (set by the subclass)."""

    limits: HttpLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0  # request line and headers parsed so far (exact)
        self._raw_bytes = 0  # bytes received while the head is incomplete (memory guard)
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # --- connection ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header clock: an idle new connection is closed after it too."""
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop both clocks."""
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; bytes that arrive while the head is incomplete are counted."""
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused:
            # A header still being received is buffered by the parser, not yet counted
            # by on_header: bound that too (twice the limit leaves room for the overlap).
            self._raw_bytes += len(data)
            if self._raw_bytes > 2 * self.limits.max_header_bytes:
                self._refuse(_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, unless this protocol already answered."""
        if not self._refused:
            super().send_400_response(msg)

    # --- parser callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        """A request starts: its head is counted and timed afresh."""
        super().on_message_begin()
        self._in_head, self._head_bytes, self._raw_bytes = True, 0, 0
        self._arm_head()

    def on_url(self, url: bytes) -> None:
        """Count the request line."""
        super().on_url(url)
        self._head_bytes += len(url)
        self._check_head_size()

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count each header."""
        super().on_header(name, value)
        self._head_bytes += len(name) + len(value) + 4
        self._check_head_size()

    def on_headers_complete(self) -> None:
        """The head is complete: stop its clock, start the body's."""
        self._in_head = False
        self._cancel(self._head_timer)
        self._head_timer = None
        if not self._refused:
            super().on_headers_complete()
            self._arm_body()

    def on_body(self, body: bytes) -> None:
        """A piece of body arrived: the body clock starts again."""
        super().on_body(body)
        self._arm_body()

    def on_message_complete(self) -> None:
        """The whole request is read: no clock runs until the next one begins."""
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    # --- limits ----------------------------------------------------------------------
    def _check_head_size(self) -> None:
        if self._head_bytes > self.limits.max_header_bytes and not self._refused:
            self._refuse(_TOO_LARGE)
            raise ValueError("request head over the limit")  # stops the parser

    def _refuse(self, answer: bytes) -> None:
        self._refused = True
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _arm_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(_TIMEOUT)

    def _arm_body(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)

    def _body_late(self) -> None:
        self._body_timer = None
        if self.flow.read_paused:  # the app is not reading yet: not the client's delay
            self._arm_body()
        elif not self.transport.is_closing():
            self._refused = True
            self.transport.close()  # the app's receive() sees a disconnect

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            self._cancel(timer)
        self._head_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` that applies ``limits``."""
    return type("LimitedHttp", (LimitedHttpProtocol,), {"limits": limits})
