"""`preserve infra status` and `preserve topics create|list` against the session's real broker."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from infra.kafka_broker import KafkaBroker
from preserve_cli.infra_cmd import infra
from preserve_cli.topics_cmd import topics
from streams.records import RECORD_TYPES
from streams.settings import load_settings


@pytest.fixture()
def prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    p = f"cli{os.getpid()}."
    monkeypatch.setenv("PRESERVE_KAFKA__TOPIC_PREFIX", p)
    load_settings.cache_clear()
    yield p
    load_settings.cache_clear()


@pytest.mark.integration
def test_status_reports_the_running_broker(kafka_broker_handle: KafkaBroker) -> None:
    out = CliRunner().invoke(infra, ["status", "--json", "--data-dir", str(kafka_broker_handle.cfg.data_dir)])
    assert out.exit_code == 0, out.output
    st = json.loads(out.output)
    assert st["state"] == "running" and st["bootstrap"] == kafka_broker_handle.bootstrap


@pytest.mark.integration
def test_topics_create_then_list(kafka_broker: str, prefix: str) -> None:
    runner = CliRunner()
    first = runner.invoke(topics, ["create", "--bootstrap", kafka_broker, "--partitions", "2"])
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == len(RECORD_TYPES)
    again = runner.invoke(topics, ["create", "--bootstrap", kafka_broker, "--partitions", "2"])
    assert again.output.count("exists") == len(RECORD_TYPES)
    listed = runner.invoke(topics, ["list", "--bootstrap", kafka_broker])
    assert listed.exit_code == 0, listed.output
    assert f"{prefix}routing-table" in listed.output and "compact" in listed.output
    bad = runner.invoke(topics, ["create", "--bootstrap", kafka_broker, "--partitions", "3"])
    assert bad.exit_code != 0 and "has 2 partitions, spec says 3" in bad.output
