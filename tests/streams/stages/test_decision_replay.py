"""Parity of the control: the live agent states, fed with random cross-topic interleavings and delays, decide
exactly what the offline driver decides on the archived inputs — for every registered router and scaler."""

from __future__ import annotations

import pytest

from streams.pipeline_config import PipelineConfig
from streams.policies.policy_registry import ROUTERS, SCALERS, PolicySpecError
from streams.stages.control import RouteAgentState
from streams.stages.decision_replay import replay_decisions
from tests.streams.stages.closed_loop import Archive, requests, run_closed_loop

SERVICES = ("svc-a", "svc-b")


def _replay(cfg: PipelineConfig, archive: Archive):  # type: ignore[no-untyped-def]
    t = archive.topics
    return replay_decisions(cfg, t["predicted-requests"], t["instance-events"], t["completions"],  # type: ignore[arg-type]
                            t["forecasts"], t["routes"], t["scale-commands"])  # type: ignore[arg-type]


SCALER_SPECS = {"fixed": "fixed(n=2)", "reactive": "reactive(up=0.3,down=0.05)",
                "queue-depth": "queue-depth(threshold=1,cooldown=20)", "preserve": "preserve(freeze_s=10)",
                "interval-planner": "interval-planner(adjustment_s=5,target_util=0.3)"}
OFFLINE_ONLY = {"oracle-schedule", "tod-schedule"}  # the future / a previous day: refused live (tested below)
POLICIES = sorted({f"{r}:fixed(n=2)" for r in ROUTERS}
                  | {f"least-requests:{SCALER_SPECS.get(s, s)}" for s in SCALERS if s not in OFFLINE_ONLY}
                  | {"preserve:preserve(freeze_s=10)"})


def _cfg(policy: str) -> PipelineConfig:
    # short density windows, so that forecasts flow to the scaler within the test's few minutes of event time
    return PipelineConfig(policy=policy, instances=1, max_instances=4, cold_start_s=20.0, warmup_s=10.0,
                          density_window_s=10.0, density_grace_s=2.0, forecast_model="last_value")


@pytest.mark.parametrize("policy", POLICIES)
def test_live_decisions_replay_exactly_from_the_archive(policy: str) -> None:
    cfg = _cfg(policy)
    archive = run_closed_loop(cfg, requests(240, SERVICES, seed=3, rate=12.0), seed=11)
    routes = archive.topics["routes"]
    assert len(routes) == 240 and len({r.request_id for r in routes}) == 240
    report = _replay(cfg, archive)
    assert report.routes_compared == 240 and report.commands_compared >= 2  # two bootstraps at least
    if policy.split(":")[1].split("(")[0] != "fixed":
        assert report.commands_compared > 2  # the scaler acted: its decisions are compared too
    assert report.mismatches == []


def test_every_registered_policy_is_covered() -> None:
    assert {p.split(":")[0].split("(")[0] for p in POLICIES} == set(ROUTERS)
    assert {p.split(":")[1].split("(")[0] for p in POLICIES} == set(SCALERS) - OFFLINE_ONLY


@pytest.mark.parametrize(("policy", "why"), [("least-requests:oracle-schedule", "future of the trace"),
                                             ("preserve:preserve(forecast=oracle)", "future of the trace"),
                                             ("least-requests:tod-schedule", "previous day")])
def test_an_offline_only_policy_is_refused_live_with_a_reason(policy: str, why: str) -> None:
    with pytest.raises(PolicySpecError, match=why):
        RouteAgentState(_cfg(policy))


def test_a_decision_that_depended_on_an_input_the_archive_lacks_is_a_mismatch() -> None:
    cfg = _cfg("least-requests:reactive(up=0.3,down=0.05)")
    archive = run_closed_loop(cfg, requests(240, SERVICES, seed=5, rate=12.0), seed=2)
    assert _replay(cfg, archive).mismatches == []
    lossy = Archive()
    for topic, recs in archive.topics.items():
        for k, rec in enumerate(recs):
            if not (topic == "instance-events" and k % 7 == 3):  # lose some statuses from the archive
                lossy.add(rec)
    assert _replay(cfg, lossy).decision_mismatches > 0


