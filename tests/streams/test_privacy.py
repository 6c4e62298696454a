"""The archived prompt hash is keyed (issue 21, finding 9): a guessed prompt cannot be confirmed against it
without the key, and the key comes from settings, else from a key file of the data dir, with a warning."""

from __future__ import annotations

import hashlib
import hmac
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.schema import record_row, table_schema
from streams import privacy
from streams.records import RequestEvent
from streams.settings import load_settings

PROMPT = "my card number is 4111-1111-1111-1111"


@pytest.fixture(autouse=True)
def fresh_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("PRESERVE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(privacy.ENV_VAR, raising=False)
    load_settings.cache_clear()
    privacy.prompt_hash_key.cache_clear()
    yield
    load_settings.cache_clear()
    privacy.prompt_hash_key.cache_clear()


def _archived_hash(prompt: str) -> str:
    rec = RequestEvent(ts=1.0, request_id="r", service="s", prompt_tokens=3, prompt=prompt)
    return str(record_row(table_schema("requests"), rec, 0, 0)["prompt_hash"])


def test_a_guessed_prompt_cannot_be_confirmed_by_its_plain_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(privacy.ENV_VAR, "s3cret")
    got = _archived_hash(PROMPT)
    assert got != hashlib.sha256(PROMPT.encode()).hexdigest()[:16]
    assert got == hmac.new(b"s3cret", PROMPT.encode(), hashlib.sha256).hexdigest()[:16]
    assert "s3cret" not in repr(load_settings())  # a SecretStr: never printed


def test_another_key_gives_another_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(privacy.ENV_VAR, "key-one")
    one = _archived_hash(PROMPT)
    monkeypatch.setenv(privacy.ENV_VAR, "key-two")
    load_settings.cache_clear()
    privacy.prompt_hash_key.cache_clear()
    assert _archived_hash(PROMPT) != one


def test_unset_key_warns_and_uses_a_private_key_file_shared_by_the_data_dir(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.privacy"):
        first = privacy.prompt_hash(PROMPT)
    assert any(privacy.ENV_VAR in r.getMessage() and "unset" in r.getMessage() for r in caplog.records)
    key_file = tmp_path / privacy.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    privacy.prompt_hash_key.cache_clear()  # another process with the same data dir
    assert privacy.prompt_hash(PROMPT) == first
    assert first != hashlib.sha256(PROMPT.encode()).hexdigest()[:16]


def test_an_unusable_key_file_falls_back_to_a_per_process_key_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / privacy.KEY_FILE).write_text("truncated")
    with caplog.at_level(logging.WARNING, logger="streams.privacy"):
        h = privacy.prompt_hash(PROMPT)
    assert len(h) == 16
    assert any("this process only" in r.getMessage() for r in caplog.records)
