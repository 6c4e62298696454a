"""One ClickHouse client factory from a DSN, for writers and readers alike.

- ``chdb:///path`` (default, embedded): the archive is Parquet files under ``path`` (see
  :mod:`sinks.parquet_store`). Readers get an in-memory chdb session (clickhouse-connect's chdb backend) with
  one database per archive root holding a view per topic over ``file('<root>/parquet/<table>/*.parquet')``,
  deduplicated by (partition, offset). No process ever owns a chdb data path, so any number of
  ``preserve sql`` / ``preserve report`` processes can read while the pipeline writes.
- ``http(s)://user:password@host:8123/db``: a clickhouse-connect HTTP client; tables are created on first use.

DSNs may carry passwords: :func:`mask_dsn` is the only form that goes into messages and logs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from pathlib import Path
from typing import Any

from sinks.exceptions import SinkError
from sinks.parquet_store import ParquetStore, ParquetStoreConfig
from sinks.saved_queries import SAVED_QUERIES
from sinks.schema import all_schemas
from sinks.server_store import ServerStore, create_schema

__all__ = ["mask_dsn", "is_embedded", "embedded_root", "clickhouse_client", "open_store", "Store"]

Store = ParquetStore | ServerStore
log = logging.getLogger(__name__)
_lock = threading.Lock()
_clients: dict[str, Any] = {}


def mask_dsn(dsn: str) -> str:
    """``http://user:secret@host`` -> ``http://user:***@host`` (also ``?password=...``)."""
    dsn = re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", dsn)
    return re.sub(r"(password=)[^&]*", r"\1***", dsn, flags=re.IGNORECASE)


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


def embedded_root(dsn: str) -> Path:
    """``chdb:///abs/path`` -> ``/abs/path``; ``chdb://rel/path`` -> ``rel/path`` resolved."""
    rest = dsn[len("chdb:"):]
    rest = rest[2:] if rest.startswith("//") else rest
    if not rest or rest.startswith(":memory:"):
        raise SinkError("the embedded archive needs a directory: chdb:///path/to/archive")
    return Path(rest).expanduser().resolve()


def _check_dsn(dsn: str) -> None:
    if not (is_embedded(dsn) or dsn.startswith(("http://", "https://"))):
        raise SinkError(f"unsupported ClickHouse DSN {mask_dsn(dsn)!r}: use chdb:///path or "
                        f"http(s)://user:password@host:8123/db")


def _embedded_reader(root: Path) -> Any:
    """In-memory chdb client whose current database holds the views over ``root``'s Parquet files."""
    import clickhouse_connect

    db = "archive_" + hashlib.sha256(str(root).encode()).hexdigest()[:12]
    setup = clickhouse_connect.get_client(dsn="chdb://:memory:")
    setup.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    for s in all_schemas().values():
        glob = str(root / "parquet" / s.table / "*.parquet").replace("'", "\\'")
        # Identifiers come from the record schemas, not from users: no injection surface.
        setup.command(f"CREATE OR REPLACE VIEW {db}.{s.table} AS SELECT * FROM file('{glob}', Parquet, "  # noqa: S608
                      f"'{s.ch_structure()}') LIMIT 1 BY kafka_partition, kafka_offset")
    views = clickhouse_connect.get_client(dsn="chdb://:memory:", database=db)
    for name, sql in SAVED_QUERIES.items():
        views.command(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    return clickhouse_connect.get_client(dsn="chdb://:memory:", database=db)


def _ensure_schema_best_effort(client: Any) -> None:
    """Readers create missing tables/views so queries on a fresh server don't fail on unknown tables; a
    read-only account can't, and then the tables are the writer's business."""
    try:
        create_schema(client)
    except Exception as e:  # ACCESS_DENIED / READONLY: reading still works if the writer created them
        log.info("could not create the archive schema (read-only account?): %s", str(e)[:200])


def clickhouse_client(dsn: str) -> Any:
    """A clickhouse-connect client for ``dsn`` (cached per process); ``query_df``/``query``/``command`` work
    the same on both kinds. On a server the schema is created if missing, so queries never hit unknown tables.
    """
    _check_dsn(dsn)
    with _lock:
        if dsn in _clients:
            return _clients[dsn]
        try:
            if is_embedded(dsn):
                root = embedded_root(dsn)
                ParquetStore(ParquetStoreConfig(root)).setup()
                client = _embedded_reader(root)
            else:
                import clickhouse_connect

                client = clickhouse_connect.get_client(dsn=dsn)
                _ensure_schema_best_effort(client)
        except SinkError:
            raise
        except Exception as e:  # connection refused, auth failure, ... - never echo the raw DSN
            raise SinkError(f"cannot open ClickHouse at {mask_dsn(dsn)}: {str(e).replace(dsn, mask_dsn(dsn))[:300]}") from e
        _clients[dsn] = client
        return client


def open_store(dsn: str, **parquet_options: Any) -> Store:
    """The writer for ``dsn`` with its schema created (the archive sink calls this once on start)."""
    _check_dsn(dsn)
    if is_embedded(dsn):
        store: Store = ParquetStore(ParquetStoreConfig(embedded_root(dsn), **parquet_options))
    else:
        import clickhouse_connect

        try:
            store = ServerStore(clickhouse_connect.get_client(dsn=dsn))
        except Exception as e:  # see clickhouse_client
            raise SinkError(f"cannot open ClickHouse at {mask_dsn(dsn)}: {str(e).replace(dsn, mask_dsn(dsn))[:300]}") from e
    store.setup()
    return store
