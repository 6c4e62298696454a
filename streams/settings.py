"""Deployment settings: Kafka, ClickHouse, data directory. Read from the environment (``PRESERVE_*``).

Frozen pydantic-settings; secrets are ``SecretStr`` so they never appear in reprs or logs.
Examples: ``PRESERVE_KAFKA__BOOTSTRAP_SERVERS=broker:9093``, ``PRESERVE_KAFKA__SECURITY_PROTOCOL=SASL_SSL``,
``PRESERVE_CLICKHOUSE__DSN=https://user:pw@ch.example:8443/preserve``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KafkaSettings", "ClickHouseSettings", "PreserveSettings", "load_settings", "project_root", "data_path"]


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    topic_prefix: str = Field(default="preserve.", description="prefix of every topic name")
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=0, ge=0, description="replicas per partition; 0: min(3, brokers in "
                                    "the cluster), with min.insync.replicas 2 from 3 replicas up")
    retention_ms: dict[str, int] = Field(default_factory=dict, description="retention.ms per logical topic, "
                                         "overriding streams/topics.py's defaults at creation, e.g. "
                                         "PRESERVE_KAFKA__RETENTION_MS='{\"requests\": 3600000}'")

    def confluent_config(self) -> dict[str, Any]:
        """librdkafka configuration (confluent-kafka producers/consumers/admin).

        Its log lines go through Python logging, rate-limited (``streams/log_limits.py``): librdkafka's own
        stderr printing wrote a line per connection attempt while the broker was down."""
        from streams.log_limits import librdkafka_logger

        cfg: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol,
                               "logger": librdkafka_logger()}
        if self.sasl_mechanism:
            cfg["sasl.mechanism"] = self.sasl_mechanism
            cfg["sasl.username"] = self.sasl_username or ""
            cfg["sasl.password"] = self.sasl_password.get_secret_value() if self.sasl_password else ""
        for key, val in (("ssl.ca.location", self.ssl_cafile), ("ssl.certificate.location", self.ssl_certfile),
                         ("ssl.key.location", self.ssl_keyfile)):
            if val:
                cfg[key] = val
        return cfg

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


class ClickHouseSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    dsn: SecretStr | None = Field(default=None, description="chdb:///path or http(s)://user:pw@host:8123/db; "
                                  "default: embedded chdb under the data dir")
    store_prompts: bool = Field(default=False, description="archive prompt text (default: hash + length only)")


class PreserveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRESERVE_", env_nested_delimiter="__", frozen=True, extra="ignore")
    data_dir: Path = Field(default_factory=lambda: project_root() / ".data")
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    prompt_hash_key: SecretStr | None = Field(default=None, description="secret of the keyed prompt hash "
                                              "(PRESERVE_PROMPT_HASH_KEY; unset: a key file in the data dir, see "
                                              "streams/privacy.py)")

    def clickhouse_dsn(self) -> str:
        if self.clickhouse.dsn is not None:
            return self.clickhouse.dsn.get_secret_value()
        return f"chdb://{self.data_dir / 'clickhouse'}"


@lru_cache(maxsize=1)
def load_settings() -> PreserveSettings:
    return PreserveSettings()


def data_path(*parts: str) -> Path:
    """A path under the real shared data (``PRESERVE_DATA``, default ``../shared/data``)."""
    base = Path(os.environ.get("PRESERVE_DATA", str(project_root().parent / "shared" / "data")))
    return base.joinpath(*parts)
