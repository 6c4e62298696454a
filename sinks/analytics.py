"""SQL access to the archive for the CLI, the report and the demo: same table names on chdb and on a server."""

from __future__ import annotations

import time

import pandas as pd

from sinks.client import clickhouse_client, is_embedded
from sinks.saved_queries import SAVED_HELP, SAVED_QUERIES
from sinks.schema import table_name

__all__ = ["query_df", "table_name", "SAVED_QUERIES", "SAVED_HELP", "resolve_sql"]

# The embedded archive's writer merges small files and then deletes them; a reader that listed the directory
# just before may find one gone (FILE_DOESNT_EXIST). The merged file holds the same rows, so a retry is exact.
_VANISHED = ("FILE_DOESNT_EXIST", "Code: 107.")


def resolve_sql(text: str) -> str:
    """A saved query's name (e.g. ``latency_per_minute``) stands for its SQL; anything else is SQL itself."""
    name = text.strip()
    return SAVED_QUERIES[name].strip() if name in SAVED_QUERIES else text


def query_df(dsn: str, sql: str, attempts: int = 5) -> pd.DataFrame:
    """Run ``sql`` (or a saved query's name) against the archive at ``dsn``; a DataFrame of the result."""
    client = clickhouse_client(dsn)
    text = resolve_sql(sql)
    for attempt in range(attempts):
        try:
            return client.query_df(text)
        except Exception as e:  # clickhouse-connect DatabaseError; only a vanished file is retried
            if not (is_embedded(dsn) and any(m in str(e) for m in _VANISHED)) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
