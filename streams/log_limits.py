"""Bounded logging while Kafka is unreachable: a few lines per kind of message per minute, then a count.

Why: a 28 s broker outage made every worker write ~2,400-2,950 lines (measured here, issue 21): aiokafka's
client and consumer (Faust's transport) log "Unable connect to node ...", "Unable to update metadata ...",
"Failed fetch messages ..." and "Group Coordinator Request failed ..." on every retry (every ~100 ms, per
connection), and librdkafka's producers (the agents' publishers, the fleet) print "Connect to ... failed" to
stderr on each attempt. The retries themselves are right (clients reconnect with their own backoff); only the
lines were unbounded.

- :class:`RateLimit` (a :class:`logging.Filter`): per (logger, kind of line: numbers blanked), the first ``burst`` records in
  a ``window_s`` window pass; the rest are counted, and the first record of that kind that passes later says how
  many were suppressed. Pure apart from its injected clock.
- :func:`install_kafka_log_limits` attaches one to aiokafka's, Faust's transport and librdkafka's loggers.
- :func:`librdkafka_logger`: the logger every confluent-kafka client is given (``KafkaSettings.confluent_config``),
  so librdkafka's lines go through Python logging (and this filter) instead of straight to stderr.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import cache

__all__ = ["RateLimit", "install_kafka_log_limits", "librdkafka_logger", "KAFKA_LOGGERS", "LIBRDKAFKA_LOGGER"]

LIBRDKAFKA_LOGGER = "librdkafka"

# Loggers that repeat a line per connection attempt while the broker is down (the records are logged on these
# exact names: a filter on a parent logger would not see them).
KAFKA_LOGGERS = (
    "aiokafka", "aiokafka.client", "aiokafka.conn", "aiokafka.cluster", "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator", "aiokafka.consumer.consumer", "aiokafka.producer.sender",
    "aiokafka.producer.producer", "faust.transport.drivers.aiokafka", "faust.transport.consumer",
    "faust.transport.producer", LIBRDKAFKA_LOGGER,
)


_DIGITS = re.compile(r"\d+")


def _kind(record: logging.LogRecord) -> str:
    """What makes two records "the same line": the message with numbers (ids, ports, ms) blanked, its start only.
    Why not the template: librdkafka's lines all share one (``"%s [%s] %s"``)."""
    try:
        text = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format is logging's problem, not the filter's
        text = str(record.msg)
    return _DIGITS.sub("#", text[:160])[:120]


class RateLimit(logging.Filter):
    """At most ``burst`` records per (logger, kind of line) per ``window_s``; the rest are counted and reported.

    :param burst: records of one kind that pass per window. :param window_s: the window (wall seconds).
    :param clock: injected for tests.
    """

    def __init__(self, burst: int = 3, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if burst < 1 or window_s <= 0:
            raise ValueError("burst must be >= 1 and window_s > 0")
        self.burst = burst
        self.window_s = window_s
        self.clock = clock
        # (logger, kind) -> [window start, passed in window, suppressed since the last record that passed]
        self._seen: dict[tuple[str, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        key = (record.name, _kind(record))
        st = self._seen.get(key)
        if st is None:
            if len(self._seen) > 4096:  # kinds are few; bound it anyway (messages with ids baked into the template)
                self._seen.clear()
            st = self._seen[key] = [now, 0.0, 0.0]
        if now - st[0] >= self.window_s:
            st[0], st[1] = now, 0.0
        if st[1] >= self.burst:
            st[2] += 1
            return False
        st[1] += 1
        if st[2]:
            record.msg = f"{record.msg} [{int(st[2])} similar lines suppressed]"
            st[2] = 0.0
        return True

    @property
    def suppressed(self) -> int:
        """Records held back and not reported yet."""
        return int(sum(st[2] for st in self._seen.values()))


@cache
def _shared_limit() -> RateLimit:
    return RateLimit()


def install_kafka_log_limits(limit: RateLimit | None = None) -> RateLimit:
    """Attach ``limit`` (default: one shared :class:`RateLimit`) to every logger in :data:`KAFKA_LOGGERS`, once."""
    lim = limit or _shared_limit()
    for name in KAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimit) for f in logger.filters):
            logger.addFilter(lim)
    return lim


@cache
def librdkafka_logger() -> logging.Logger:
    """The logger handed to confluent-kafka clients (``"logger"`` config): librdkafka lines, rate-limited."""
    install_kafka_log_limits()
    return logging.getLogger(LIBRDKAFKA_LOGGER)
