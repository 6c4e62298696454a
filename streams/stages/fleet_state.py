"""A service's fleet as the control agents see it, rebuilt from ``instance-events`` (pure, no I/O).

Why a separate piece: the `route` and `scale` agents both need a :class:`FleetView` of the service they own.
The instance managers publish every state change (start_requested / ready / drain / stopped) and a periodic
status; between two statuses the route agent applies its own dispatches and the completions it observes, so the
view stays close to the instances' real load without a round trip.
"""

from __future__ import annotations

from streams.policies.fleet_rules import scale_down_victims
from streams.policies.fleet_view import FleetView, InstanceView
from streams.records import Completion, InstanceEvent, InstanceEventKind, InstanceState

__all__ = ["FleetState"]

_PENDING = "pending:"  # id prefix of placeholders for instances requested but not yet reported


class FleetState:
    """Instances of one service keyed by id; stopped instances are dropped.

    :param service: the service (model) this fleet serves.
    :param min_instances: copied into the :class:`FleetView` the policies see.
    :param max_instances: idem.
    :param cold_start_s: idem (scalers take the start-up delay into account).
    """

    def __init__(self, service: str, min_instances: int = 1, max_instances: int = 8, cold_start_s: float = 0.0) -> None:
        self.service = service
        self.instances: dict[str, InstanceView] = {}
        self.view = FleetView(service, [], min_instances, max_instances, cold_start_s)
        self._last_event_ts: dict[str, float] = {}
        self._status_ts: dict[str, float] = {}  # event time of the load figures each instance last reported

    def apply(self, ev: InstanceEvent) -> bool:
        """Apply one instance event; True when an instance became READY (pending requests may now be routed).

        Events older than the last one applied for the same instance are ignored (Kafka keeps the order
        within a partition, but a redelivery after a rebalance may replay older statuses).
        """
        if ev.ts < self._last_event_ts.get(ev.instance_id, float("-inf")):
            return False
        self._last_event_ts[ev.instance_id] = ev.ts
        inst = self.instances.get(ev.instance_id)
        if ev.state is InstanceState.STOPPED or ev.kind is InstanceEventKind.STOPPED:
            if inst is not None:
                del self.instances[ev.instance_id]
                self._sync()
            return False
        became_ready = ev.state is InstanceState.READY and (inst is None or inst.state is not InstanceState.READY)
        if inst is None:
            placeholder = next((k for k in self.instances if k.startswith(_PENDING)), None)
            if placeholder is not None:
                del self.instances[placeholder]
            inst = InstanceView(ev.instance_id, ev.state, ev.kv_capacity_tokens, start_requested_at=ev.ts)
            self.instances[ev.instance_id] = inst
            self._sync()
        inst.state = ev.state
        if ev.kv_capacity_tokens:
            inst.kv_capacity_tokens = ev.kv_capacity_tokens
        if became_ready:
            inst.ready_at = ev.ts
        if ev.kind in (InstanceEventKind.STATUS, InstanceEventKind.READY, InstanceEventKind.DRAIN):
            inst.running, inst.waiting, inst.kv_used_tokens = ev.running, ev.waiting, ev.kv_used_tokens
            self._status_ts[ev.instance_id] = ev.ts
            if ev.waiting == 0:
                inst.waiting_prompt_tokens = 0
        return became_ready

    def expect(self, target: int, now: float) -> None:
        """The scale agent just asked for ``target`` provisioned instances: show that in the view at once, as the
        offline simulator does, instead of deciding again on a stale view until the managers' events arrive.
        Scale-up adds STARTING placeholders (each real start_requested event replaces one); scale-down marks
        STARTING, then least-loaded READY instances DRAINING (the managers' events correct the choice)."""
        provisioned = [i for i in self.instances.values() if i.state in (InstanceState.READY, InstanceState.STARTING)]
        for k in range(target - len(provisioned)):
            pid = f"{_PENDING}{now:.3f}-{k}"
            self.instances[pid] = InstanceView(pid, InstanceState.STARTING, 0, start_requested_at=now)
        surplus = len(provisioned) - target
        if surplus > 0:
            for inst in scale_down_victims(provisioned, surplus, lambda i: i.state is InstanceState.STARTING,
                                           lambda i: i.running + i.waiting):
                if inst.instance_id.startswith(_PENDING):
                    del self.instances[inst.instance_id]
                else:
                    inst.state = InstanceState.DRAINING
        self._sync()

    def note_dispatch(self, instance_id: str, prompt_tokens: int) -> None:
        """A request was routed to ``instance_id``: it waits there until the next status says otherwise."""
        inst = self.instances.get(instance_id)
        if inst is not None:
            inst.waiting += 1
            inst.waiting_prompt_tokens += prompt_tokens

    def note_completion(self, c: Completion) -> None:
        """A request finished: its sequence and KV blocks are gone from the instance (unless the instance's last
        status, sent after the completion, already counted that)."""
        inst = self.instances.get(c.instance_id)
        if inst is None or c.ts <= self._status_ts.get(c.instance_id, float("-inf")):
            return
        if inst.running > 0:
            inst.running -= 1
        elif inst.waiting > 0:
            inst.waiting -= 1
        inst.kv_used_tokens = max(0, inst.kv_used_tokens - c.prompt_tokens - c.output_tokens)

    def _sync(self) -> None:
        self.view.instances = list(self.instances.values())
