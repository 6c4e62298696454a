"""Every long-running process waits for Kafka the same way: bounded lines, backoff, a clear error."""

from __future__ import annotations

import itertools

import pytest
from click.testing import CliRunner

from infra.process_control import free_port
from preserve_cli.worker_cmd import worker
from streams.settings import KafkaSettings, load_settings
from streams.transport.kafka_wait import KafkaUnreachable, backoff_delays, wait_for_kafka

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1")


def test_backoff_doubles_up_to_its_cap() -> None:
    assert list(itertools.islice(backoff_delays(1.0, 30.0), 7)) == [1, 2, 4, 8, 16, 30, 30]


def test_a_broker_that_comes_back_is_waited_for_with_few_lines() -> None:
    answers = iter([False] * 5 + [True])
    clock, lines = [0.0], []
    wait_for_kafka(KAFKA, 120.0, lines.append, reachable=lambda k: next(answers),
                   sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])
    assert len(lines) == 5 and clock[0] == 1 + 2 + 4 + 8 + 16  # 31 s of outage: five lines


def test_a_broker_that_never_comes_is_a_clear_error() -> None:
    clock = [0.0]
    with pytest.raises(KafkaUnreachable, match="did not answer within 10 s"):
        wait_for_kafka(KAFKA, 10.0, lambda m: None, reachable=lambda k: False,
                       sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])


def test_worker_without_kafka_exits_with_a_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESERVE_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    load_settings.cache_clear()  # the settings are read once per process: read them again, with this broker
    try:
        res = CliRunner().invoke(worker, ["--agents", "route", "--wait-for-kafka-s", "0"])
    finally:
        load_settings.cache_clear()
    assert res.exit_code == 1 and "did not answer within 0 s" in res.output
    assert "Traceback" not in res.output


def test_work_that_needs_kafka_is_retried_with_backoff_never_raised() -> None:
    """The agents' publishers connect through this: a broker down at start-up once crashed the worker."""
    from streams.transport.kafka_wait import retry_with_backoff

    calls, lines, slept = [0], [], []

    def connect() -> None:
        calls[0] += 1
        if calls[0] <= 6:
            raise RuntimeError("Failed to get metadata: Local: Broker transport failure")

    assert retry_with_backoff(connect, "route publisher", lines.append, slept.append, cap_s=8.0) == 6
    assert slept == [1, 2, 4, 8, 8, 8] and len(lines) == 6
    assert all(line.startswith("route publisher: Kafka unreachable (RuntimeError") for line in lines)


def test_an_open_port_the_client_cannot_use_is_told_apart_from_a_closed_one_without_the_secret() -> None:
    """A SASL or TLS mistake must not read as 'Kafka is down', and the wait line must not carry the password."""
    import socket

    from streams.transport.kafka_wait import kafka_problem

    closed = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    assert kafka_problem(closed, timeout_s=0.5) == "no broker port open"
    with socket.socket() as srv:  # a port that accepts and says nothing: not a Kafka broker
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        sasl = KafkaSettings(bootstrap_servers=f"127.0.0.1:{srv.getsockname()[1]}", security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_username="alice", sasl_password="s3cr3t-pw")
        problem = kafka_problem(sasl, timeout_s=1.0)
    assert problem is not None and "port is open" in problem and "SASL_PLAINTEXT" in problem and "PLAIN" in problem
    assert "s3cr3t-pw" not in problem
