"""Scalers. Importing this package registers every scaler with ``streams.policies.policy_registry``."""

from streams.policies.scalers import (  # noqa: F401  (imported for registration)
    apa_scaler,
    fixed_scaler,
    hpa_scaler,
    interval_planner_scaler,
    kpa_scaler,
    oracle_schedule_scaler,
    preserve_scaler,
    queue_depth_scaler,
    reactive_scaler,
    tod_schedule_scaler,
)
