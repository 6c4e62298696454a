"""Archive on a ClickHouse server (``http(s)://user:password@host:8123/db``) through clickhouse-connect.

Each topic gets ``<table>_raw``, a ReplacingMergeTree ordered by (service, ts, kafka_partition, kafka_offset):
a redelivered message has the same sort key and collapses on merge. The plain ``<table>`` name is a view with
``FINAL`` so queries see each row once even before a merge, and the SQL is the same as on the embedded
archive (whose views also keep one row per partition/offset).
"""

from __future__ import annotations

from typing import Any

from sinks.exceptions import BackpressureError, SinkError
from sinks.saved_queries import SAVED_QUERIES
from sinks.schema import TableSchema, all_schemas

__all__ = ["ServerStore", "create_schema", "TRANSIENT_CODES"]

# ClickHouse error codes that mean "later", not "never": TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, TIMEOUT_EXCEEDED,
# TOO_MANY_SIMULTANEOUS_QUERIES, NETWORK_ERROR, SOCKET_TIMEOUT, ALL_CONNECTION_TRIES_FAILED.
TRANSIENT_CODES = (252, 241, 159, 202, 210, 209, 279)


def create_schema(client: Any) -> None:
    """Create every ``<table>_raw``, its ``FINAL`` view and the saved-query views (idempotent, run on start)."""
    for s in all_schemas().values():
        client.command(f"CREATE TABLE IF NOT EXISTS {s.table}_raw ({s.ch_structure()}) "
                       f"ENGINE = ReplacingMergeTree ORDER BY ({', '.join(s.order_by)})")
        client.command(f"CREATE VIEW IF NOT EXISTS {s.table} AS SELECT * FROM {s.table}_raw FINAL")  # noqa: S608
    for name, sql in SAVED_QUERIES.items():
        client.command(f"CREATE OR REPLACE VIEW {name} AS {sql}")


def _is_transient(err: Exception) -> bool:
    text = str(err)
    if any(f"Code: {c}." in text or f"code: {c}" in text.lower() for c in TRANSIENT_CODES):
        return True
    name = type(err).__name__
    return name in ("OperationalError", "ConnectionError", "TimeoutError") or "Connection" in text[:200]


class ServerStore:
    """Writer side on a server. The client is injected (any clickhouse-connect client: HTTP, or chdb in tests).

    :param client: a clickhouse-connect client already pointed at the target database.
    :param retry_after_s: back-off suggested when the server is overloaded or unreachable.
    """

    def __init__(self, client: Any, retry_after_s: float = 2.0) -> None:
        self.client = client
        self.retry_after_s = retry_after_s

    def setup(self) -> None:
        try:
            create_schema(self.client)
        except Exception as e:  # clickhouse-connect raises its own DatabaseError/OperationalError family
            raise SinkError(f"cannot create the archive schema: {e}") from e

    def insert(self, schema: TableSchema, rows: list[dict[str, Any]], partition: int) -> int:
        if not rows:
            return 0
        names = schema.names
        data = [[r[n] for n in names] for r in rows]
        try:
            self.client.insert(f"{schema.table}_raw", data, column_names=names)
        except Exception as e:  # see _is_transient: overload/unreachable -> backpressure, else a hard error
            if _is_transient(e):
                raise BackpressureError(self.retry_after_s, f"{schema.table}: {str(e)[:200]}") from e
            raise SinkError(f"insert into {schema.table}_raw failed: {str(e)[:500]}") from e
        return len(rows)

    def close(self) -> None:
        self.client.close()
