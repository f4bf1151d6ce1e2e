"""Stream flow control: bounds, newest-wins, lane order, deadlines, errors, fairness."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from service.errors import DeadlineExceeded, InvalidImage
from service.grpc.flow import Outcome, StreamFlow, Ticket


@dataclass
class Item:
    lane: str
    n: int
    expired: bool = False


@dataclass
class Gates:
    """A handler whose calls block until the test releases them, one gate per item."""

    events: dict[tuple[str, int], asyncio.Event] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)

    def gate(self, item: Item) -> asyncio.Event:
        return self.events.setdefault((item.lane, item.n), asyncio.Event())

    async def handler(self, item: Item) -> str:
        self.calls.append((item.lane, item.n))
        await self.gate(item).wait()
        return f"{item.lane}{item.n}"

    def release(self, lane: str, n: int) -> None:
        self.events.setdefault((lane, n), asyncio.Event()).set()


def make_flow(handler: Callable[[Item], Awaitable[str]], **kw: Any) -> StreamFlow[Item, str]:
    drops: list[str] = kw.pop("drops", [])
    base: dict[str, Any] = {"in_flight": 2, "buffer": 8}
    return StreamFlow(
        handler,
        lane=lambda i: i.lane,
        expired=lambda i: i.expired,
        on_drop=drops.append,
        **{**base, **kw},
    )


async def until(cond: Callable[[], bool]) -> None:
    """Yield to the loop until ``cond`` holds (no timed sleeps)."""
    for _ in range(10_000):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def collect(flow: StreamFlow[Item, str], n: int) -> list[Ticket[Item, str]]:
    out = []
    async for t in flow.answers():
        out.append(t)
        if len(out) == n:
            break
    return out


def test_every_item_answered_once_in_lane_order() -> None:
    async def main() -> list[Ticket[Item, str]]:
        rng = random.Random(7)

        async def handler(item: Item) -> str:
            for _ in range(rng.randrange(5)):
                await asyncio.sleep(0)  # finish out of order
            return f"{item.lane}{item.n}"

        flow = make_flow(handler, in_flight=4, buffer=16, newest_wins=False)

        async def produce() -> None:
            for n in range(200):
                await flow.admit(Item(rng.choice("abc"), n))
            flow.close()

        producer = asyncio.create_task(produce())
        got = [t async for t in flow.answers()]
        await producer
        assert flow.stats.peak_outstanding <= 16 and flow.stats.peak_running <= 4
        return got

    got = asyncio.run(main())
    assert len(got) == 200 and all(t.outcome is Outcome.DONE for t in got)
    for lane in "abc":
        seq = [int(t.result[1:]) for t in got if t.lane == lane and t.result]
        assert seq == sorted(seq) and seq


def test_newest_frame_wins_and_skips_are_answered_in_order() -> None:
    async def main() -> None:
        gates, drops = Gates(), []
        flow = make_flow(gates.handler, in_flight=1, buffer=8, drops=drops)
        for n in range(4):
            await flow.admit(Item("cam", n))  # 0 runs; 1 and 2 are superseded; 3 waits
        await until(lambda: bool(gates.calls))
        assert gates.calls == [("cam", 0)] and drops == ["superseded", "superseded"]
        assert flow.stats.waiting == 1 and flow.stats.skipped == 2
        gates.release("cam", 0)
        gates.release("cam", 3)
        flow.close()
        got = [(t.outcome, t.result) async for t in flow.answers()]
        assert got == [
            (Outcome.DONE, "cam0"),
            (Outcome.SKIPPED, None),
            (Outcome.SKIPPED, None),
            (Outcome.DONE, "cam3"),
        ]
        assert gates.calls == [("cam", 0), ("cam", 3)]

    asyncio.run(main())


def test_slow_consumer_pauses_admission_at_the_buffer_bound() -> None:
    async def main() -> None:
        async def handler(item: Item) -> str:
            return str(item.n)

        flow = make_flow(handler, in_flight=2, buffer=5, newest_wins=False)
        admitted: list[int] = []

        async def produce() -> None:
            for n in range(50):
                await flow.admit(Item("c", n))
                admitted.append(n)
            flow.close()

        producer = asyncio.create_task(produce())
        await until(lambda: flow.stats.done == 5)  # everything admissible has run
        for _ in range(100):
            await asyncio.sleep(0)
        assert len(admitted) == 5 and not producer.done()  # nobody reads: reading paused
        assert flow.stats.outstanding == 5
        answers = flow.answers()
        first = await anext(answers)
        assert first.result == "0"
        await anext(answers)  # the first counts as delivered once the next is asked for
        await until(lambda: len(admitted) == 6)
        rest = [t async for t in answers]
        await producer
        assert len(rest) == 48 and flow.stats.peak_outstanding == 5

    asyncio.run(main())


def test_expired_items_never_run_and_handler_deadlines_count_as_expired() -> None:
    async def main() -> None:
        drops: list[str] = []

        async def handler(item: Item) -> str:
            if item.n == 2:
                raise DeadlineExceeded("too late in the batcher")
            return str(item.n)

        flow = make_flow(handler, drops=drops)
        for n, exp in ((0, False), (1, True), (2, False)):
            await flow.admit(Item("c", n, expired=exp))
        flow.close()
        got = [t.outcome async for t in flow.answers()]
        assert got == [Outcome.DONE, Outcome.EXPIRED, Outcome.EXPIRED]
        assert drops == ["deadline"]  # the handler counts its own deadline drops

    asyncio.run(main())


def test_failures_and_rejections_are_answered_in_order_and_the_flow_goes_on() -> None:
    async def main() -> None:
        async def handler(item: Item) -> str:
            if item.n == 1:
                raise InvalidImage("corrupt")
            return str(item.n)

        flow = make_flow(handler, newest_wins=False)
        await flow.admit(Item("c", 0))
        await flow.admit(Item("c", 1))
        await flow.reject("c", InvalidImage("empty"))
        await flow.admit(Item("c", 3))
        flow.close()
        got = [t async for t in flow.answers()]
        assert [t.outcome for t in got] == [
            Outcome.DONE,
            Outcome.FAILED,
            Outcome.FAILED,
            Outcome.DONE,
        ]
        assert isinstance(got[1].error, InvalidImage) and got[3].result == "3"

    asyncio.run(main())


def test_waiting_lanes_start_round_robin_so_a_fast_camera_cannot_starve_others() -> None:
    async def main() -> None:
        gates = Gates()
        flow = make_flow(gates.handler, in_flight=1, buffer=64)
        await flow.admit(Item("fast", 0))  # runs
        await flow.admit(Item("slow", 0))  # waits first
        for n in range(1, 20):
            await flow.admit(Item("fast", n))  # keeps superseding its own waiting frame
        gates.release("fast", 0)
        await until(lambda: len(gates.calls) == 2)
        assert gates.calls[1] == ("slow", 0)
        gates.release("slow", 0)
        gates.release("fast", 19)
        flow.close()
        got = [t async for t in flow.answers()]
        assert len(got) == 21 and flow.stats.skipped == 18

    asyncio.run(main())


def test_cancel_stops_running_handlers() -> None:
    async def main() -> None:
        gates = Gates()
        flow = make_flow(gates.handler)
        await flow.admit(Item("c", 0))
        await until(lambda: gates.calls == [("c", 0)])
        await flow.cancel()
        assert flow.stats.running == 0

    asyncio.run(main())


def test_bounds_are_validated() -> None:
    async def handler(item: Item) -> str:
        return ""

    with pytest.raises(ValueError):
        make_flow(handler, in_flight=4, buffer=2)
