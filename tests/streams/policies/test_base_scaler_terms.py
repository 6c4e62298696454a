"""BaseScaler's rules, each alone: bounds before the freeze, the freeze to its exact end, the urgent pass, the
clamp of a wish, no action (and no freeze) when the wish is the current size. Times start at T = 9000 s."""

from __future__ import annotations

import inspect

import pytest

from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import (
    CompletionInfo,
    FleetView,
    InstanceState,
    InstanceView,
    RequestInfo,
    ScaleDecision,
)

T = 9000.0


class Wish(BaseScaler):
    """Asks for ``wish`` instances (None: no opinion); ``urgent`` passes the freeze."""

    name = "wish"

    def __init__(self, **kw: float) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.wish: int | None = None
        self.urgent = False
        self.calls = 0

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        self.calls += 1
        return None if self.wish is None else ScaleDecision(self.wish, "wish", {"w": float(self.wish)})

    def _urgent(self, fleet: FleetView, now: float) -> bool:
        return self.urgent


def fleet(ready: int, starting: int = 0, draining: int = 0) -> FleetView:
    inst = [InstanceView(f"r{i}", InstanceState.READY, 100) for i in range(ready)]
    inst += [InstanceView(f"s{i}", InstanceState.STARTING, 100) for i in range(starting)]
    inst += [InstanceView(f"d{i}", InstanceState.DRAINING, 100) for i in range(draining)]
    return FleetView("svc", inst, 1, 8)


def test_defaults() -> None:
    s = Wish()
    assert (s.min_instances, s.max_instances, s.freeze_s, s.interval_s) == (1, 8, 60.0, 5.0)
    assert s.decide(fleet(0), T) == ScaleDecision(1, "below min_instances=1")
    assert s.decide(fleet(9), T) == ScaleDecision(8, "above max_instances=8")


def test_a_wish_is_passed_through_with_its_reason_and_details() -> None:
    s = Wish(min_instances=1, max_instances=6, freeze_s=30.0)
    s.wish = 4
    assert s.decide(fleet(2), T) == ScaleDecision(4, "wish", {"w": 4.0})


def test_wishes_are_clamped_to_the_bounds() -> None:
    s = Wish(min_instances=2, max_instances=5, freeze_s=0.0)
    s.wish = 9
    assert s.decide(fleet(3), T).target_instances == 5  # type: ignore[union-attr]
    s.wish = 0
    assert s.decide(fleet(3), T + 1).target_instances == 2  # type: ignore[union-attr]
    s.wish = 5
    assert s.decide(fleet(5), T + 2) is None  # already there
    s.wish = None
    assert s.decide(fleet(3), T + 3) is None


def test_bounds_are_restored_before_the_policy_and_through_the_freeze() -> None:
    s = Wish(min_instances=2, max_instances=4, freeze_s=60.0)
    s.wish = 3
    assert s.decide(fleet(2), T).target_instances == 3  # type: ignore[union-attr]  # starts the freeze
    assert s.decide(fleet(1), T + 1) == ScaleDecision(2, "below min_instances=2")
    assert s.decide(fleet(3, 2), T + 2) == ScaleDecision(4, "above max_instances=4")
    assert s.calls == 1
    assert s.decide(fleet(2, 0, draining=5), T + 3) is None  # draining ones are not provisioned; frozen
    assert s.decide(fleet(2), T + 61.9) is None  # frozen since the last bound action at T + 2
    assert s.decide(fleet(2), T + 62.0).target_instances == 3  # type: ignore[union-attr]


def test_the_freeze_ends_exactly_freeze_s_after_an_action() -> None:
    s = Wish(freeze_s=60.0)
    s.wish = 3
    assert s.decide(fleet(2), T) is not None
    s.wish = 5
    assert s.decide(fleet(3), T + 59.99) is None
    assert s.calls == 1  # the policy is not even asked while frozen
    assert s.decide(fleet(3), T + 60.0).target_instances == 5  # type: ignore[union-attr]


def test_no_change_starts_no_freeze() -> None:
    s = Wish(freeze_s=60.0)
    s.wish = 2
    assert s.decide(fleet(2), T) is None
    s.wish = 3
    assert s.decide(fleet(2), T + 1).target_instances == 3  # type: ignore[union-attr]


def test_urgent_passes_the_freeze() -> None:
    s = Wish(freeze_s=60.0)
    s.wish = 3
    s.decide(fleet(2), T)
    s.wish = 5
    s.urgent = True
    assert s.decide(fleet(3), T + 1).target_instances == 5  # type: ignore[union-attr]
    s.urgent = False
    s.wish = 6
    assert s.decide(fleet(5), T + 2) is None  # the urgent action restarted the freeze


def test_zero_freeze_never_blocks() -> None:
    s = Wish(freeze_s=0.0)
    s.wish = 3
    assert s.decide(fleet(2), T) is not None
    s.wish = 4
    assert s.decide(fleet(3), T) is not None


@pytest.mark.parametrize("kw", [{"min_instances": -1}, {"min_instances": 3, "max_instances": 2},
                                {"freeze_s": -1.0}, {"interval_s": 0.0}])
def test_bad_parameters(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Wish(**kw)


def test_edge_parameters_are_accepted() -> None:
    s = Wish(min_instances=0, max_instances=0, freeze_s=0.0, interval_s=0.1)
    assert s.decide(fleet(0), T) is None


def test_default_hooks_do_nothing() -> None:
    class Plain(BaseScaler):
        def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
            return ScaleDecision(fleet.provisioned + 1, "more")

    s = Plain(freeze_s=60.0)
    assert (s.needs_future, s.forecast_targets, s.wants_forecasts, s.initial_instances(3)) == (False, (), False, 3)
    assert s.needs_history is False
    base_params = set(inspect.signature(BaseScaler.__init__).parameters)
    assert set(Plain.TRACE_TIME_PARAMS) == {p for p in base_params if p.endswith("_s")} == {"freeze_s", "interval_s"}
    s.attach_oracle([(0.0, 1, 1)])
    s.observe_arrival(RequestInfo("r", "svc", T, 1), T)
    s.observe_completion(CompletionInfo("r", "r0", T, T + 1, 1, 1, 0.1), T + 1)
    assert s._urgent(fleet(1), T) is False
    assert s.decide(fleet(1), T).target_instances == 2  # type: ignore[union-attr]
    assert s.decide(fleet(2), T + 1) is None  # frozen: the default is never urgent
