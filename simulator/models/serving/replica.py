"""One model replica serving requests with continuous batching; one event per iteration.

Lifecycle of a replica (its GPUs are one cluster job): ``DORMANT`` (a spare row) ->
``PENDING`` (submitted, waiting for placement) -> ``LOADING`` (placed, loading the model) ->
``READY`` (routable) -> ``DRAINING`` (scale-in: finishes its requests, takes no new ones) ->
``STOPPED`` (job ended). A replica that loses its GPUs (preempted, node failure) returns to
``PENDING``; its requests go back to the router and start over.

Batching (vLLM-style, with chunked prefill): at the start of each iteration the replica admits
queued requests in arrival order while the batch has fewer than ``max_batch_size`` requests and
the KV cache can hold the request's prompt + output tokens (the whole sequence is reserved at
admission, so no request is ever evicted; the first one that does not fit blocks the ones
behind it). The iteration then carries one decode token for every admitted request past its
prefill, and fills the rest of the ``max_batched_tokens`` budget with prompt tokens of the
requests still prefilling, oldest first (split across iterations with ``chunked_prefill``;
without it a prompt runs whole, alone if it exceeds the budget). The iteration that processes
the last prompt token produces the first output token; every later iteration one more.

Speed: while the batch only decodes and nothing can be admitted, its iterations differ only in
their KV reads, so one event covers them all up to the first request that finishes (their
times come from :meth:`StepTime.decode_run`). An arrival that could be admitted cuts such a run
at the end of the iteration in progress, exactly where a per-iteration simulation would admit
it. Iteration boundaries and arrivals at the same instant: arrivals come first (the new request
joins the iteration that starts then).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from simulator.models.serving.prefix_cache import PrefixCache

if TYPE_CHECKING:
    from simulator.models.serving.service import ServiceRun

__all__ = [
    "Replica",
    "CachingReplica",
    "PreemptingReplica",
    "DORMANT",
    "PENDING",
    "LOADING",
    "READY",
    "DRAINING",
    "STOPPED",
    "STATE_NAMES",
    "ARRIVAL",
    "ITERATION",
]

DORMANT, PENDING, LOADING, READY, DRAINING, STOPPED = range(6)
STATE_NAMES = ("dormant", "pending", "loading", "ready", "draining", "stopped")
ARRIVAL = 0
"""SimPy priority of request arrivals: before iteration boundaries at the same instant."""
ITERATION = 1
"""SimPy priority of iteration boundaries."""


class Replica:
    """Continuous-batching state of one replica of a service run.

    Args:
        run: the service run it belongs to (request records, step model, limits).
        slot: replica number within the service (0-based).
        job: index of its cluster job in the simulation's job table.
    """

    def __init__(self, run: ServiceRun, slot: int, job: int) -> None:
        self.run, self.slot, self.job = run, slot, job
        self.pool = run
        """Its pool: ``routable``, ``pending``, ``route`` (the run itself when colocated)."""
        svc = run.service
        self.env = run.sim.env
        self.step = run.step_time
        self.max_batch = svc.max_batch_size
        self.max_tokens = svc.max_batched_tokens
        self.kv_capacity = run.kv_capacity
        self.chunked = svc.chunked_prefill
        self.prompt = run.prompt
        self.output = run.output
        self.footprint = run.footprint
        self.state = DORMANT
        self.run_start = np.nan
        self.epoch = -1
        self.warm = False
        """Skip the load delay at the next placement (initial replicas with ``warm_start``)."""
        self.served = 0
        self.iterations = 0
        self._reset()

    def _reset(self) -> None:
        self.load = 0
        """:attr:`outstanding`, kept as a count (what routers read: no call per replica)."""
        self.waiting: deque[int] = deque()
        self.ids: list[int] = []  # batch in admission order
        self.pre: list[int] = []  # prompt tokens still to prefill
        self.out: list[int] = []  # output tokens still to generate
        self.ctx: list[int] = []  # tokens in the KV cache
        self.prefilling = 0
        self.kv_used = 0
        self.work_tokens = 0
        self.busy = False
        self.version = 0
        self.seg_start = 0.0
        self.seg_cum: np.ndarray | None = None
        self.seg_steps = 0
        self.plan: list[tuple[int, int]] | None = None

    @property
    def outstanding(self) -> int:
        """Requests queued here or in the batch."""
        return len(self.waiting) + len(self.ids)

    @property
    def admitted_requests(self) -> int:
        """Requests here that were admitted to a batch (they requeue if the replica is lost)."""
        return len(self.ids)

    @property
    def label(self) -> str:
        """Name in the event log."""
        return f"replica-{self.slot}"

    # ------------------------------------------------------------------ requests in
    def enqueue(self, r: int) -> None:
        """Take request ``r``; it is admitted at the next iteration start that has room."""
        self.waiting.append(r)
        self.load += 1
        self.work_tokens += int(self.prompt[r] + self.output[r])
        if not self.busy:
            self._schedule(0.0)
        elif self.seg_cum is not None and len(self.waiting) == 1 and self._fits(r):
            self._cut()

    def _fits(self, r: int) -> bool:
        need = self.footprint[r]
        return len(self.ids) < self.max_batch and self.kv_used + need <= self.kv_capacity

    def _cut(self) -> None:
        """End the decode run in progress at the end of its current iteration."""
        cum = self.seg_cum
        elapsed = self.env.now - self.seg_start
        done = int(np.searchsorted(cum, elapsed, side="right"))
        m = done if done and cum[done - 1] == elapsed else done + 1
        if m < self.seg_steps:
            self.seg_steps = m
            self._schedule(float(cum[m - 1]) - elapsed)

    def take_all(self) -> list[int]:
        """Remove and return every request of this replica (batch first, then queue)."""
        reqs = self.ids + list(self.waiting)
        self.version += 1  # the iteration in flight no longer counts
        self._reset()
        return reqs

    # ------------------------------------------------------------------ iterations
    def _schedule(self, delay: float) -> None:
        self.version += 1
        self.busy = True
        self.run._call(delay, self._on_end, ITERATION, self.version)

    def _on_end(self, version: int) -> None:
        if version != self.version:
            return  # superseded (cut or reset)
        run = self.run
        if not run.alive(self):
            run.lost(self)
            return
        now = self.env.now
        if self.seg_cum is not None:
            self._advance_decode(self.seg_steps, now)
        elif self.plan is not None:
            self._apply_mixed(now)
        self._compose(now)

    def _compose(self, now: float) -> None:
        """Start the next iteration at ``now`` (or go idle)."""
        self._admit(now)
        self.seg_start = now
        self.seg_cum = self.plan = None
        n = len(self.ids)
        if n == 0:
            self.busy = False
            self.run.idle(self)
            return
        if self.prefilling == 0:
            k = min(self.out)
            cum = self.step.decode_run(n, sum(self.ctx), k)
            self.seg_cum, self.seg_steps = cum, k
            self._schedule(float(cum[-1]))
            return
        plan, prefill, kv = self._plan(n)
        self.plan = plan
        self._schedule(self.step.step(prefill, n - self.prefilling, kv))

    def _admit(self, now: float) -> None:
        waiting, run = self.waiting, self.run
        while waiting and self._fits(waiting[0]):
            r = waiting.popleft()
            p = int(self.prompt[r])
            self.ids.append(r)
            self.pre.append(p)
            self.out.append(int(self.output[r]))
            self.ctx.append(0)
            self.prefilling += 1
            self.kv_used += int(self.footprint[r])
            run.admitted(r, now, self)

    def _plan(self, n: int) -> tuple[list[tuple[int, int]], int, int]:
        """Prefill chunks ``(position, tokens)`` of the next mixed iteration, tokens, KV read."""
        budget = self.max_tokens - (n - self.prefilling)
        plan: list[tuple[int, int]] = []
        prefill = 0
        kv = 0
        pre, ctx = self.pre, self.ctx
        for i in range(n):
            left = pre[i]
            if left == 0:
                kv += ctx[i]
                continue
            if budget <= 0:
                continue
            if self.chunked:
                c = left if left < budget else budget
            elif left <= budget or prefill == 0:
                c = left
            else:
                budget = 0
                continue
            plan.append((i, c))
            prefill += c
            budget -= c
            kv += ctx[i]
        return plan, prefill, kv

    def _advance_decode(self, m: int, now: float) -> None:
        n = len(self.ids)
        self.iterations += m
        self.out = [o - m for o in self.out]
        self.ctx = [c + m for c in self.ctx]
        self.work_tokens -= m * n
        if 0 in self.out:
            self._finish_done(now)

    def _apply_mixed(self, now: float) -> None:
        self.iterations += 1
        pre, out, ctx, run = self.pre, self.out, self.ctx, self.run
        decoded = 0
        for i in range(len(self.ids)):
            if pre[i] == 0:
                out[i] -= 1
                ctx[i] += 1
                decoded += 1
        for i, c in self.plan:
            pre[i] -= c
            ctx[i] += c
            decoded += c
            if pre[i] == 0:
                self.prefilling -= 1
                out[i] -= 1
                ctx[i] += 1
                decoded += 1
                run.first_token(self.ids[i], now)
        self.work_tokens -= decoded
        if 0 in out:
            self._finish_done(now)

    def _finish_done(self, now: float) -> None:
        keep = [i for i, o in enumerate(self.out) if o > 0]
        run = self.run
        for i, o in enumerate(self.out):
            if o == 0:
                r = self.ids[i]
                self.kv_used -= int(self.footprint[r])
                self.served += 1
                run.finished(r, now, self)
        self.load -= len(self.ids) - len(keep)
        self.ids = [self.ids[i] for i in keep]
        self.pre = [self.pre[i] for i in keep]
        self.out = [self.out[i] for i in keep]
        self.ctx = [self.ctx[i] for i in keep]


class CachingReplica(Replica):
    """A replica with prefix caching (:class:`~simulator.models.serving.prefix_cache.PrefixCache`).

    KV memory holds the cached blocks (``block_tokens`` tokens each, pinned by running
    requests or evictable) and, per running request, ``footprint`` tokens outside its blocks
    (its output tokens, and prompt tokens beyond its last block). A request fits when the
    batch has room and its footprint plus the blocks it adds or pins fit in the KV capacity
    left after the other running requests and the pinned blocks (evictable blocks give way,
    least recently released first). Its prefill skips the leading cached blocks, at most
    ``prompt - 1`` tokens: the last prompt token is always computed (it yields the first output
    token's logits; vLLM does the same on a full hit). A lost replica loses its cache.
    """

    def __init__(self, run: ServiceRun, slot: int, job: int) -> None:
        self.block_tokens = run.block_tokens
        self.blocks = run.blocks
        self.cache: PrefixCache | None = None
        self.evicted_before = 0
        super().__init__(run, slot, job)

    def _reset(self) -> None:
        super()._reset()
        if self.cache is not None:
            self.evicted_before += self.cache.evicted
        self.cache = PrefixCache(self.block_tokens)

    @property
    def evicted(self) -> int:
        """Blocks evicted on this replica (over all its placements)."""
        return self.evicted_before + self.cache.evicted

    def cached_prefix(self, r: int) -> int:
        """Leading blocks of request ``r`` this replica has cached now."""
        return self.cache.hits(self.blocks(r))

    def _room(self, extra: int = 0) -> int:
        """Blocks the cache may hold next to the running requests' footprints (+ ``extra``)."""
        return (self.kv_capacity - self.kv_used - extra) // self.block_tokens

    def _fits(self, r: int) -> bool:
        if len(self.ids) >= self.max_batch:
            return False
        own = int(self.footprint[r])
        cache = self.cache
        return cache.cost(self.blocks(r)) <= cache.free(self._room(own))

    def _admit(self, now: float) -> None:
        waiting, run, cache, b = self.waiting, self.run, self.cache, self.block_tokens
        while waiting and self._fits(waiting[0]):
            r = waiting.popleft()
            own = int(self.footprint[r])
            blocks = self.blocks(r)
            hit = cache.acquire(blocks, self._room(own))
            p = int(self.prompt[r])
            saved = min(hit * b, p - 1)
            self.ids.append(r)
            self.pre.append(p - saved)
            self.out.append(int(self.output[r]))
            self.ctx.append(saved)
            self.prefilling += 1
            self.kv_used += own
            self.work_tokens -= saved
            run.cache_hit(r, hit, saved)
            run.admitted(r, now, self)

    def _finish_done(self, now: float) -> None:
        cache = self.cache
        for i, o in enumerate(self.out):
            if o == 0:
                cache.release(self.blocks(self.ids[i]))
        super()._finish_done(now)


class PreemptingReplica(Replica):
    """A replica that reserves KV per step and preempts the newest request when it runs out.

    vLLM's default (recompute preemption): a request is admitted when the batch has room and
    the KV cache holds its prompt (plus the tokens it generated before an earlier preemption)
    next to the running requests and the token every decoding request adds in the coming
    iteration; each decode step then grows its KV by one token. When the running requests'
    next step does not fit, the newest running request (last admitted) is preempted: its KV is
    freed, it goes back to the front of the queue, and no request is admitted in that
    iteration. Readmitted, it prefills its prompt and the tokens it had generated again
    (recompute) and goes on from there; a first token it already produced keeps its TTFT. A
    decode-only run stops where the KV cache would overflow. A request whose prompt + output
    exceeds the whole cache is rejected on arrival, so a request alone always finishes.
    """

    def __init__(self, run: ServiceRun, slot: int, job: int) -> None:
        self.generated = run.generated
        super().__init__(run, slot, job)

    def _reset(self) -> None:
        super()._reset()
        self.held: list[int] = []  # KV tokens held, per request in the batch

    def take_all(self) -> list[int]:
        """As :meth:`Replica.take_all`; the requests start over (generated tokens forgotten)."""
        reqs = super().take_all()
        self.generated[reqs] = 0
        return reqs

    def _fits(self, r: int) -> bool:
        need = self.prompt[r] + self.generated[r] + len(self.ids) - self.prefilling
        return len(self.ids) < self.max_batch and self.kv_used + need <= self.kv_capacity

    def _admit(self, now: float) -> None:
        waiting, run = self.waiting, self.run
        while waiting and self._fits(waiting[0]):
            r = waiting.popleft()
            g = int(self.generated[r])
            p = int(self.prompt[r]) + g
            self.ids.append(r)
            self.pre.append(p)
            self.out.append(int(self.output[r]) - g)
            self.ctx.append(0)
            self.held.append(p)
            self.prefilling += 1
            self.kv_used += p
            run.admitted(r, now, self)

    def _make_room(self, now: float) -> bool:
        """Preempt the newest requests until the next step's KV growth fits; any preempted?"""
        preempted = False
        while self.ids and self.kv_used + len(self.ids) - self.prefilling > self.kv_capacity:
            self._preempt_last(now)
            preempted = True
        return preempted

    def _preempt_last(self, now: float) -> None:
        r = self.ids.pop()
        left = self.pre.pop()
        out = self.out.pop()
        ctx = self.ctx.pop()
        self.kv_used -= self.held.pop()
        if left:
            self.prefilling -= 1
        g = int(self.output[r]) - out
        self.work_tokens += int(self.prompt[r]) + g - left
        self.generated[r] = g
        self.waiting.appendleft(r)
        self.run.kv_preempted(r, ctx)

    # _compose is the base one with _make_room first and KV-limited decode runs (written out,
    # not hooked, so that replicas without preemption pay no extra call per iteration)
    def _compose(self, now: float) -> None:
        if not self._make_room(now):
            self._admit(now)
        self.seg_start = now
        self.seg_cum = self.plan = None
        n = len(self.ids)
        if n == 0:
            self.busy = False
            self.run.idle(self)
            return
        if self.prefilling == 0:
            k = min(min(self.out), (self.kv_capacity - self.kv_used) // n)
            cum = self.step.decode_run(n, sum(self.ctx), k)
            self.seg_cum, self.seg_steps = cum, k
            self._schedule(float(cum[-1]))
            return
        plan, prefill, kv = self._plan(n)
        self.plan = plan
        self._schedule(self.step.step(prefill, n - self.prefilling, kv))

    def _advance_decode(self, m: int, now: float) -> None:
        self.held = [h + m for h in self.held]
        self.kv_used += m * len(self.ids)
        super()._advance_decode(m, now)

    def _apply_mixed(self, now: float) -> None:
        held, pre = self.held, self.pre
        for i in range(len(held)):
            if pre[i] == 0:
                held[i] += 1
                self.kv_used += 1
        super()._apply_mixed(now)

    def _finish_done(self, now: float) -> None:
        keep = [i for i, o in enumerate(self.out) if o > 0]
        for i, o in enumerate(self.out):
            if o == 0:  # the base releases footprint[r]; this replica holds held[i]
                self.kv_used += int(self.footprint[self.ids[i]]) - self.held[i]
        super()._finish_done(now)
        self.held = [self.held[i] for i in keep]
