"""The demo's first question — is a broker there? — must not fill the terminal with librdkafka errors."""

from __future__ import annotations

import pytest

from fleet.live.pipeline_procs import kafka_reachable
from infra.process_control import free_port
from streams.settings import KafkaSettings


def test_a_closed_port_is_unreachable_and_says_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    assert kafka_reachable(kafka, timeout_s=1.0) is False
    out, err = capfd.readouterr()
    assert "Connection refused" not in out + err and err == ""
