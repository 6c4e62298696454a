"""The control core's modules under mutation testing, each with the test files that pin it.

The ONE place that names them: when a file moves, change it here (``python -m bench.mutation --list`` checks
that every path exists). Only the listed tests run for a module's mutants, so each entry must name every test
file that is meant to notice a changed decision in that module.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Target", "TARGETS", "target_for"]

P = "tests/streams/policies"


@dataclass(frozen=True)
class Target:
    """A module (path from the repository root) and the test files that pin it."""

    module: str
    tests: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"module": self.module, "tests": list(self.tests)}


TARGETS: tuple[Target, ...] = (
    # routers
    Target("streams/policies/routers/preserve_router.py",
           (f"{P}/routers/test_preserve_router_terms.py", f"{P}/test_preserve_router.py")),
    Target("streams/policies/routers/least_kv_router.py",
           (f"{P}/routers/test_baseline_router_terms.py", f"{P}/test_baseline_routers.py")),
    Target("streams/policies/routers/least_requests_router.py",
           (f"{P}/routers/test_baseline_router_terms.py", f"{P}/test_baseline_routers.py")),
    Target("streams/policies/routers/power_of_two_router.py",
           (f"{P}/routers/test_baseline_router_terms.py", f"{P}/test_baseline_routers.py")),
    Target("streams/policies/routers/random_router.py",
           (f"{P}/routers/test_baseline_router_terms.py", f"{P}/test_baseline_routers.py")),
    Target("streams/policies/routers/round_robin_router.py",
           (f"{P}/routers/test_baseline_router_terms.py", f"{P}/test_baseline_routers.py")),
    Target("streams/policies/routers/token_load_router.py",
           (f"{P}/routers/test_baseline_router_terms.py", f"{P}/test_baseline_routers.py")),
    # the anticipator both the router and the scaler read
    Target("streams/policies/load_anticipator.py",
           (f"{P}/test_load_anticipator_terms.py", f"{P}/test_load_anticipator.py")),
    # scalers (density_forecast.py is being reworked with the forecast path: not listed yet)
    Target("streams/policies/base_scaler.py",
           (f"{P}/test_base_scaler_terms.py", f"{P}/test_baseline_scalers.py")),
    Target("streams/policies/scalers/preserve_scaler.py",
           (f"{P}/scalers/test_preserve_scaler_terms.py", f"{P}/test_preserve_scaler.py",
            f"{P}/test_recent_load.py", f"{P}/scalers/test_trace_time_params_terms.py")),
    Target("streams/policies/scalers/recent_load.py",
           (f"{P}/scalers/test_recent_load_terms.py", f"{P}/test_recent_load.py")),
    Target("streams/policies/scalers/prefill_bursts.py",
           (f"{P}/scalers/test_prefill_bursts_terms.py", f"{P}/test_preserve_scaler.py")),
    Target("streams/policies/scalers/instance_capacity.py",
           (f"{P}/scalers/test_instance_capacity_terms.py", f"{P}/test_preserve_scaler.py")),
    Target("streams/policies/scalers/fixed_scaler.py",
           (f"{P}/scalers/test_baseline_scaler_terms.py", f"{P}/test_baseline_scalers.py")),
    Target("streams/policies/scalers/reactive_scaler.py",
           (f"{P}/scalers/test_baseline_scaler_terms.py", f"{P}/test_baseline_scalers.py")),
    Target("streams/policies/scalers/queue_depth_scaler.py",
           (f"{P}/scalers/test_baseline_scaler_terms.py", f"{P}/test_baseline_scalers.py",
            f"{P}/scalers/test_trace_time_params_terms.py")),
    Target("streams/policies/scalers/hpa_scaler.py",
           (f"{P}/scalers/test_hpa_scaler_terms.py", f"{P}/test_proportional_scalers.py",
            f"{P}/scalers/test_trace_time_params_terms.py")),
    Target("streams/policies/scalers/apa_scaler.py",
           (f"{P}/scalers/test_apa_scaler_terms.py", f"{P}/scalers/test_trace_time_params_terms.py")),
    Target("streams/policies/scalers/kpa_scaler.py",
           (f"{P}/scalers/test_kpa_scaler_terms.py", f"{P}/test_proportional_scalers.py",
            f"{P}/scalers/test_trace_time_params_terms.py")),
    Target("streams/policies/scalers/oracle_schedule_scaler.py",
           (f"{P}/scalers/test_oracle_schedule_terms.py", f"{P}/test_oracle_schedule.py",
            f"{P}/scalers/test_trace_time_params_terms.py")),
    Target("streams/policies/scalers/window_load.py",
           (f"{P}/scalers/test_schedule_scaler_terms.py", f"{P}/scalers/test_oracle_schedule_terms.py",
            f"{P}/test_oracle_schedule.py", f"{P}/test_schedules_and_planner.py")),
    Target("streams/policies/scalers/tod_schedule_scaler.py",
           (f"{P}/scalers/test_schedule_scaler_terms.py", f"{P}/test_schedules_and_planner.py",
            f"{P}/scalers/test_trace_time_params_terms.py")),
    Target("streams/policies/scalers/interval_planner_scaler.py",
           (f"{P}/scalers/test_schedule_scaler_terms.py", f"{P}/test_schedules_and_planner.py",
            f"{P}/scalers/test_trace_time_params_terms.py")),
    # density windows, fleet rules and the fleet view the control agents keep
    Target("streams/policies/density_windows.py",
           (f"{P}/test_density_windows_terms.py", f"{P}/test_density_windows.py")),
    Target("streams/policies/fleet_rules.py", (f"{P}/test_fleet_rules_terms.py",
                                               "tests/streams/stages/test_fleet_state_terms.py")),
    Target("streams/stages/fleet_state.py",
           ("tests/streams/stages/test_fleet_state_terms.py", "tests/streams/stages/test_service_router.py",
            "tests/streams/stages/test_service_scaler.py")),
)


def target_for(module: str) -> Target:
    """The entry of ``module`` (path as listed); KeyError names the known ones."""
    for t in TARGETS:
        if t.module == module:
            return t
    raise KeyError(f"{module!r} is not on the mutation list; known: {[t.module for t in TARGETS]}")
