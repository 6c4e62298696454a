"""Waiting for Kafka at start-up the same way in every long-running process: retry with exponential backoff,
one line per attempt (so an outage costs a handful of log lines, not thousands), a clear error at the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from streams.settings import KafkaSettings

__all__ = ["backoff_delays", "wait_for_kafka", "KafkaUnreachable", "kafka_reachable", "retry_with_backoff"]


def _any_port_open(bootstrap: str, timeout_s: float) -> bool:
    """Whether any bootstrap address accepts a TCP connection (a plain socket: says nothing on stderr)."""
    import socket

    for addr in bootstrap.split(","):
        host, _, port = addr.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def kafka_problem(kafka: KafkaSettings, timeout_s: float = 3.0) -> str | None:
    """Why the brokers do not answer (None: they do). Probed with a socket first: a librdkafka client pointed at a
    closed port logs a 'Connection refused' line every few hundred milliseconds, which a newcomer's first demo
    showed ~60 times before the local broker was up. An open port that the client still cannot use is told apart,
    with the security settings (never the credentials): a SASL or TLS mistake must not read as 'Kafka is down'."""
    if not _any_port_open(kafka.bootstrap_servers, min(timeout_s, 1.0)):
        return "no broker port open"
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({**kafka.confluent_config(), "socket.timeout.ms": int(timeout_s * 1000)}).list_topics(
            timeout=timeout_s)
        return None
    except Exception as exc:  # any connection problem means: not reachable
        mech = f", SASL mechanism {kafka.sasl_mechanism}" if "SASL" in kafka.security_protocol.upper() else ""
        return (f"a broker port is open but the client cannot use it (security protocol "
                f"{kafka.security_protocol}{mech}): {type(exc).__name__}")


def kafka_reachable(kafka: KafkaSettings, timeout_s: float = 3.0) -> bool:
    """Whether the brokers answer (see :func:`kafka_problem`)."""
    return kafka_problem(kafka, timeout_s) is None


class KafkaUnreachable(RuntimeError):
    """No broker answered within the wait."""


def backoff_delays(initial_s: float = 1.0, cap_s: float = 30.0) -> Iterator[float]:
    """1, 2, 4, ... seconds, capped."""
    delay = initial_s
    while True:
        yield delay
        delay = min(cap_s, delay * 2)


def wait_for_kafka(kafka: KafkaSettings, timeout_s: float, say: Callable[[str], None],
                   reachable: Callable[[KafkaSettings], bool] | None = None,
                   sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """Return once a broker answers; raise :class:`KafkaUnreachable` after ``timeout_s`` (0: one try)."""
    start = clock()
    for delay in backoff_delays():
        problem = (None if reachable(kafka) else "not reachable") if reachable is not None else kafka_problem(kafka)
        if problem is None:
            return
        waited = clock() - start
        if waited + delay > timeout_s:
            raise KafkaUnreachable(f"Kafka at {kafka.bootstrap_servers} did not answer within {timeout_s:.0f} s; "
                                   "start it (`preserve infra up`) or point PRESERVE_KAFKA__BOOTSTRAP_SERVERS at it")
        say(f"waiting for Kafka at {kafka.bootstrap_servers}: {problem} (retrying in {delay:.0f} s)")
        sleep(delay)


def retry_with_backoff(attempt: Callable[[], None], what: str, say: Callable[[str], None],
                       sleep: Callable[[float], None] = time.sleep, cap_s: float = 30.0) -> int:
    """Call ``attempt`` until it returns, sleeping 1, 2, 4, ... ``cap_s`` s between failures, one line per failure;
    returns the number of failures. For work a running process needs Kafka for (connecting the agents'
    publishers): an outage then costs a line per retry, never a crash of the worker (issue 21: a broker stopped
    right after start crashed the control worker with a traceback when its publishers' warm-up timed out)."""
    failures = 0
    for delay in backoff_delays(cap_s=cap_s):
        try:
            attempt()
            return failures
        except Exception as e:  # noqa: BLE001 - any client error while Kafka is away: retry
            failures += 1
            say(f"{what}: Kafka unreachable ({type(e).__name__}: {str(e)[:160]}); retrying in {delay:.0f} s")
            sleep(delay)
    raise AssertionError("unreachable")  # backoff_delays never ends
