"""Faust streams that hand an agent a batch as soon as no further event is waiting: ``take_ready``.

Why not ``take(n, within=s)`` / ``noack_take``: those yield on a timer, so at a low rate every event waits up to
``within`` (two agents on the routing path: up to 7 ms of a 20 ms budget), and an idle agent wakes every
``within`` to find nothing (each wake-up cost ~0.1 ms in mode's ``wait_first``: a few % of a core per agent).
``take_ready`` yields when ``max_`` events are buffered or when the stream's input queue is empty after the
last one, i.e. it never waits for events that are not there, and batches grow by themselves under load: while
the agent works on one batch the next one queues up. An idle agent sleeps until an event arrives.

Queued events may also never reach the buffer (a rebalance clears the queues; events of an old consumer
generation are skipped), so a batch that saw queued events behind its first one is also released after at most
:data:`STRAGGLER_WAIT_S`.

Acks are the caller's (as with ``noack_take``): the agents ack a batch once its outputs are stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast

import faust
from faust.types import ChannelT, EventT

__all__ = ["ReadyBatchStream", "STRAGGLER_WAIT_S"]

STRAGGLER_WAIT_S = 0.005  # normally queued events follow within microseconds; this only bounds the rare case


class ReadyBatchStream(faust.Stream):  # type: ignore[type-arg]
    """:class:`faust.Stream` with :meth:`take_ready` (the app's ``Stream`` class, so agents get it)."""

    def take_ready(self, max_: int) -> AsyncGenerator[list[EventT], None]:
        """Batches of up to ``max_`` events, each as soon as no further event is queued; not acked."""
        if max_ < 1:
            raise ValueError("max_ must be >= 1")
        agen = self._take_ready(max_)
        self._active_agens.add(agen)  # closed by Stream.on_stop if the caller abandons it (as Faust's takes)
        return agen

    async def _take_ready(self, max_: int) -> AsyncGenerator[list[EventT], None]:
        buffer: list[EventT] = []
        ready = asyncio.Event()  # the buffer is full, or nothing more is queued behind its last event
        consumed = asyncio.Event()  # the caller is done with a full buffer
        consuming: asyncio.Future[None] | None = None  # set while the caller holds a batch
        channel_it = cast(ChannelT, aiter(self.channel))  # a channel's iterator is a channel (Faust's typing says less)
        queued = channel_it.queue
        loop = asyncio.get_running_loop()

        async def add_to_buffer(value: Any) -> Any:
            nonlocal consuming
            if consuming is not None:  # no event may join a batch the caller already holds
                try:
                    await consuming
                finally:
                    consuming = None
            event = self.current_event
            if event is None:
                raise RuntimeError("take_ready: no current event")
            buffer.append(event)
            if len(buffer) >= max_:
                ready.set()
                consumed.clear()
                await self.wait(consumed)  # type: ignore[arg-type]  # (mode accepts asyncio events)
            elif queued.empty():
                ready.set()
            elif len(buffer) == 1:  # more is queued: it should follow at once, but may be dropped instead
                loop.call_later(STRAGGLER_WAIT_S, ready.set)
            return value

        enable_acks, self.enable_acks = self.enable_acks, False  # the caller acks
        self.add_processor(add_to_buffer)
        self._enable_passive(channel_it)
        try:
            while not self.should_stop:
                if not ready.is_set():
                    await self.wait_for_stopped(ready)  # type: ignore[arg-type]
                if not buffer:
                    ready.clear()
                    continue
                consuming = loop.create_future()
                try:
                    yield list(buffer)
                finally:
                    buffer.clear()
                    ready.clear()
                    if not consuming.done():
                        consuming.set_result(None)
                    consumed.set()
        finally:
            self.enable_acks = enable_acks
            self._processors.remove(add_to_buffer)
