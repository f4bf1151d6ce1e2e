"""Flow control of one bidirectional stream: bounded, ordered, newest-frame-wins.

Pure asyncio (no gRPC), so it is unit-tested on its own. One :class:`StreamFlow`
serves one stream:

* **Bounded buffering.** :meth:`StreamFlow.admit` waits while ``buffer`` items are
  admitted but not yet delivered to the client. The reader stops reading, gRPC's
  HTTP/2 flow control then pushes back on the client; a client that stops reading
  its answers therefore stalls its own sending instead of growing server memory.
* **Bounded work.** At most ``in_flight`` items run the handler at once.
* **Newest wins.** Items that cannot start wait per lane (camera). With
  ``newest_wins`` a lane keeps only its newest waiting item: the older one is
  answered ``SKIPPED`` at once and its payload dropped. Waiting lanes start in
  round-robin order, so one fast camera cannot starve the others.
* **Order.** Answers leave in admission order within a lane (a reorder buffer per
  lane); lanes do not wait for each other.
* **Deadlines.** An item whose deadline passed before it could start is answered
  ``EXPIRED`` without running; the handler raising ``DeadlineExceeded`` does too.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.errors import DeadlineExceeded

T = TypeVar("T")
R = TypeVar("R")


class Outcome(enum.Enum):
    """How an admitted item was answered."""

    DONE = "done"
    SKIPPED = "skipped"
    EXPIRED = "expired"
    FAILED = "failed"


@dataclass(eq=False)
class Ticket(Generic[T, R]):
    """One admitted item and, once answered, its outcome. ``item`` is dropped then;
    ``tag`` is what the caller needs to address the answer (e.g. the frame id)."""

    item: T | None
    lane: str
    tag: tuple[str, ...] = ()
    outcome: Outcome | None = None
    result: R | None = None
    error: BaseException | None = None


@dataclass
class FlowStats:
    """Counters and high-water marks of one stream (what the bounds guarantee)."""

    admitted: int = 0
    delivered: int = 0
    done: int = 0
    skipped: int = 0
    expired: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    outstanding: int = 0
    peak_running: int = 0
    peak_waiting: int = 0
    peak_outstanding: int = 0


class StreamFlow(Generic[T, R]):
    """Admit items, run them with bounded concurrency, hand answers back in lane order."""

    def __init__(
        self,
        handler: Callable[[T], Awaitable[R]],
        *,
        lane: Callable[[T], str],
        expired: Callable[[T], bool],
        in_flight: int,
        buffer: int,
        newest_wins: bool = True,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        if in_flight < 1 or buffer < in_flight:
            raise ValueError("need 1 <= in_flight <= buffer")
        self._handler, self._lane_of, self._expired = handler, lane, expired
        self.in_flight, self.buffer, self.newest_wins = in_flight, buffer, newest_wins
        self._on_drop = on_drop or (lambda reason: None)
        self._lanes: dict[str, deque[Ticket[T, R]]] = {}  # admitted, not yet answered out
        self._waiting: OrderedDict[str, deque[Ticket[T, R]]] = OrderedDict()
        self._out: asyncio.Queue[Ticket[T, R] | None] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.stats = FlowStats()

    # --- input side -------------------------------------------------------------------
    async def admit(self, item: T, tag: tuple[str, ...] = ()) -> None:
        """Admit one item, first waiting while ``buffer`` answers are undelivered."""
        ticket: Ticket[T, R] = Ticket(item, self._lane_of(item), tag)
        await self._enter(ticket)
        self._enqueue(ticket)

    async def reject(self, lane: str, error: BaseException, tag: tuple[str, ...] = ()) -> None:
        """Admit an item that already failed (e.g. invalid) so it is answered in order."""
        ticket: Ticket[T, R] = Ticket(None, lane, tag)
        await self._enter(ticket)
        self._finish(ticket, Outcome.FAILED, error=error)

    def close(self) -> None:
        """No more items: :meth:`answers` ends once every admitted one is delivered."""
        self._closed = True
        self._out.put_nowait(None)  # wake the consumer so it re-checks

    async def _enter(self, ticket: Ticket[T, R]) -> None:
        if self._closed:
            raise RuntimeError("flow is closed")
        while self.stats.outstanding >= self.buffer:
            self._room.clear()
            await self._room.wait()
        s = self.stats
        s.admitted += 1
        s.outstanding += 1
        s.peak_outstanding = max(s.peak_outstanding, s.outstanding)
        self._lanes.setdefault(ticket.lane, deque()).append(ticket)

    def _enqueue(self, ticket: Ticket[T, R]) -> None:
        waiting = self._waiting.get(ticket.lane)
        if self.newest_wins and waiting:
            old = waiting.popleft()  # at most one waits per lane in this mode
            self.stats.waiting -= 1
            self._finish(old, Outcome.SKIPPED)
            self._on_drop("superseded")
        if self.stats.running < self.in_flight and not self._waiting:
            self._start(ticket)
            return
        self._waiting.setdefault(ticket.lane, deque()).append(ticket)
        self.stats.waiting += 1
        self.stats.peak_waiting = max(self.stats.peak_waiting, self.stats.waiting)
        self._pump()

    # --- running ------------------------------------------------------------------------
    def _pump(self) -> None:
        while self.stats.running < self.in_flight and self._waiting:
            lane, queue = next(iter(self._waiting.items()))
            ticket = queue.popleft()
            self.stats.waiting -= 1
            if queue:
                self._waiting.move_to_end(lane)  # round-robin across lanes
            else:
                del self._waiting[lane]
            self._start(ticket)

    def _start(self, ticket: Ticket[T, R]) -> None:
        assert ticket.item is not None
        if self._expired(ticket.item):
            error = DeadlineExceeded("deadline passed while waiting")
            self._finish(ticket, Outcome.EXPIRED, error=error)
            self._on_drop("deadline")
            return
        self.stats.running += 1
        self.stats.peak_running = max(self.stats.peak_running, self.stats.running)
        task = asyncio.create_task(self._run(ticket, ticket.item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, ticket: Ticket[T, R], item: T) -> None:
        try:
            result = await self._handler(item)
        except DeadlineExceeded as exc:
            self._finish(ticket, Outcome.EXPIRED, error=exc)
        except Exception as exc:  # answered as FAILED; the edge maps and logs it
            self._finish(ticket, Outcome.FAILED, error=exc)
        else:
            self._finish(ticket, Outcome.DONE, result=result)
        finally:
            self.stats.running -= 1
        self._pump()

    def _finish(
        self,
        ticket: Ticket[T, R],
        outcome: Outcome,
        result: R | None = None,
        error: BaseException | None = None,
    ) -> None:
        ticket.outcome, ticket.result, ticket.error, ticket.item = outcome, result, error, None
        s = self.stats
        if outcome is Outcome.DONE:
            s.done += 1
        elif outcome is Outcome.SKIPPED:
            s.skipped += 1
        elif outcome is Outcome.EXPIRED:
            s.expired += 1
        elif outcome is Outcome.FAILED:
            s.failed += 1
        lane = self._lanes[ticket.lane]
        while lane and lane[0].outcome is not None:
            self._out.put_nowait(lane.popleft())
        if not lane:
            del self._lanes[ticket.lane]

    # --- output side --------------------------------------------------------------------
    async def answers(self) -> AsyncIterator[Ticket[T, R]]:
        """Answered tickets in lane order. An answer counts as delivered when the
        consumer asks for the next one, so a consumer stalled on its own write (a slow
        client) keeps the buffer full and admission paused."""
        while not (self._closed and self.stats.outstanding == 0):
            ticket = await self._out.get()
            if ticket is None:
                continue
            yield ticket
            self.stats.outstanding -= 1
            self.stats.delivered += 1
            self._room.set()

    async def cancel(self) -> None:
        """Stop every running handler (the client went away) and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
