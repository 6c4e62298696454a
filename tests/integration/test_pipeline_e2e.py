"""The live pipeline end to end on the real broker: two control workers sharing the services, the simulated
fleet, a few hundred requests of several services. One pipeline run (module fixture), several checks."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleet.live.demo_report import archive_frames
from fleet.live.demo_run import DemoOutcome, DemoSettings, read_records, run_pipeline
from streams.pipeline_config import PipelineConfig
from streams.policies.density_windows import density_series
from streams.records import Completion, TokenDensity
from streams.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

N = 400
SERVICES = ["svc-a", "svc-b", "svc-c", "svc-d", "svc-e", "svc-f"]
CFG = PipelineConfig(policy="preserve:preserve", predictor="fallback", instances=2, density_window_s=20.0,
                     density_grace_s=5.0, cold_start_s=10.0)


def synthetic_trace(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(0.25, n))
    arrival -= arrival[0]
    return pd.DataFrame({"request_id": [f"req-{i}" for i in range(n)], "arrival_s": arrival,
                         "service": rng.choice(SERVICES, n), "prompt_tokens": rng.integers(20, 2000, n),
                         "output_tokens": rng.integers(1, 400, n)})


@pytest.fixture(scope="module")
def run(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoOutcome, KafkaSettings, pd.DataFrame, str]:
    prefix = f"it{time.time_ns() % 10**9}."
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=prefix)
    run_dir = tmp_path_factory.mktemp("pipeline")
    env = {"PRESERVE_KAFKA__BOOTSTRAP_SERVERS": kafka_broker, "PRESERVE_KAFKA__TOPIC_PREFIX": prefix,
           "PRESERVE_CLICKHOUSE__DSN": f"chdb://{run_dir / 'clickhouse'}", "PRESERVE_DATA_DIR": str(run_dir)}
    df = synthetic_trace(N)
    outcome = run_pipeline(df, CFG, kafka, env, run_dir, DemoSettings(speedup=20.0, workers=2, archive=True,
                                                                     drain_timeout_s=150.0),
                           say=lambda _m: None)
    return outcome, kafka, df, env["PRESERVE_CLICKHOUSE__DSN"]


def test_every_request_gets_exactly_one_route_and_one_completion(run) -> None:  # noqa: ANN001
    outcome, kafka, df, _ = run
    routes, comps = read_records(kafka, "routes"), read_records(kafka, "completions")
    want = sorted(df["request_id"])
    assert sorted(routes["request_id"]) == want
    assert sorted(comps["request_id"]) == want
    assert (comps["e2e_s"] >= comps["ttft_s"]).all() and (comps["ts"] >= comps["arrival_ts"]).all()
    assert outcome.counts["dead-letter"] == 0
    by_id = routes.set_index("request_id")
    served = comps.set_index("request_id").loc[by_id.index]
    # Each completion names its route's instance -- or, where the instance had stopped before the route reached it
    # (the router decided on a view without the instance's drain: one pipeline round trip), the completion says
    # which instance the route named (`rerouted_from`) and names the one that served it. Nothing else differs.
    rerouted = served["rerouted_from"].notna() if "rerouted_from" in served else pd.Series(False, served.index)
    assert (served.loc[~rerouted, "instance_id"] == by_id.loc[~rerouted, "instance_id"]).all()
    assert (served.loc[rerouted, "rerouted_from"] == by_id.loc[rerouted, "instance_id"]).all()
    assert (served.loc[rerouted, "instance_id"] != by_id.loc[rerouted, "instance_id"]).all()


def test_windowed_density_equals_the_offline_function(run) -> None:  # noqa: ANN001
    _, kafka, _, _ = run
    rows = read_records(kafka, "completions").to_dict("records")  # optional fields absent from a row read as NaN
    comps = [Completion(**{k: v for k, v in json.loads(json.dumps(r)).items() if v == v}) for r in rows]
    live = [TokenDensity(**r) for r in read_records(kafka, "token-density").to_dict("records")]
    offline = {(w.service, w.window_start): w for w in density_series(comps, CFG.density_window_s,
                                                                      CFG.density_grace_s).windows}
    assert len(live) >= 2 * len(SERVICES)
    # The live table emits a window once the service's watermark passes its end + grace; the last windows of
    # each service stay open at the end of a finite stream. Every emitted window equals the offline one.
    for w in live:
        assert offline[(w.service, w.window_start)] == w
    assert sum(w.requests for w in live) <= len(comps)


def _last_assignment(log: Path, topic: str) -> str | None:
    found = re.findall(rf"\|\s*{re.escape(topic)}\s*\|\s*\{{([^}}]*)\}}", log.read_text(errors="replace"))
    return found[-1] if found else None


def test_two_workers_share_the_partitions(run) -> None:  # noqa: ANN001
    outcome, kafka, _, _ = run
    topic = kafka.topic("predicted-requests")
    parts = [_last_assignment(outcome.run_dir / f"worker-{i}.log", topic) for i in range(2)]
    assert all(parts), f"each worker should own some partitions of {topic}: {parts}"
    assert parts[0] != parts[1]


def test_routing_tables_and_scale_commands_flow(run) -> None:  # noqa: ANN001
    outcome, kafka, _, _ = run
    scale = read_records(kafka, "scale-commands")
    assert set(scale["service"]) == set(SERVICES)  # every service was bootstrapped by its owner
    assert (scale["reason"].str.len() > 0).all()
    assert outcome.counts["routing-table"] > 0 and outcome.counts["forecasts"] > 0


def test_clickhouse_rows_match_the_topics_exactly(run) -> None:  # noqa: ANN001
    outcome, _, df, dsn = run
    rows, comp, _ = archive_frames(dsn)
    assert outcome.archive_lag == 0
    for topic in ("requests", "predicted-requests", "routes", "completions", "instance-events", "scale-commands"):
        assert rows[topic] == outcome.counts[topic], topic
    assert rows["requests"] == len(df) and comp["request_id"].nunique() == len(df)
