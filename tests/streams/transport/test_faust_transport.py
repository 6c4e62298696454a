"""The lean hand-over of fetched messages (streams/transport/faust_transport.py): direct in steady flow, Faust's abortable
``wait_first`` while rebalancing or when flow is suspended; and the app consumes through the transport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.transport.faust_transport import FETCH_MAX_WAIT_MS, SCHEME, LeanConsumer, Transport, deliver


class _FakeConsumer:
    """The two flags and ``wait_first`` that :func:`deliver` reads from a Faust consumer."""

    def __init__(self, flow_active: bool, suspended: bool) -> None:
        self.flow_active = flow_active
        self.suspend_flow = asyncio.Event()
        if suspended:
            self.suspend_flow.set()
        self.wait_first_calls = 0

    async def wait_first(self, *coros: Any) -> None:
        self.wait_first_calls += 1
        tasks = [asyncio.ensure_future(c) for c in coros]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()


@pytest.mark.parametrize(("steady", "direct"), [(True, True), (False, False)])
def test_only_steady_flow_skips_wait_first(steady: bool, direct: bool) -> None:
    async def go() -> tuple[list[int], int]:
        consumer, got = _FakeConsumer(flow_active=True, suspended=False), []

        async def callback(message: Any) -> None:
            got.append(message)

        for m in range(3):
            await deliver(consumer, callback, m, steady)  # type: ignore[arg-type]
        return got, consumer.wait_first_calls

    got, waits = asyncio.run(go())
    assert got == [0, 1, 2]  # in order either way
    assert waits == (0 if direct else 3)


def test_a_suspended_flow_aborts_a_blocked_hand_over() -> None:
    async def go() -> tuple[bool, int]:
        consumer, never = _FakeConsumer(flow_active=True, suspended=True), asyncio.Event()

        async def blocked(message: Any) -> None:
            await never.wait()  # e.g. a full stream buffer during a rebalance

        await asyncio.wait_for(deliver(consumer, blocked, 0, steady=True), 5)  # type: ignore[arg-type]
        return never.is_set(), consumer.wait_first_calls

    was_released, waits = asyncio.run(go())
    assert not was_released and waits == 1


def test_app_consumes_through_the_lean_consumer() -> None:
    from streams.app import app

    assert all(url.scheme == SCHEME for url in app.conf.broker)
    assert isinstance(app.transport, Transport) and app.transport.Consumer is LeanConsumer
    assert 0 < FETCH_MAX_WAIT_MS < 1500  # Faust's own value, which starved partitions for up to 1.5 s


class _Msg:
    """The fields of a Faust message that the commit bookkeeping reads (weak-referenceable, as Faust's are)."""

    def __init__(self, tp: Any, offset: int) -> None:
        self.tp, self.offset, self.acked = tp, offset, False


def _bookkeeping(committed: int | None, acked: list[int], in_flight: list[int]) -> tuple[LeanConsumer, list[_Msg]]:
    """A LeanConsumer with only the commit bookkeeping of Faust's Consumer set (no broker, not started)."""
    import weakref
    from collections import defaultdict

    from intervaltree import IntervalTree

    c = LeanConsumer.__new__(LeanConsumer)
    c._acked = defaultdict(list, {"tp": list(acked)})  # noqa: SLF001
    c._acked_index = defaultdict(set, {"tp": set(acked)})  # noqa: SLF001
    c._gap = defaultdict(IntervalTree)  # noqa: SLF001
    c._committed_offset = defaultdict(lambda: None, {"tp": committed})  # noqa: SLF001
    msgs = [_Msg("tp", o) for o in in_flight]
    c._unacked_messages = weakref.WeakSet(msgs)  # noqa: SLF001
    return c, msgs


@pytest.mark.parametrize(("committed", "acked", "in_flight", "want"), [
    (10, [11, 12, 13], [10], {}),  # one held message at the head: Faust 0.15 alone commits 14 (faust#606)
    (None, [1, 2, 3], [0], {}),  # nothing committed yet: Faust alone looks for no hole at all
    (10, [10, 11, 13, 14], [12], {"tp": 12}),  # up to the held message, not over it
    (10, [10, 11, 12], [], {"tp": 13}),  # nothing in flight: Faust's offset
    (20, [20, 21], [15], {"tp": 22}),  # a leftover below the committed offset does not stall commits
])
def test_commits_never_pass_a_message_in_flight(committed: int | None, acked: list[int], in_flight: list[int],
                                                want: dict[str, int]) -> None:
    c, _msgs = _bookkeeping(committed, acked, in_flight)
    assert c._filter_committable_offsets(["tp"]) == want  # noqa: SLF001


def test_a_held_partition_commits_once_its_message_is_acked() -> None:
    c, msgs = _bookkeeping(10, [11, 12, 13], [10])
    assert c._filter_committable_offsets(["tp"]) == {}  # noqa: SLF001
    msgs[0].acked = True
    c._acked["tp"].append(10)  # noqa: SLF001  (what Consumer.ack records)
    assert c._filter_committable_offsets(["tp"]) == {"tp": 14}  # noqa: SLF001
