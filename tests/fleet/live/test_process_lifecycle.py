"""The engine-process state machine: readiness, drain, SIGTERM -> SIGKILL, deaths (pure, explicit now)."""

from fleet.live.process_lifecycle import EngineLifecycle, LifecycleTimeouts, Phase, Signal

T = LifecycleTimeouts(ready_timeout_s=10.0, drain_timeout_s=20.0, term_grace_s=5.0)


def test_ready_when_healthy_measures_cold_start() -> None:
    lc = EngineLifecycle("a", 100.0, T)
    assert lc.observe(100.5, None, False, 0) is None and lc.phase is Phase.STARTING
    assert lc.observe(101.25, None, True, 0) is None
    assert lc.phase is Phase.READY and lc.cold_start_s == 1.25


def test_never_ready_is_terminated_then_killed_with_a_reason() -> None:
    lc = EngineLifecycle("a", 0.0, T)
    assert lc.observe(9.9, None, False, 0) is None
    assert lc.observe(10.0, None, False, 0) is Signal.TERM
    assert lc.reason == "not ready after 10 s" and lc.phase is Phase.TERMINATING
    assert lc.observe(14.0, None, False, 0) is None
    assert lc.observe(15.0, None, False, 0) is Signal.KILL
    lc.observe(15.1, -9, False, 0)
    assert lc.phase is Phase.EXITED and lc.failed_to_start and not lc.died
    assert lc.lifetime_s(99.0) == 15.1


def test_drain_waits_for_in_flight_then_terminates() -> None:
    lc = EngineLifecycle("a", 0.0, T)
    lc.observe(1.0, None, True, 0)
    assert lc.drain(2.0) is None and lc.phase is Phase.DRAINING
    assert lc.observe(3.0, None, False, 2) is None
    assert lc.observe(4.0, None, False, 0) is Signal.TERM
    assert lc.reason == "drained"
    lc.observe(4.2, 0, False, 0)
    assert lc.phase is Phase.EXITED and not lc.died


def test_drain_timeout_stops_a_busy_engine_anyway() -> None:
    lc = EngineLifecycle("a", 0.0, T)
    lc.observe(1.0, None, True, 0)
    lc.drain(2.0)
    assert lc.observe(21.9, None, False, 3) is None
    assert lc.observe(22.0, None, False, 3) is Signal.TERM
    assert "drain timeout (3 requests" in lc.reason


def test_cancel_while_starting_and_unexpected_death() -> None:
    starting = EngineLifecycle("a", 0.0, T)
    assert starting.drain(0.5) is Signal.TERM and starting.reason == "cancelled before ready"
    ready = EngineLifecycle("b", 0.0, T)
    ready.observe(1.0, None, True, 0)
    ready.observe(5.0, -9, False, 1)
    assert ready.died and ready.reason == "died (exit code -9)" and ready.exited_at == 5.0
    early = EngineLifecycle("c", 0.0, T)
    early.observe(0.3, 1, False, 0)
    assert early.died and early.failed_to_start and early.reason == "exited before ready (exit code 1)"


def test_stop_is_idempotent_and_exited_is_final() -> None:
    lc = EngineLifecycle("a", 0.0, T)
    lc.observe(1.0, None, True, 0)
    assert lc.stop(2.0, "manager stopping") is Signal.TERM
    assert lc.stop(2.5) is None
    lc.observe(3.0, 0, False, 0)
    assert lc.observe(4.0, None, True, 0) is None and lc.phase is Phase.EXITED
    assert lc.reason == "manager stopping"


def test_a_serving_process_whose_health_is_silent_past_the_hang_timeout_is_hung_and_stopped() -> None:
    lc = EngineLifecycle("a", 0.0, LifecycleTimeouts(10.0, 20.0, 5.0, hang_timeout_s=6.0))
    lc.observe(1.0, None, True, 3)
    assert lc.observe(4.0, None, True, 3, probed=True) is None and lc.last_healthy == 4.0
    assert lc.observe(6.0, None, False, 3, probed=True) is None  # one silent probe is not a hang
    assert lc.observe(9.0, None, False, 3, probed=False) is None  # no probe: nothing learned
    assert lc.observe(10.0, None, False, 3, probed=True) is Signal.TERM
    assert lc.hung and lc.lost and not lc.died and "hung" in lc.reason and "6 s" in lc.reason
    assert lc.observe(15.0, None, False, 3) is Signal.KILL  # a stopped process ignores SIGTERM


def test_the_hang_timeout_can_be_turned_off() -> None:
    lc = EngineLifecycle("a", 0.0, LifecycleTimeouts(10.0, 20.0, 5.0, hang_timeout_s=0.0))
    lc.observe(1.0, None, True, 0)
    assert lc.observe(1000.0, None, False, 0, probed=True) is None and not lc.hung
