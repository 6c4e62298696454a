"""FleetState's rules, one at a time: event order per instance (equal times apply), stops, placeholders
replaced by real instances, which event kinds carry load, the queue's prompt tokens reset, what the scale
agent expects (placeholders up, newest-starting then least-loaded down), dispatches and completions."""

from __future__ import annotations

from streams.records import Completion, InstanceEvent, InstanceEventKind, InstanceState
from streams.stages.fleet_state import FleetState

K, St = InstanceEventKind, InstanceState
T = 8000.0


def ev(ts: float, iid: str, kind: InstanceEventKind, state: InstanceState, cap: int = 0, **load: int) -> InstanceEvent:
    return InstanceEvent(ts=ts, service="svc", instance_id=iid, kind=kind, state=state, kv_capacity_tokens=cap,
                         **load)


def done(iid: str, prompt: int, output: int, ts: float = T + 50) -> Completion:
    return Completion(ts=ts, request_id="r", service="svc", instance_id=iid, arrival_ts=T, prompt_tokens=prompt,
                      output_tokens=output, ttft_s=0.1, e2e_s=1.0)


def test_view_parameters() -> None:
    f = FleetState("svc", min_instances=2, max_instances=5, cold_start_s=42.0)
    assert (f.service, f.view.service, f.view.min_instances, f.view.max_instances, f.view.cold_start_s) == (
        "svc", "svc", 2, 5, 42.0)
    d = FleetState("svc")
    assert (d.view.min_instances, d.view.max_instances, d.view.cold_start_s, d.view.instances) == (1, 8, 0.0, [])


def test_start_then_ready_sets_ready_at_and_reports_it_once() -> None:
    f = FleetState("svc")
    assert f.apply(ev(T, "i1", K.START_REQUESTED, St.STARTING, cap=1000)) is False
    i = f.instances["i1"]
    assert (i.state, i.start_requested_at, i.ready_at, i.kv_capacity_tokens) == (St.STARTING, T, None, 1000)
    assert f.apply(ev(T + 30, "i1", K.READY, St.READY, running=1, waiting=2, kv_used_tokens=300)) is True
    assert (i.state, i.ready_at, i.running, i.waiting, i.kv_used_tokens) == (St.READY, T + 30, 1, 2, 300)
    assert i.kv_capacity_tokens == 1000  # an event without a capacity keeps the known one
    assert f.apply(ev(T + 31, "i1", K.STATUS, St.READY, cap=2000)) is False  # already ready
    assert i.ready_at == T + 30 and i.kv_capacity_tokens == 2000
    assert f.view.instances == [i]


def test_an_instance_first_seen_ready_is_ready_at_once() -> None:
    f = FleetState("svc")
    assert f.apply(ev(T, "i1", K.STATUS, St.READY, cap=10, running=3)) is True
    i = f.instances["i1"]
    assert (i.start_requested_at, i.ready_at, i.running) == (T, T, 3)


def test_older_events_are_ignored_equal_times_apply() -> None:
    f = FleetState("svc")
    f.apply(ev(T, "i1", K.STATUS, St.READY, running=5))
    assert f.apply(ev(T - 0.001, "i1", K.STATUS, St.READY, running=1)) is False
    assert f.instances["i1"].running == 5
    f.apply(ev(T, "i1", K.STATUS, St.READY, running=2))
    assert f.instances["i1"].running == 2
    f.apply(ev(T - 10, "i2", K.STATUS, St.READY, running=7))  # the order is per instance
    assert f.instances["i2"].running == 7


def test_only_status_ready_and_drain_events_carry_load() -> None:
    f = FleetState("svc")
    f.apply(ev(T, "i1", K.STATUS, St.READY, running=4, waiting=3, kv_used_tokens=100))
    f.apply(ev(T + 1, "i1", K.START_REQUESTED, St.READY, running=0, waiting=0, kv_used_tokens=0))
    i = f.instances["i1"]
    assert (i.running, i.waiting, i.kv_used_tokens) == (4, 3, 100)
    f.apply(ev(T + 2, "i1", K.DRAIN, St.DRAINING, running=1, waiting=1, kv_used_tokens=50))
    assert (i.state, i.running, i.waiting, i.kv_used_tokens) == (St.DRAINING, 1, 1, 50)
    assert f.view.provisioned == 0


def test_queued_prompt_tokens_are_kept_until_a_status_shows_no_queue() -> None:
    f = FleetState("svc")
    f.apply(ev(T, "i1", K.STATUS, St.READY))
    f.note_dispatch("i1", 300)
    f.note_dispatch("i1", 200)
    i = f.instances["i1"]
    assert (i.waiting, i.waiting_prompt_tokens) == (2, 500)
    f.apply(ev(T + 1, "i1", K.STATUS, St.READY, waiting=1))
    assert (i.waiting, i.waiting_prompt_tokens) == (1, 500)
    f.apply(ev(T + 2, "i1", K.STATUS, St.READY, waiting=0))
    assert (i.waiting, i.waiting_prompt_tokens) == (0, 0)
    f.note_dispatch("unknown", 10)  # ignored


def test_stops_remove_the_instance_by_kind_or_state() -> None:
    f = FleetState("svc")
    for iid in ("a", "b"):
        f.apply(ev(T, iid, K.STATUS, St.READY))
    assert f.apply(ev(T + 1, "a", K.STOPPED, St.DRAINING)) is False
    assert f.apply(ev(T + 1, "b", K.STATUS, St.STOPPED)) is False
    assert f.instances == {} and f.view.instances == []
    assert f.apply(ev(T + 2, "c", K.STOPPED, St.STOPPED)) is False  # unknown: nothing to remove
    assert f.instances == {}
    assert f.apply(ev(T + 0.5, "a", K.STATUS, St.READY)) is False  # older than its stop: stays gone
    assert f.instances == {}


def test_expect_adds_placeholders_that_real_instances_replace() -> None:
    f = FleetState("svc")
    f.apply(ev(T, "r", K.STATUS, St.READY))
    f.expect(3, now=T + 1.25)
    assert sorted(f.instances) == ["pending:8001.250-0", "pending:8001.250-1", "r"]
    assert all(f.instances[p].state is St.STARTING and f.instances[p].start_requested_at == T + 1.25
               and f.instances[p].kv_capacity_tokens == 0 for p in f.instances if p != "r")
    assert f.view.provisioned == 3
    f.apply(ev(T + 2, "s1", K.START_REQUESTED, St.STARTING))
    assert sorted(f.instances) == ["pending:8001.250-1", "r", "s1"] and f.view.provisioned == 3
    f.expect(3, now=T + 3)  # as many as provisioned: nothing changes
    assert len(f.instances) == 3


def test_expect_drains_the_newest_starting_first_then_the_least_loaded() -> None:
    f = FleetState("svc")
    f.apply(ev(T, "busy", K.STATUS, St.READY, running=1, waiting=5))
    f.apply(ev(T, "idle", K.STATUS, St.READY, running=1))
    f.apply(ev(T + 5, "old", K.START_REQUESTED, St.STARTING))
    f.apply(ev(T + 9, "new", K.START_REQUESTED, St.STARTING))
    f.apply(ev(T + 9, "gone", K.DRAIN, St.DRAINING))
    f.expect(4, now=T + 10)
    assert f.instances["new"].state is St.STARTING  # 4 provisioned already
    f.expect(3, now=T + 10)
    assert f.instances["new"].state is St.DRAINING and f.instances["old"].state is St.STARTING
    f.expect(1, now=T + 11)
    assert f.instances["old"].state is St.DRAINING and f.instances["idle"].state is St.DRAINING
    assert f.instances["busy"].state is St.READY
    assert f.view.provisioned == 1


def test_expect_deletes_placeholders_on_scale_down() -> None:
    f = FleetState("svc")
    f.apply(ev(T, "r", K.STATUS, St.READY))
    f.expect(3, now=T)
    f.expect(2, now=T + 1)
    assert len(f.instances) == 2 and f.view.provisioned == 2
    assert all(i.state is not St.DRAINING for i in f.instances.values())


def test_completions_free_a_running_sequence_first_then_a_waiting_one() -> None:
    f = FleetState("svc")
    f.apply(ev(T, "i1", K.STATUS, St.READY, running=1, waiting=1, kv_used_tokens=500))
    f.note_completion(done("i1", 100, 50))
    i = f.instances["i1"]
    assert (i.running, i.waiting, i.kv_used_tokens) == (0, 1, 350)
    f.note_completion(done("i1", 300, 100))
    assert (i.running, i.waiting, i.kv_used_tokens) == (0, 0, 0)
    f.note_completion(done("i1", 1, 1))
    assert (i.running, i.waiting) == (0, 0)
    f.note_completion(done("unknown", 1, 1))


def test_a_completion_already_counted_by_a_later_status_is_not_applied_twice() -> None:
    f = FleetState("svc")
    f.apply(ev(T + 10, "i1", K.STATUS, St.READY, running=2, kv_used_tokens=500))
    f.note_completion(done("i1", 100, 50, ts=T + 10))  # at the status's time: the status counted it
    i = f.instances["i1"]
    assert (i.running, i.kv_used_tokens) == (2, 500)
    f.note_completion(done("i1", 100, 50, ts=T + 10.5))
    assert (i.running, i.kv_used_tokens) == (1, 350)
    f.apply(ev(T + 11, "i1", K.START_REQUESTED, St.READY))  # an event without load figures
    f.note_completion(done("i1", 100, 50, ts=T + 10.8))  # after the last status (T + 10): applied
    assert (i.running, i.kv_used_tokens) == (0, 200)
