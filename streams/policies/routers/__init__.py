"""Routers. Importing this package registers every router with ``streams.policies.policy_registry``."""

from streams.policies.routers import (  # noqa: F401  (imported for registration)
    least_kv_router,
    least_requests_router,
    power_of_two_router,
    preserve_router,
    random_router,
    round_robin_router,
    token_load_router,
)
