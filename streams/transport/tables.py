"""Faust tables: agent state that must survive a crash or a rebalance (changelog-backed).

``density_windows``: per service, the open token-density windows and the offset of the last completion counted
(``DensityAgentState.snapshot``). Keys are the raw service name and ``use_partitioner`` is on, so a service's
changelog record lands on the partition number its completions use (every producer hashes keys with murmur2),
and Faust's assignor gives both to the same worker. The table name carries the topic prefix: pipelines that
share a broker under different prefixes (or a new run of the demo) must not restore each other's windows.
"""

from __future__ import annotations

from streams.app import app
from streams.settings import load_settings

__all__ = ["density_windows"]

density_windows = app.Table(
    f"{load_settings().kafka.topic_prefix}density-windows",
    default=None,
    key_type=bytes,  # bytes keys are serialized raw: the same bytes as the completions' key
    partitions=load_settings().kafka.partitions,
    use_partitioner=True,
)
