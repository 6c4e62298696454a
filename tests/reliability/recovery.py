"""What "nothing lost, nothing doubled" means after a fault, checked on the topics of a finished live run.

The processing guarantee is at-least-once delivery with idempotent consumers: after a crash Kafka redelivers
what was not committed, so a topic may carry a request's RouteDecision twice, but every consumer that acts on
it deduplicates by request id (the route agent per service, the instance managers, the density agent) and the
archive by (partition, offset). So the checks are: every request routed; on the wire a request may have extra
decisions, but the fleet acts on exactly one (the first), so it completes exactly once, on that instance (or,
when that instance had stopped before the route reached it, elsewhere with ``rerouted_from`` naming it);
density windows equal the offline function of the completions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from fleet.live.pipeline_procs import read_topic
from streams.policies.density_windows import density_series
from streams.records import Completion, RouteDecision, TokenDensity
from streams.settings import KafkaSettings

__all__ = ["Recovery", "recovery", "first_routes"]


@dataclass
class Recovery:
    requests: int
    routed: int  # distinct request ids with a RouteDecision
    route_messages: int  # RouteDecisions on the wire (more than `routed` = redelivered duplicates)
    completed: int  # distinct request ids with a Completion
    completion_messages: int
    wrong_instance: int  # completions on another instance than the request's first decision
    density_windows: int
    density_repeats: int  # windows emitted again after a redelivery (equal; the forecaster keeps one)
    density_mismatches: list[tuple[str, float, int, int]]  # (service, window start, live requests, offline)

    @property
    def lost(self) -> int:
        return (self.requests - self.routed) + (self.requests - self.completed)

    @property
    def duplicates_acted_on(self) -> int:
        """Requests served twice: a duplicate that got past every deduplicating consumer."""
        return self.completion_messages - self.completed

    def line(self) -> str:
        return (f"requests={self.requests} lost={self.lost} completions_doubled={self.duplicates_acted_on} "
                f"route_messages={self.route_messages} (redelivered {self.route_messages - self.routed}) "
                f"wrong_instance={self.wrong_instance} density_windows={self.density_windows} "
                f"density_repeats={self.density_repeats} density_mismatches={len(self.density_mismatches)}")


def first_routes(kafka: KafkaSettings) -> tuple[dict[str, RouteDecision], int]:
    """The first decision of each request (topic order within its partition) and the number of messages."""
    first: dict[str, RouteDecision] = {}
    n = 0
    for raw in read_topic(kafka, "routes"):
        r = RouteDecision.model_validate_json(raw)
        n += 1
        first.setdefault(r.request_id, r)
    return first, n


def recovery(kafka: KafkaSettings, request_ids: list[str], window_s: float, grace_s: float) -> Recovery:
    first, n_routes = first_routes(kafka)
    comps = [Completion.model_validate_json(raw) for raw in read_topic(kafka, "completions")]
    by_id = Counter(c.request_id for c in comps)
    # a completion may name another instance only when it says the routed one was gone (``rerouted_from``)
    wrong = sum(1 for c in comps if c.request_id in first and first[c.request_id].instance_id != c.instance_id
                and c.rerouted_from != first[c.request_id].instance_id)
    unique = list({c.request_id: c for c in reversed(comps)}.values())[::-1]
    offline = {(w.service, w.window_start): w for w in density_series(unique, window_s, grace_s).windows}
    live = [TokenDensity.model_validate_json(raw) for raw in read_topic(kafka, "token-density")]
    mismatches = []
    for w in live:
        want = offline.get((w.service, w.window_start))
        if want != w:
            mismatches.append((w.service, w.window_start, w.requests, want.requests if want else -1))
    want_ids = set(request_ids)
    return Recovery(len(want_ids), len(want_ids & set(first)), n_routes, len(want_ids & set(by_id)), len(comps),
                    wrong, len(live), len(live) - len({(w.service, w.window_start) for w in live}), mismatches)
