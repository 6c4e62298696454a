"""Faust's aiokafka transport with a cheaper steady-state drain loop, registered as the ``preserve://`` scheme.

Profiling the routing path (py-spy, GIL samples) showed where Faust's own per-event cost goes; three causes are
changed here, and only while the worker is not rebalancing (assignment, table recovery, seek to the committed
offsets): then the loop is Faust 0.15's own, unchanged.

1. Faust hands every fetched message to the topic conductor through
   ``Service.wait_first(callback(message), suspend_flow.wait())``, which wraps four awaitables in tasks, waits
   for the first and cancels the rest: about half of Faust's CPU per consumed message (72 -> 35-40 us in a
   consume-only benchmark). In steady flow the conductor's callback only suspends when a stream buffer is full,
   so :class:`LeanConsumer` awaits it directly, and uses ``wait_first`` whenever flow is stopped or suspended.
   Why not during a rebalance too: on a restart Faust resumes stream partitions before it seeks them to the
   committed offsets, and events queued meanwhile are skipped *and acked* by the streams if flow control is
   suspended again; the direct hand-over queued more of them, and after a kill -9 of a worker requests were
   lost (3 of 6 runs of ``tests/reliability/test_faults.py``). Rebalances keep Faust's pace.
2. Faust creates the aiokafka consumer with ``fetch_max_wait_ms=1500``. aiokafka keeps one fetch request in
   flight per broker, and a partition left out of it (its records were still unconsumed when it left) is
   fetched only after it returns: with idle partitions in the request, 1.5 s. :data:`FETCH_MAX_WAIT_MS`.
3. When a stream's buffer passes its high mark, Faust stops asking for that partition, and the drain loop then
   waits in ``getmany(timeout=1.0)`` for records of the other partitions only; when those are idle, the paused
   partition is asked for again only after that second, although its stream ran dry long before. In a
   20,000-request burst the `route` agent starved for 0.4-2 s at a time. :data:`DRAIN_WAIT_S`.

One correction, always on: :meth:`LeanConsumer._filter_committable_offsets` never commits past a message that was
delivered but not acked (Faust 0.15 does, see there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, cast

import aiokafka
from faust.transport import consumer as base_consumer
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import ServiceT

__all__ = ["DRAIN_WAIT_S", "FAUST_DRAIN_WAIT_S", "FETCH_MAX_WAIT_MS", "SCHEME", "LeanConsumer", "Transport",
           "deliver"]

SCHEME = "preserve"
# A partition left out of the fetch in flight waits at most this long for the next one. In steady flow fetches
# return as soon as data arrives and this does not apply; after a buffer-full pause it bounds the restart. The
# price is one empty fetch per 20 ms per worker when idle (5 ms cost ~0.09 of a core of Python protocol code).
FETCH_MAX_WAIT_MS = 20
# A paused partition resumes when its stream's buffer is down to 40% of stream_buffer_maxsize (1,638 of 4,096
# events), which a stream works off in about 80 ms at 20k events/s; asking again every 50 ms refills it before it
# runs dry. Costs one cross-thread call per 50 ms when idle.
DRAIN_WAIT_S = 0.05
FAUST_DRAIN_WAIT_S = 1.0  # Faust's own, kept while rebalancing


async def deliver(consumer: base_consumer.Consumer, callback: Callable[[Message], Awaitable[None]],
                  message: Message, steady: bool) -> None:
    """Hand one message to the conductor: directly in steady flow, else abortable by ``suspend_flow``."""
    if steady and consumer.flow_active and not consumer.suspend_flow.is_set():
        await callback(message)
    else:
        await consumer.wait_first(callback(message), consumer.suspend_flow.wait())


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # noqa: SLF001  (no public setter; read by start())
        return consumer


class LeanConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer; only the steady-state hand-over and the waits differ (module docstring)."""

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Faust's commit offsets, capped at the oldest message of each partition still in flight (delivered to
        the streams, not acked).

        Why: Faust 0.15 commits up to the end of the first run of consecutive acked offsets, and takes a hole of
        exactly one offset at its head for a compaction gap (faust-streaming/faust#606; with no committed offset
        yet it looks for no hole at all), so one un-acked message between acked ones was committed over and lost
        on a crash. The `route` agent acks a pending request only once it is routed (streams/agents/route.py),
        so such holes are normal here. Messages below the committed offset are another generation's leftovers
        and cannot be committed over anyway: they are ignored, so they never stall a partition's commits.
        """
        floors: dict[TP, int] = {}
        for m in list(self._unacked_messages):
            committed = self._committed_offset.get(m.tp)
            if m.acked or (committed is not None and m.offset < committed):
                continue
            if m.offset < floors.get(m.tp, m.offset + 1):
                floors[m.tp] = m.offset
        held: dict[TP, list[int]] = {}
        for tp, floor in floors.items():
            acked = self._acked.get(tp)
            if acked and max(acked) >= floor:
                held[tp] = [o for o in acked if o >= floor]
                acked[:] = [o for o in acked if o < floor]
        try:
            return cast(dict[TP, int], super()._filter_committable_offsets(tps))
        finally:
            for tp, offsets in held.items():
                self._acked[tp].extend(offsets)  # committable once the message below them is acked

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # the loop of Faust 0.15's Consumer, see above
        try:
            while not (self.should_stop or fetcher.should_stop):
                self.diag.set_flag(base_consumer.CONSUMER_FETCHING)
                steady = not self.app.rebalancing
                wait_s = DRAIN_WAIT_S if steady else FAUST_DRAIN_WAIT_S
                records = cast(AsyncIterator[tuple[Any, Message]], self.getmany(timeout=wait_s))
                await self.sleep(0)  # getmany may return at once, again and again: let the loop breathe
                if not self.should_stop:
                    await self._drain_batch(records, steady)
                self.diag.unset_flag(base_consumer.CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(base_consumer.CONSUMER_FETCHING)

    async def _drain_batch(self, records: AsyncIterator[tuple[Any, Message]], steady: bool) -> None:
        since_yield = 0
        async for tp, message in records:
            since_yield += 1
            if since_yield > 100:
                await asyncio.sleep(0)
                since_yield = 0
            offset = message.offset
            read_offset = self._read_offset[tp]
            if read_offset is not None and offset < read_offset:
                continue  # already handed over (a re-fetch after a seek)
            if read_offset and offset - read_offset > 1 and self.app.topics.acks_enabled_for(message.topic):
                await self._add_gap(tp, read_offset + 1, offset)
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            await deliver(self, self.callback, message, steady and not self.app.rebalancing)
            self._read_offset[tp] = offset


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`LeanConsumer`."""

    Consumer = LeanConsumer


def _register() -> None:
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


_register()
