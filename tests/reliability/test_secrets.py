"""Secrets: Kafka SASL and ClickHouse credentials come from the environment (``PRESERVE_*``) and reach the
drivers, but never a repr, a dump, an error message, a traceback or a process log.

The live part runs the real ``preserve worker`` and ``preserve fleet`` with SASL credentials against the test
broker's PLAINTEXT listener: authentication fails, which is exactly the path where clients log their
connection settings and errors, at debug level.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from infra.process_control import free_port
from streams.settings import PreserveSettings, load_settings, project_root

KAFKA_SECRET = "kafka-S3CRET-7f3a9c"
CH_SECRET = "ch-S3CRET-91bd22"


def _env(bootstrap: str = "127.0.0.1:1") -> dict[str, str]:
    return {"PRESERVE_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "PRESERVE_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "PRESERVE_KAFKA__SASL_MECHANISM": "PLAIN", "PRESERVE_KAFKA__SASL_USERNAME": "alice",
            "PRESERVE_KAFKA__SASL_PASSWORD": KAFKA_SECRET,
            "PRESERVE_CLICKHOUSE__DSN": f"http://alice:{CH_SECRET}@127.0.0.1:{free_port()}/preserve"}


def _clean(text: str) -> None:
    assert KAFKA_SECRET not in text and CH_SECRET not in text, "a secret leaked"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = _env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    load_settings.cache_clear()
    yield env
    load_settings.cache_clear()


def test_settings_take_secrets_from_env_and_hide_them(secret_env: dict[str, str],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    s = PreserveSettings()
    assert s.kafka.confluent_config()["sasl.password"] == KAFKA_SECRET  # reaches the driver
    assert CH_SECRET in s.clickhouse_dsn()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("preserve.test").info("settings %s %r", s, s)
    for text in (repr(s), str(s), repr(s.kafka), repr(s.clickhouse), s.model_dump_json(),
                 json.dumps(s.model_dump(mode="json")), caplog.text):
        _clean(text)


def test_faust_credentials_hide_the_password(secret_env: dict[str, str]) -> None:
    """In a child process: importing ``streams.app`` here would leave an app with these settings behind for
    every later test of the session."""
    code = ("from streams.app import _credentials; c = _credentials(); "
            f"assert c.password == {KAFKA_SECRET!r}, 'password did not reach faust'; print(repr(c), str(c))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(project_root())},
                         cwd=project_root(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SASLCredentials" in out.stdout
    _clean(out.stdout + out.stderr)


def _full_error(fn, *args) -> str:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - the whole chain is what a log handler would print
        return "".join(traceback.format_exception(e))
    raise AssertionError("expected a failure")


def test_clickhouse_connection_errors_mask_the_dsn(secret_env: dict[str, str]) -> None:
    from sinks.client import clickhouse_client, mask_dsn, open_store

    dsn = secret_env["PRESERVE_CLICKHOUSE__DSN"]
    in_query = f"https://ch.example:8443/preserve?user=alice&password={CH_SECRET}"
    assert CH_SECRET not in mask_dsn(dsn) and CH_SECRET not in mask_dsn(in_query)
    for fn in (clickhouse_client, open_store):
        text = _full_error(fn, dsn)
        assert "127.0.0.1" in text  # the error says where it failed
        _clean(text)


def test_sql_command_errors_mask_the_dsn(secret_env: dict[str, str]) -> None:
    from preserve_cli.sql_cmd import sql

    result = CliRunner().invoke(sql, ["SELECT 1", "--dsn", secret_env["PRESERVE_CLICKHOUSE__DSN"]])
    assert result.exit_code != 0 and "127.0.0.1" in result.output
    chain = "".join(traceback.format_exception(result.exc_info[1])) if result.exc_info else ""
    _clean(result.output + chain)


def _run_for(args: list[str], env: dict[str, str], log: Path, seconds: float) -> str:
    full = {**os.environ, **env, "PYTHONPATH": str(project_root())}
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "preserve_cli.main", *args], stdout=fh, stderr=subprocess.STDOUT,
                                env=full, cwd=project_root(), start_new_session=True)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return log.read_text(errors="replace")


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_worker_and_fleet_logs_never_contain_secrets(kafka_broker: str, tmp_path: Path) -> None:
    env = {**_env(kafka_broker), "PRESERVE_KAFKA__TOPIC_PREFIX": f"sec{time.time_ns() % 10**9}.",
           "PRESERVE_DATA_DIR": str(tmp_path)}
    worker = _run_for(["worker", "--agents", "predict", "--loglevel", "debug"], env, tmp_path / "worker.log", 25.0)
    fleet = _run_for(["fleet", "--speedup", "10"], env, tmp_path / "fleet.log", 10.0)
    assert "sasl" in worker.lower() and "sasl" in fleet.lower()  # both went through the failing SASL path
    _clean(worker)
    _clean(fleet)
