"""The server archive (ReplacingMergeTree + FINAL views) on a real ClickHouse engine: chdb with a data path,
driven through the same clickhouse-connect client surface as an HTTP server. chdb allows one engine path per
process, so the server side runs in a subprocess; its results must equal the embedded archive's for the same
SQL (same table names and columns on both kinds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sinks.analytics import SAVED_QUERIES, query_df
from sinks.clickhouse_sink import ClickHouseSink
from sinks.client import clickhouse_client, mask_dsn, open_store
from sinks.exceptions import SinkError
from streams.settings import project_root
from tests.fixtures.archive_data import sample_run

T0 = 1_700_000_000.0
QUERIES = {
    "counts": "SELECT * FROM (SELECT 'requests' AS t, count() AS n FROM requests UNION ALL SELECT 'completions', "
              "count() FROM completions UNION ALL SELECT 'dead_letter', count() FROM dead_letter) ORDER BY t",
    **{name: f"SELECT * FROM {name}" for name in SAVED_QUERIES},
}

SCRIPT = """
import json, sys
import clickhouse_connect
from sinks.clickhouse_sink import ClickHouseSink
from sinks.server_store import ServerStore
from tests.fixtures.archive_data import sample_run
path, t0, queries = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3])
store = ServerStore(clickhouse_connect.get_client(dsn="chdb://" + path))
store.setup(); store.setup()  # schema creation is idempotent
sink = ClickHouseSink("http://user:pw@unused:8123/db", store=store)
for _ in range(2):  # the same messages delivered twice
    for item in sample_run(t0):
        sink.add(*item)
    sink.flush()
out = {k: store.client.query_df(q).astype(str).to_dict("list") for k, q in queries.items()}
print(json.dumps(out))
"""


def test_server_schema_dedups_and_answers_the_same_sql_as_embedded(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "server"), str(T0), json.dumps(QUERIES)],
                          capture_output=True, text=True, cwd=project_root(), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    server = json.loads(proc.stdout.strip().splitlines()[-1])

    dsn = f"chdb://{tmp_path / 'embedded'}"
    sink = ClickHouseSink(dsn)
    for item in sample_run(T0):
        sink.add(*item)
    sink.flush()
    for name, sql in QUERIES.items():
        embedded = query_df(dsn, sql).astype(str).to_dict("list")
        assert embedded == server[name], name
    counts = dict(zip(server["counts"]["t"], server["counts"]["n"], strict=True))
    assert counts == {"completions": "120", "dead_letter": "1", "requests": "120"}


def test_mask_dsn_hides_passwords() -> None:
    assert mask_dsn("https://alice:s3cr3t@ch.example:8443/db") == "https://alice:***@ch.example:8443/db"
    assert mask_dsn("http://h:8123/db?user=a&password=s3cr3t") == "http://h:8123/db?user=a&password=***"
    assert mask_dsn("chdb:///tmp/x") == "chdb:///tmp/x"


def test_unreachable_server_error_hides_the_password() -> None:
    dsn = "http://alice:s3cr3t-pw@127.0.0.1:1/db"  # nothing listens on port 1
    for opener in (clickhouse_client, open_store):
        with pytest.raises(SinkError) as err:
            opener(dsn)
        assert "s3cr3t-pw" not in str(err.value) and "alice:***@127.0.0.1:1" in str(err.value)
