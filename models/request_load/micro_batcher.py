"""Micro-batching in front of any ``LengthPredictor``: single requests in, batched ``predict`` calls out.

A worker thread takes the first waiting request, then gathers more until ``max_batch_size`` requests or
``max_wait_s`` after the first one, and answers them with one ``predict`` call. Callers get a
``concurrent.futures.Future`` (asyncio code: ``await asyncio.wrap_future(fut)``), so the live ``predict`` stage
can submit events one by one and still feed the encoder full batches.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from models.request_load.base_predictor import LengthPredictor

__all__ = ["MicroBatcher", "Prediction"]


@dataclass(frozen=True)
class Prediction:
    mean: float
    p90: float
    source: str


_Item = tuple[str | None, int, str, "Future[Prediction]"]


class MicroBatcher:
    def __init__(self, predictor: LengthPredictor, max_batch_size: int = 256, max_wait_s: float = 0.005) -> None:
        """:param max_batch_size: requests per ``predict`` call at most.
        :param max_wait_s: how long the first request of a batch may wait for company."""
        assert max_batch_size >= 1 and max_wait_s >= 0
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.batches = 0  # predict calls made (observability, tests)
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="length-micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, prompt: str | None, prompt_tokens: int, service: str) -> Future[Prediction]:
        if self._closed:
            raise RuntimeError("MicroBatcher is closed")
        fut: Future[Prediction] = Future()
        self._queue.put((prompt, prompt_tokens, service, fut))
        return fut

    def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
        """The batch that starts with ``first``; also whether a close request was seen."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _answer(self, batch: list[_Item]) -> None:
        try:
            res = self.predictor.predict([b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch])
            for i, (_, _, _, fut) in enumerate(batch):
                fut.set_result(Prediction(float(res.mean[i]), float(res.p90[i]), res.source))
        except Exception as err:  # noqa: BLE001 - hand every failure to the waiting callers
            for _, _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
        self.batches += 1

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._gather(first)
            self._answer(batch)
            if stop:
                return

    def close(self, timeout: float | None = 5.0) -> None:
        """Answer what is queued, then stop the worker."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
