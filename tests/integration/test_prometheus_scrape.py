"""A real Prometheus (Debian's `prometheus` package, installed by scripts/setup.sh where apt is usable) scrapes a
running pipeline on loopback: a control worker, the archive worker and the fleet, each with ``--metrics-port``.
The test asserts on the series as Prometheus stored them (its HTTP query API), and on the probes: every process
turns ready, and ``/livez`` answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from fleet.live.demo_run import CONTROL_AGENTS, READY_MARKER, pipeline_args
from fleet.live.pipeline_procs import PipelineProcesses
from infra.process_control import free_port
from streams.pipeline_config import PipelineConfig
from streams.settings import KafkaSettings
from streams.topics import ensure_topics
from tests.reliability.live import Replayer, trace, wait_until
from tests.reliability.recovery import first_routes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PROMETHEUS = shutil.which("prometheus")
N = 120


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310  (loopback)
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def _query(prom: str, q: str) -> list[dict]:
    code, body = _get(f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': q})}")
    if code != 200:
        return []
    return json.loads(body)["data"]["result"]


def _value(prom: str, q: str) -> float | None:
    res = _query(prom, q)
    return float(res[0]["value"][1]) if res else None


@pytest.mark.skipif(PROMETHEUS is None, reason="the `prometheus` binary is absent: `apt-get install prometheus` "
                    "(scripts/setup.sh does it where apt is usable) to run the scrape test")
def test_a_real_prometheus_scrapes_the_running_pipeline(kafka_broker: str, tmp_path: Path) -> None:
    prefix = f"prom{time.time_ns() % 10**9}."
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=prefix)
    ensure_topics(kafka)
    env = {"PRESERVE_KAFKA__BOOTSTRAP_SERVERS": kafka_broker, "PRESERVE_KAFKA__TOPIC_PREFIX": prefix,
           "PRESERVE_CLICKHOUSE__DSN": f"chdb://{tmp_path / 'clickhouse'}", "PRESERVE_DATA_DIR": str(tmp_path)}
    cfg = PipelineConfig(policy="least-requests:fixed", predictor="fallback", instances=2, archive_within_s=0.2)
    ports: dict[str, int] = {}
    for name in ("worker", "archive", "fleet", "prometheus"):
        ports[name] = free_port(avoid=set(ports.values()))
    procs = PipelineProcesses(tmp_path / "logs", env)
    prom_proc: subprocess.Popen[bytes] | None = None
    try:
        procs.start("worker", ["worker", "--agents", CONTROL_AGENTS, "--loglevel", "info",
                               "--metrics-port", str(ports["worker"]), *pipeline_args(cfg)])
        procs.start("archive", ["worker", "--agents", "archive", "--loglevel", "info",
                                "--metrics-port", str(ports["archive"]), *pipeline_args(cfg)])
        procs.start("fleet", ["fleet", "--speedup", "10", "--lag-s", "0.5", "--quiet",
                              "--metrics-port", str(ports["fleet"])])
        targets = {n: f"127.0.0.1:{ports[n]}" for n in ("worker", "archive", "fleet")}
        # Probes answer before Kafka work is done: live at once, ready only once partitions are assigned.
        wait_until(lambda: all(_get(f"http://{t}/livez")[0] == 200 for t in targets.values()), 60.0, None,
                   "every /livez answering", every_s=0.5)
        for name in ("worker", "archive"):
            procs.wait_for_log(name, READY_MARKER, 180.0)
        wait_until(lambda: all(_get(f"http://{t}/readyz")[0] == 200 for t in targets.values()), 90.0, None,
                   "every /readyz 200: " + str({n: _get(f"http://{t}/readyz") for n, t in targets.items()}),
                   every_s=0.5)

        config = tmp_path / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n" + "".join(
            f"  - job_name: {n}\n    static_configs:\n      - targets: ['{t}']\n" for n, t in targets.items()))
        prom_log = (tmp_path / "prometheus.log").open("wb")
        prom_proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}",
                                      f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
                                     stdout=prom_log, stderr=subprocess.STDOUT, start_new_session=True)
        prom = f"http://127.0.0.1:{ports['prometheus']}"
        wait_until(lambda: _get(f"{prom}/-/ready")[0] == 200, 60.0, None, "prometheus ready", every_s=0.5)

        df = trace(N, ["svc-a", "svc-b"], gap_s=0.05)
        rep = Replayer(kafka, df, 10.0)
        rep.start()
        rep.join(120)
        assert rep.error is None and rep.failed == 0 and rep.sent == N
        wait_until(lambda: len(first_routes(kafka)[0]) >= N, 120.0, None, "every request routed", every_s=1.0)

        def scraped() -> bool:
            return (_value(prom, "sum(preserve_decisions_total)") or 0) >= N and (
                _value(prom, "sum(preserve_archive_rows_total)") or 0) > 0
        wait_until(scraped, 60.0, None, "decisions and archive rows in Prometheus", every_s=1.0)

        up = {r["metric"]["job"]: float(r["value"][1]) for r in _query(prom, "up")}
        got = {q: _value(prom, q) for q in (
            "sum(preserve_decisions_total)", "sum(preserve_decision_latency_seconds_count)",
            'sum(preserve_predictions_total{source="fallback"})', "sum(preserve_scale_actions_total)",
            'sum(preserve_instances{state="ready"})', "sum(preserve_archive_insert_seconds_count)",
            "max(preserve_ready)")}
        why = f"up {up}, values {got}"
        assert up == {"worker": 1.0, "archive": 1.0, "fleet": 1.0}, why
        assert got["sum(preserve_decisions_total)"] == N, why  # one decision per request, none doubled
        assert got["sum(preserve_decision_latency_seconds_count)"] == N, why
        assert got['sum(preserve_predictions_total{source="fallback"})'] == N, why
        assert (got["sum(preserve_scale_actions_total)"] or 0) >= 1, why  # each service's initial instances
        assert (got['sum(preserve_instances{state="ready"})'] or 0) >= 2, why
        assert (got["sum(preserve_archive_insert_seconds_count)"] or 0) >= 1, why
        assert got["max(preserve_ready)"] == 1.0, why
        lag = _query(prom, 'preserve_consumer_lag{job="worker"}')
        assert lag and {r["metric"]["topic"] for r in lag} >= {f"{prefix}requests"}
        # Over the whole run (the buckets as they stand): a rate() window may hold the run in one scrape only.
        p99 = _value(prom, "histogram_quantile(0.99, sum(preserve_decision_latency_seconds_bucket) by (le))")
        assert p99 is not None and p99 > 0
        print(f"\nscraped: decisions {N}, p99 decision latency (histogram) {p99 * 1000:.1f} ms")
    finally:
        if prom_proc is not None:
            prom_proc.terminate()
            prom_proc.wait(20)
        procs.stop_all()
