"""One vLLM-style serving instance in virtual time, steppable by the offline simulator and the live managers.

Scheduling follows vLLM's continuous batching:

* FCFS waiting queue; a request is admitted when a sequence slot (``max_num_seqs``), token budget
  (``max_batched_tokens``) and KV blocks for its footprint are free (1% of the blocks are kept as a watermark
  while other sequences run, as vLLM does, so that running sequences can grow without immediate preemption).
* Without chunked prefill a step is either a prefill batch (running sequences pause) or a decode step of all
  running sequences (vLLM V0). With chunked prefill every step decodes all running sequences and fills the
  rest of the token budget with prompt chunks, oldest first (vLLM V1 / Sarathi).
* Preemption by recompute: when the next step needs more KV blocks than are free, the newest running request
  (latest arrival) loses its KV and goes back to the front of the waiting queue; when re-admitted it prefills
  its prompt plus the tokens generated so far. Its time to first token is not reset.
* Runs of pure-decode steps are fast-forwarded in closed form up to the next completion, KV-block exhaustion
  or a new request (see ``fleet/decode_math.py``), so the cost is O(log n) per event, not per token.
* Inter-token latency over tokens (``fleet/itl.py``) without per-token work: every decoding sequence gets its
  token at the same step boundaries, so the instance keeps the end ``L`` of its last decode step and the few
  sequences that joined the decode set since ``L`` (with their join times). A work item of ``k`` decode steps
  of ``n`` sequences adds: for its first step, ``first step end - L`` for the sequences decoding at ``L`` and
  ``first step end - join time`` for each joiner; for the other ``k - 1`` steps, the run's mean step (weight
  ``n (k - 1)``; steps within a run differ only by the attention growth of a few tokens). A prefill-only step
  (no chunking) thus shows up as a long gap at the next decode step, and a re-prefilled sequence's first new
  token counts its gap from its last token before preemption.

Blocks are allocated when a step is scheduled (as vLLM does), so :meth:`view` reports them from then; first
tokens and completions are reported at the end of the step that produced them.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from fleet.decode_math import DecodeRun, blocks_needed, max_decode_steps, phase_of
from fleet.engine_checks import KVAccountingError, check_invariants
from fleet.itl import FLUSH_AT, ItlHistogram
from fleet.sim_types import EngineEvent, EngineEventKind, SimRequest
from streams.policies.engine_profiles import EngineConfig
from streams.policies.fleet_view import InstanceState, InstanceView

__all__ = ["EngineInstance", "KVAccountingError", "check_invariants"]

_INF = math.inf
_FIRST = EngineEventKind.FIRST_TOKEN
_DONE = EngineEventKind.FINISHED


class EngineInstance:
    """One instance. Drive it with :meth:`add_request` and :meth:`advance`, always with non-decreasing times.

    :param config: engine configuration (KV capacity, limits, cost model).
    :param instance_id: name used in views and results.
    :param check_invariants: recount the KV accounting after every step (tests; slow).
    :param itl: histogram the inter-token gaps go to (shared by a run's instances); a new one if None.
    """

    def __init__(self, config: EngineConfig, instance_id: str, check_invariants: bool = False,
                 itl: ItlHistogram | None = None) -> None:
        self.cfg = config
        self.cost = config.cost_model
        self.bs = config.block_size
        self.total_blocks = config.kv_capacity_blocks
        self.watermark = max(1, self.total_blocks // 100)
        self.check = check_invariants
        self.used_blocks = 0
        self.waiting: deque[SimRequest] = deque()
        self.waiting_tokens = 0
        self.prefilling: list[SimRequest] = []  # admitted, prompt not fully prefilled (chunked, or in the step)
        self.decoding: dict[int, SimRequest] = {}
        self.phase = [0] * self.bs
        self.base_sum = 0  # sum of kv_base over decoding sequences
        self.steps = 0  # decode steps done so far
        self.finish_heap: list[tuple[int, int, int, SimRequest]] = []
        # The step or decode run in flight: started at t0, ends at busy_until; applied at its end.
        self.t0 = 0.0
        self.busy_until = _INF
        self.run_k = 0  # decode steps of the in-flight work
        self.run_pure = False  # True: a run of pure-decode steps (may be cut short by a new request)
        self.run: DecodeRun | None = None  # the pure-decode run in flight
        self.pending: list[tuple[SimRequest, int]] = []  # prefill chunks of the in-flight step
        self.decode_reserve = 0  # blocks the in-flight mixed step's decodes will need (chunked prefill)
        self.itl = itl if itl is not None else ItlHistogram()
        self._gaps = self.itl.gaps
        self._gap = self.itl.gaps.append  # the hot path appends (gap, weight) pairs; the histogram bins them
        self._weight = self.itl.weights_in.append
        self.last_decode_s = 0.0  # L: end of the latest step that gave the decode set its tokens
        self.joiners: list[tuple[SimRequest, int]] = []  # (request, epoch) that joined decoding after L
        self.view = InstanceView(instance_id, InstanceState.STARTING, config.kv_capacity_tokens)

    # ---- public API ------------------------------------------------------------------------------------
    @property
    def instance_id(self) -> str:
        return self.view.instance_id

    def add_request(self, req: SimRequest, now: float) -> None:
        """Queue ``req`` at ``now`` (after :meth:`advance` to ``now``). It joins at the next step boundary."""
        self.waiting.append(req)
        self.waiting_tokens += req.prompt + req.generated
        if self.busy_until == _INF:
            self._plan(now)
        elif self.run_pure:
            self._cut_run(now)

    def next_event_time(self) -> float:
        """End of the step or decode run in flight (``inf`` when idle)."""
        return self.busy_until

    def advance(self, until: float) -> list[EngineEvent]:
        """Run every step that ends at or before ``until``; return first-token and finished events in order."""
        events: list[EngineEvent] = []
        while self.busy_until <= until:
            t = self.busy_until
            self._finish_work(t, events)
            if self.check:
                check_invariants(self)
            self._plan(t)
        return events

    def idle(self) -> bool:
        return not (self.waiting or self.prefilling or self.decoding)

    @property
    def running(self) -> int:
        return len(self.decoding) + len(self.prefilling)

    def kv_used_tokens(self, now: float) -> int:
        """Tokens of KV held at ``now``, counting the decode steps of a run in flight that finished by ``now``."""
        return self.refresh_view(now).kv_used_tokens

    def refresh_view(self, now: float) -> InstanceView:
        """Fill :attr:`view` (the policies' read-only snapshot) for ``now`` and return it.

        KV in use counts the decode steps of the run in flight finished by ``now`` (a policy polled mid-run
        sees the cache grow step by step, as vLLM's metrics would show it)."""
        v = self.view
        n = len(self.decoding)
        tokens = self.base_sum + n * self.steps
        if self.prefilling:
            tokens += self._prefill_tokens()
        if self.run_pure and now > self.t0:
            tokens += n * self.run.steps_by(now - self.t0)  # type: ignore[union-attr]
        v.kv_used_tokens = tokens
        v.running = n + len(self.prefilling)
        v.waiting = len(self.waiting)
        v.waiting_prompt_tokens = self.waiting_tokens
        return v

    # ---- step planning -----------------------------------------------------------------------------------
    def _plan(self, t: float) -> None:
        """Schedule the next step (or decode run) starting at ``t``; idle if there is nothing to do."""
        self.t0 = t
        self.pending = []
        self.run_k = 0
        self.run_pure = False
        if self.cfg.chunked_prefill:
            self._ensure_decode_blocks()
            # The decodes of this step grow into new blocks at its end: admissions must leave them free.
            self.decode_reserve = self.phase[(self.steps + 1) % self.bs] if self.decoding else 0
            dt = self._schedule_chunks(budget=self.cfg.max_batched_tokens - len(self.decoding))
        else:
            dt = self._schedule_prefill_batch()
            if dt == 0.0:
                self._ensure_decode_blocks()
        self.decode_reserve = 0
        if dt > 0.0:
            self.run_k = 1 if (self.cfg.chunked_prefill and self.decoding) else 0
            self.busy_until = t + dt
            return
        n = len(self.decoding)
        if n == 0:
            self.busy_until = _INF
            return
        limit = self._next_finish_step() - self.steps
        k = max_decode_steps(self.phase, n, self.steps, self.total_blocks - self.used_blocks, limit)
        assert k >= 1, "decode blocks were ensured"
        self.run_k = k
        self.run_pure = True
        self.run = run = DecodeRun(self.cost, n, self.base_sum + n * self.steps, k)
        self.busy_until = t + run.time(k)

    def _schedule_prefill_batch(self) -> float:
        """vLLM V0 without chunking: admit whole prompts FCFS into one prefill-only step. Returns its time."""
        budget = self.cfg.max_batched_tokens
        tokens = 0
        pairs = 0.0
        while self.waiting:
            req = self.waiting[0]
            need = req.prompt + req.generated
            if need > budget or not self._admit(req):
                break
            budget -= need
            tokens += need
            pairs += float(need) * need
            self.pending.append((req, need))
        if not tokens:
            return 0.0
        return self.cost.step_time(tokens, 0, 0, pairs)

    def _schedule_chunks(self, budget: int) -> float:
        """Chunked prefill: fill the token budget left by the decodes with prompt chunks, oldest first."""
        tokens = 0
        pairs = 0.0
        for req in self.prefilling:
            if budget <= 0:
                break
            chunk = min(req.prefill_left, budget)
            done = req.prompt + req.generated - req.prefill_left
            budget -= chunk
            tokens += chunk
            pairs += float(chunk) * (done + chunk)
            self.pending.append((req, chunk))
        while budget > 0 and self.waiting and self._admit(self.waiting[0]):
            req = self.prefilling[-1]
            chunk = min(req.prefill_left, budget)
            budget -= chunk
            tokens += chunk
            pairs += float(chunk) * chunk
            self.pending.append((req, chunk))
        if not tokens:
            return 0.0
        n = len(self.decoding)
        return self.cost.step_time(tokens, n, self.base_sum + n * self.steps, pairs)

    def _admit(self, req: SimRequest) -> bool:
        """Move the head of the waiting queue to ``prefilling`` if a slot and its KV blocks are free."""
        running = len(self.decoding) + len(self.prefilling)
        if running >= self.cfg.max_num_seqs:
            return False
        need = -(-(req.prompt + req.generated + 1) // self.bs)
        reserve = (self.watermark if running else 0) + self.decode_reserve
        if self.total_blocks - self.used_blocks - need < reserve:
            return False
        self.waiting.popleft()
        self.waiting_tokens -= req.prompt + req.generated
        req.blocks = need
        req.prefill_left = req.prompt + req.generated
        self.used_blocks += need
        self.prefilling.append(req)
        return True

    def _ensure_decode_blocks(self) -> None:
        """Preempt newest-first until the next decode step's new blocks fit."""
        while self.decoding and self.phase[(self.steps + 1) % self.bs] > self.total_blocks - self.used_blocks:
            self._preempt_newest()

    def _preempt_newest(self) -> None:
        victim = max(list(self.decoding.values()) + self.prefilling, key=lambda r: (r.arrival, r.idx))
        if victim.idx in self.decoding:
            # its latest token: at L, or at its join if it joined after L (then last_token_s > L)
            if victim.last_token_s < self.last_decode_s:
                victim.last_token_s = self.last_decode_s
            self._leave_decoding(victim)
        else:
            self.prefilling.remove(victim)
            self.used_blocks -= victim.blocks
        victim.blocks = 0
        victim.prefill_left = 0
        victim.preemptions += 1
        self.waiting.appendleft(victim)
        self.waiting_tokens += victim.prompt + victim.generated

    def _cut_run(self, now: float) -> None:
        """A request arrived during a decode run: stop the run at the step boundary at or after ``now``."""
        run = self.run
        assert run is not None
        dt = now - self.t0
        j = run.steps_by(dt)
        if run.time(j) < dt:
            j += 1  # the step in flight at ``now`` completes first
        if j >= self.run_k:
            return
        if j == 0:
            self._plan(now)
            return
        self.run_k = run.k = j
        self.busy_until = self.t0 + run.time(j)

    # ---- applying finished work --------------------------------------------------------------------------
    def _finish_work(self, t: float, events: list[EngineEvent]) -> None:
        k = self.run_k
        if k:
            self._record_decode_gaps(t, k)
            self.used_blocks += blocks_needed(self.phase, self.steps, k)
            self.steps += k
            heap = self.finish_heap
            while heap and (heap[0][2] != heap[0][3].epoch or heap[0][0] <= self.steps):
                _, _, epoch, req = heapq.heappop(heap)
                if epoch == req.epoch:
                    self._leave_decoding(req)
                    self._complete(req, t, events)
        for req, chunk in self.pending:
            req.prefill_left -= chunk
            if req.prefill_left:
                continue
            self.prefilling.remove(req)
            req.generated += 1
            if req.first_token_s < 0:
                req.first_token_s = t
                events.append(EngineEvent(t, _FIRST, req))
            else:  # re-prefilled after a preemption: its new token's gap runs from its last one before it
                self.itl.add(t - req.last_token_s, 1.0)
            if req.generated >= req.output:
                self.used_blocks -= req.blocks
                req.blocks = 0
                self._complete(req, t, events)
            else:
                self._join_decoding(req)
                req.last_token_s = t
                if t > self.last_decode_s:  # joined at L (a mixed step) it is like any sequence decoding at L
                    self.joiners.append((req, req.epoch))
        self.pending = []
        self.run_k = 0
        self.run_pure = False

    def _record_decode_gaps(self, t: float, k: int) -> None:
        """Inter-token gaps of the ``k`` decode steps of the work ending at ``t`` (before completions leave)."""
        n = len(self.decoding)
        if k == 1:
            t1 = t
        else:  # a pure run: its first step ends at t0 + run.time(1) = t0 + a + c ctx
            run = self.run
            assert run is not None
            t1 = self.t0 + (run.a + run.c * run.ctx)
        gap, weight = self._gap, self._weight
        at_l = n
        if self.joiners:
            for req, epoch in self.joiners:
                if req.epoch == epoch:  # still decoding since it joined
                    gap(t1 - req.last_token_s)
                    weight(1.0)
                    at_l -= 1
            self.joiners = []
        if at_l:
            gap(t1 - self.last_decode_s)
            weight(at_l)
        if k > 1:
            gap((t - t1) / (k - 1))
            weight(n * (k - 1))
        self.last_decode_s = t
        if len(self._gaps) >= FLUSH_AT:
            self.itl.flush()

    def _complete(self, req: SimRequest, t: float, events: list[EngineEvent]) -> None:
        req.finish_s = t
        events.append(EngineEvent(t, _DONE, req))

    def _join_decoding(self, req: SimRequest) -> None:
        footprint = req.prompt + req.generated
        req.kv_base = footprint - self.steps
        req.finish_step = self.steps + req.output - req.generated
        self.decoding[req.idx] = req
        self.phase[phase_of(req.kv_base, self.bs)] += 1
        self.base_sum += req.kv_base
        heapq.heappush(self.finish_heap, (req.finish_step, req.idx, req.epoch, req))

    def _leave_decoding(self, req: SimRequest) -> None:
        """Remove from the decode set, release its blocks and materialise ``generated``."""
        del self.decoding[req.idx]
        footprint = req.kv_base + self.steps
        self.used_blocks -= -(-footprint // self.bs)
        self.phase[phase_of(req.kv_base, self.bs)] -= 1
        self.base_sum -= req.kv_base
        req.generated = footprint - req.prompt
        req.epoch += 1

    def _next_finish_step(self) -> int:
        heap = self.finish_heap
        while heap[0][2] != heap[0][3].epoch:
            heapq.heappop(heap)
        return heap[0][0]

    def _prefill_tokens(self) -> int:
        """KV tokens reserved by admitted sequences whose prefill is not done (their footprint after it)."""
        return sum(r.prompt + r.generated + 1 for r in self.prefilling) if self.prefilling else 0
