"""Bounded log lines while Kafka is unreachable (issue 21, finding 8): the rate limit itself (pure, fake clock)."""

from __future__ import annotations

import logging

import pytest

from streams.log_limits import KAFKA_LOGGERS, RateLimit, install_kafka_log_limits, librdkafka_logger
from streams.settings import KafkaSettings


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _record(msg: str, *args: object, name: str = "aiokafka.client") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_retry_storm_is_a_few_lines_a_minute_then_a_count() -> None:
    clock = Clock()
    lim = RateLimit(burst=3, window_s=60.0, clock=clock)
    passed = []
    for i in range(600):  # one line every 100 ms for a minute, as aiokafka's reconnects logged
        clock.t = i * 0.1
        rec = _record("Unable connect to node with id %s: Connect call failed ('127.0.0.1', %s)", 1, 40000 + i)
        if lim.filter(rec):
            passed.append(rec)
    assert len(passed) == 3 and lim.suppressed == 597
    clock.t = 61.0  # a new minute: the next line passes and says how many were held back
    rec = _record("Unable connect to node with id %s: Connect call failed ('127.0.0.1', %s)", 1, 1)
    assert lim.filter(rec) and "[597 similar lines suppressed]" in rec.getMessage()
    assert lim.suppressed == 0


def test_different_lines_and_loggers_have_their_own_budget() -> None:
    lim = RateLimit(burst=1, window_s=60.0, clock=Clock())
    assert lim.filter(_record("Unable to update metadata from [%s]", 1))
    assert not lim.filter(_record("Unable to update metadata from [%s]", 2))
    assert lim.filter(_record("Failed fetch messages from %s", 1))
    assert lim.filter(_record("Unable to update metadata from [%s]", 1, name="aiokafka.cluster"))
    # librdkafka's lines share one template: told apart by their text
    assert lim.filter(_record("%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect to ipv4#127.0.0.1:1 failed"))
    assert lim.filter(_record("%s [%s] %s", "GETPID", "rdkafka#producer-1", "Failed to acquire idempotence PID"))


def test_installed_on_every_kafka_logger_and_handed_to_librdkafka() -> None:
    lim = install_kafka_log_limits()
    assert all(lim in logging.getLogger(n).filters for n in KAFKA_LOGGERS)
    assert install_kafka_log_limits() is lim  # once
    assert KafkaSettings().confluent_config()["logger"] is librdkafka_logger()


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimit(burst=0)
