"""Bad input through the real broker with a running worker and fleet: fuzzed RequestEvents and Completions
interleaved with good ones. No process crashes; each bad message lands exactly once in the dead-letter topic
(identified by its partition and offset) with a reason naming the fault; every good request is predicted and
routed exactly once and the density windows equal the offline function of the good completions."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from fleet.live.pipeline_procs import read_topic
from streams.pipeline_config import PipelineConfig
from streams.policies.density_windows import density_series
from streams.records import Completion, InvalidEvent, TokenDensity, parse_event
from tests.reliability.bad_events import Case, encode, every_kind, good_completion, good_request
from tests.reliability.live import LiveRun, live_run, produce, records, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

CFG = PipelineConfig(policy="preserve:preserve", predictor="fallback", instances=2, density_window_s=20.0,
                     density_grace_s=5.0, cold_start_s=10.0)
N_BAD = 120  # of each kind (requests, completions)
N_GOOD_REQ = 100
N_GOOD_COMP = 160  # one per event second: 8 windows of 20 s
ONLY_GENERATE = settings(max_examples=1, phases=[Phase.generate], deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def live(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with live_run(kafka_broker, tmp_path_factory.mktemp("badinput"), CFG) as run:
        yield run


def _interleave(good: list[Case], bad: list[Case]) -> list[Case]:
    out: list[Case] = []
    for i in range(max(len(good), len(bad))):
        out += good[i:i + 1] + bad[i:i + 1]
    return out


@ONLY_GENERATE
@given(bad_reqs=every_kind("requests", N_BAD), bad_comps=every_kind("completions", N_BAD))
def test_fuzzed_events_are_dead_lettered_once_and_good_events_flow(live: LiveRun, bad_reqs: tuple[Case, ...],
                                                                   bad_comps: tuple[Case, ...]) -> None:
    now = time.time()
    good_reqs = [Case(encode({**good_request(i, ("svc-a", "svc-b")[i % 2], now + 0.02 * i), "request_id": f"g-{i}"}),
                      "", "good") for i in range(N_GOOD_REQ)]
    t0 = now - 600.0
    good_comps = [Case(encode({**good_completion(i, "svc-dens", t0 + i), "request_id": f"gc-{i}"}), "", "good")
                  for i in range(N_GOOD_COMP)]
    sent: dict[tuple[str, int, int], Case] = {}
    for topic, cases in (("requests", _interleave(good_reqs, list(bad_reqs))),
                         ("completions", _interleave(good_comps, list(bad_comps)))):
        key = b"svc-dens" if topic == "completions" else b"svc-a"
        where = produce(live.kafka, topic, [(key, c.value) for c in cases])
        sent.update({(topic, p, o): c for (p, o), c in zip(where, cases, strict=True)})
    n_bad = sum(c.bad for c in sent.values())

    def routed() -> bool:
        return len(records(live.kafka, "dead-letter")) >= n_bad and len(records(live.kafka, "routes")) >= N_GOOD_REQ

    wait_until(routed, 150.0, live, "all dead letters and routes")
    time.sleep(3.0)  # anything extra (a second dead letter, a duplicate route) would arrive now
    live.procs.check_alive()
    dead = records(live.kafka, "dead-letter")
    _check_dead_letters(dead, sent)
    print(f"\nlive fuzzing: {n_bad} bad + {len(sent) - n_bad} good messages through the broker, "
          f"{len(dead)} dead letters, kinds {dict(Counter(c.kind for c in sent.values() if c.bad))}")
    good_ids = sorted(f"g-{i}" for i in range(N_GOOD_REQ))
    assert sorted(r["request_id"] for r in records(live.kafka, "predicted-requests")) == good_ids
    assert sorted(r["request_id"] for r in records(live.kafka, "routes")) == good_ids
    _check_density(live)
    for name in live.procs.procs:
        assert "Traceback" not in (live.run_dir / f"{name}.log").read_text(errors="replace"), live.procs.tail(name)


def _check_dead_letters(dead: list[dict], sent: dict[tuple[str, int, int], Case]) -> None:
    where = Counter((d["source_topic"], d["partition"], d["offset"]) for d in dead)
    bad = {k: c for k, c in sent.items() if c.bad}
    assert set(where) == set(bad), "dead letters must be exactly the bad messages"
    assert max(where.values()) == 1, f"a message was dead-lettered twice: {where.most_common(3)}"
    for d in dead:
        case = bad[(d["source_topic"], d["partition"], d["offset"])]
        assert case.expect in d["reason"], (case.kind, d["reason"])


def _check_density(live: LiveRun) -> None:
    comps: list[Completion] = []
    for raw in read_topic(live.kafka, "completions"):
        try:
            comps.append(parse_event(raw, Completion))
        except InvalidEvent:
            pass
    wanted = {(w.service, w.window_start): w for w in density_series(comps, CFG.density_window_s,
                                                                     CFG.density_grace_s).windows}
    live_windows = [TokenDensity(**r) for r in records(live.kafka, "token-density")]
    dens = [w for w in live_windows if w.service == "svc-dens"]
    assert len(dens) >= N_GOOD_COMP // 20 - 1  # all but the still-open last window
    assert sum(w.requests for w in dens) >= N_GOOD_COMP - 25
    for w in live_windows:
        assert wanted[(w.service, w.window_start)] == w



def test_a_clock_20_h_ahead_and_one_at_2001_are_dead_lettered_and_no_other_service_moves(live: LiveRun) -> None:
    """Issue 21, item 1, through the broker: among two healthy services' wall-clock requests, one request 20 h
    ahead and one at ts = 2001 are dead-lettered with the reason; the healthy services are routed at their own
    time and scaled at it (nothing of theirs is stamped 20 h ahead or decades behind)."""
    now = time.time()
    items: list[tuple[bytes, bytes]] = []
    for i in range(40):
        svc = ("svc-h1", "svc-h2")[i % 2]
        items.append((svc.encode(), encode({**good_request(i, svc, now + 0.05 * i), "request_id": f"h-{i}"})))
        if i == 10:
            items.append((b"svc-h1", encode({**good_request(900, "svc-h1", now + 20 * 3600.0),
                                             "request_id": "skew-ahead"})))
        if i == 20:
            items.append((b"svc-h2", encode({**good_request(901, "svc-h2", 2001.0), "request_id": "skew-2001"})))
    produce(live.kafka, "requests", items)
    healthy = {f"h-{i}" for i in range(40)}

    def done() -> bool:
        routed = {r["request_id"] for r in records(live.kafka, "routes")}
        skewed = [d for d in records(live.kafka, "dead-letter") if "skew-" in d["payload"]]
        return healthy <= routed and len(skewed) >= 2

    wait_until(done, 120.0, live, "healthy requests routed, skewed ones dead-lettered")
    time.sleep(2.0)
    dead = [d for d in records(live.kafka, "dead-letter") if "skew-" in d["payload"]]
    assert len(dead) == 2 and sorted("ahead of the stream" in d["reason"] for d in dead) == [False, True]
    assert any("behind the stream" in d["reason"] for d in dead)
    routes = [r for r in records(live.kafka, "routes") if r["service"] in ("svc-h1", "svc-h2")]
    assert not {r["request_id"] for r in routes} & {"skew-ahead", "skew-2001"}
    assert all(abs(r["ts"] - r["arrival_ts"]) < 60 for r in routes)  # routed at their own time
    cmds = [c for c in records(live.kafka, "scale-commands") if c["service"] in ("svc-h1", "svc-h2")]
    assert cmds and all(now - 3600 < c["ts"] < now + 3600 for c in cmds)
