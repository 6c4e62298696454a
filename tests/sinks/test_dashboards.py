"""The Grafana dashboards in docs/dashboards/: every archive query runs on a real archive (embedded chdb over the
Parquet files a ClickHouseSink wrote from a coherent sample run), and every Prometheus query names series and
labels the processes really export (streams/transport/metrics_server.py)."""

from __future__ import annotations

import json
import re

import pytest

from sinks.analytics import query_df
from sinks.clickhouse_sink import ClickHouseSink
from sinks.schema import all_schemas
from streams.settings import project_root
from streams.transport.metrics_server import REGISTRY
from tests.fixtures.archive_data import sample_run

DASHBOARDS = project_root() / "docs" / "dashboards"
T0 = 1_700_000_000.0
# Grafana's ClickHouse plugin macros, as it would expand them for a range holding the sample run.
MACROS = {"$__fromTime": f"toDateTime({int(T0) - 3600})", "$__toTime": f"toDateTime({int(T0) + 86400})",
          "$__interval_s": "60"}


def _load(name: str) -> dict:
    return json.loads((DASHBOARDS / name).read_text())


def _targets(dash: dict) -> list[tuple[str, dict]]:
    return [(p["title"], t) for p in dash["panels"] for t in p["targets"]]


def _expand(sql: str) -> str:
    for macro, value in MACROS.items():
        sql = sql.replace(macro, value)
    assert "$" not in sql, f"unexpanded Grafana variable in {sql}"
    return sql


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    dsn = f"chdb://{tmp_path_factory.mktemp('dash') / 'archive'}"
    sink = ClickHouseSink(dsn)
    for item in sample_run(T0):
        sink.add(*item)
    sink.flush()
    return dsn


def test_dashboards_are_importable_grafana_json() -> None:
    for name, ds in (("preserve-archive.json", "grafana-clickhouse-datasource"), ("preserve-metrics.json", "prometheus")):
        dash = _load(name)
        assert dash["uid"] and dash["title"] and dash["panels"]
        assert [i["pluginId"] for i in dash["__inputs"]] == [ds]
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids))
        for p in dash["panels"]:
            assert p["datasource"]["type"] == ds and p["targets"], p["title"]


def test_every_archive_query_runs_on_the_archive_schema(archive: str) -> None:
    tables = {s.table for s in all_schemas().values()}
    empty = []
    for title, t in _targets(_load("preserve-archive.json")):
        sql = _expand(t["rawSql"])
        used = set(re.findall(r"\bFROM\s+([a-z_]+)", sql))
        assert used <= tables, f"{title}: unknown tables {used - tables}"
        df = query_df(archive, sql)  # raises on an unknown column or a type error
        if df.empty:
            empty.append(title)
    # The sample run has no RouteDecision.arrival_ts: only the latency panel may come back empty.
    assert empty == ["Decision latency (arrival to decision), ms"], empty


def _exported() -> dict[str, set[str]]:
    """Sample names a scrape can show (counters' _total, histograms' _bucket/_sum/_count) -> their labels."""
    out: dict[str, set[str]] = {}
    for fam in REGISTRY.collect():
        labels = set(getattr(REGISTRY._names_to_collectors.get(fam.name), "_labelnames", ()))  # noqa: SLF001
        names = {"counter": [f"{fam.name}_total"], "histogram": [f"{fam.name}_{s}" for s in ("bucket", "sum", "count")],
                 "gauge": [fam.name]}[fam.type]
        for n in names:
            out[n] = labels | ({"le"} if n.endswith("_bucket") else set())
    return out


def test_every_prometheus_query_names_exported_series_and_labels() -> None:
    exported = _exported()
    for title, t in _targets(_load("preserve-metrics.json")):
        expr = t["expr"]
        series = set(re.findall(r"\b(preserve_[a-z_]+)", expr))
        assert series or "up" in expr, title
        for s in series:
            assert s in exported, f"{title}: {s} is not exported ({sorted(exported)})"
            grouped = set().union(*(set(g.replace(" ", "").split(",")) for g in re.findall(r"by \(([^)]*)\)", expr)))
            extra = grouped - exported[s] - {"job", "instance"}
            assert not extra, f"{title}: {s} has no label {extra}"
