"""Prefill/decode disaggregation (Splitwise, DistServe, Mooncake): two replica pools per service.

A disaggregated service runs a **prefill pool** and a **decode pool**; every replica of either
is its own cluster job (the pool's GPU model and tensor-parallel degree). A request's life:

1. it is routed to a prefill replica (the service's router over the ready prefill replicas)
   and admitted there by today's rule, holding ``prompt`` KV tokens; its prefill runs in
   continuous batches (chunked if configured) and the iteration that computes its last prompt
   token produces **token 1** (Splitwise: TTFT ends there);
2. a request with one output token finishes there. Any other is routed at that instant to a
   decode replica (same router, over the ready decode replicas) and joins that replica's
   **ingress queue**: one transfer at a time per decode replica, first come first served.
   The head of the queue starts its transfer when the decode replica can admit it by today's
   rule (a batch slot, counting requests in transfer, and KV room for ``prompt + output``
   tokens, which it reserves then); a head that does not fit blocks the queue until a request
   finishes there;
3. the transfer takes ``kv_transfer_latency_s + kv_bytes_per_token x prompt / bandwidth``
   (:func:`link_bandwidth`); at its end the prefill replica frees the request's KV and the
   request joins the decode replica's next iteration (a transfer ending at an iteration
   boundary joins the iteration that starts then, like an arrival), with ``prompt + 1`` tokens
   in its context and ``output - 1`` tokens to generate in decode-only continuous batches.

A replica that loses its GPUs sends its requests back to the prefill pool (their KV is gone:
batch, ingress queue and transfers alike); a transfer whose source lost the KV ends without
effect (its reservation is freed when it would have ended).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.models.serving.autoscaler import Autoscaler
from simulator.models.serving.replica import ARRIVAL, DRAINING, Replica
from simulator.models.serving.router import make_router

if TYPE_CHECKING:
    from simulator.models.serving.service import ServiceRun

__all__ = ["PoolSpec", "Pool", "PrefillReplica", "DecodeReplica", "link_bandwidth"]


@dataclass(frozen=True)
class PoolSpec:
    """One pool of a disaggregated service (None = the service's own setting).

    Attributes:
        replicas: replica count of the pool when it has no ``autoscaler``.
        tensor_parallel: GPUs per replica.
        gpu_type: GPU model of the replicas.
        max_batch_size: requests in one replica's batch at most.
        max_batched_tokens: tokens in one iteration at most.
        autoscaler: an :class:`~simulator.models.serving.autoscaler.Autoscaler` (or a mapping
            of its arguments) that sizes this pool on its own (see :mod:`disagg_run`), or None.
        replica_slots: dormant replica rows of the pool (None = ``replicas``, or 4 x
            ``max_replicas`` with an autoscaler).
    """

    replicas: int = 1
    tensor_parallel: int | None = None
    gpu_type: str | None = None
    max_batch_size: int | None = None
    max_batched_tokens: int | None = None
    autoscaler: Autoscaler | None = None
    replica_slots: int | None = None

    @classmethod
    def of(cls, spec: PoolSpec | Mapping) -> PoolSpec:
        """A spec from a mapping of its fields (or a spec itself)."""
        if isinstance(spec, PoolSpec):
            return spec
        fields = dict(spec)
        scaler = fields.get("autoscaler")
        if scaler is not None and not isinstance(scaler, Autoscaler):
            fields["autoscaler"] = Autoscaler(**{k: v for k, v in dict(scaler).items()
                                                 if k != "_target_"})  # fmt: skip
        return cls(**fields)

    @property
    def slots(self) -> int:
        """Replica rows the pool needs."""
        if self.replica_slots is not None:
            return int(self.replica_slots)
        return self.replicas if self.autoscaler is None else 4 * self.autoscaler.max_replicas

    @property
    def initial(self) -> int:
        """Replicas submitted when the run starts."""
        return self.replicas if self.autoscaler is None else self.autoscaler.initial_replicas


@dataclass(frozen=True)
class PreparedPool:
    """What ``Service.prepare`` resolved for one pool."""

    name: str
    slot_ids: tuple
    gpu: object
    tp: int
    step_time: object
    kv_capacity: int
    max_batch_size: int
    max_batched_tokens: int
    spec: PoolSpec = PoolSpec()


class Pool:
    """Run-time state of one pool: its replicas, the routable ones, requests waiting for one.

    Args:
        prepared: the pool's resolved configuration.
        router: router name.
        route: called with a request to send it to a replica of this pool.
        load_cap: ``prefix_affinity`` load cap (unused: no prefix cache here).
    """

    def __init__(self, prepared: PreparedPool, router: str, route, load_cap: float) -> None:
        self.prepared = prepared
        self.name = prepared.name
        self.replicas: list[Replica] = []
        self.routable: list[Replica] = []
        self.pending: deque[int] = deque()
        self.dispatching = False
        self.router = make_router(router, load_cap=load_cap)
        self.route = route
        self.autoscaler = prepared.spec.autoscaler
        self.target = 0
        self.decisions: list[tuple[float, int, int]] = []
        """This pool's autoscaler decisions: ``(time, desired, stabilised target)``."""
        # requests in this pool's stage (prefill: routed, not yet prefilled; decode: prefilled,
        # not finished) and those of them not yet in a batch, integrated over time
        self.outstanding = self.queued = 0
        self.t_last = self.area_out = self.area_queued = 0.0
        self.win_met = self.win_count = 0

    def touch(self, now: float) -> None:
        """Integrate the counts up to ``now``."""
        dt = now - self.t_last
        if dt:
            self.area_out += self.outstanding * dt
            self.area_queued += self.queued * dt
            self.t_last = now


def link_bandwidth(sim, src: Replica, dst: Replica, default: float, intra: float) -> float:
    """Bytes/s of a KV transfer from replica ``src`` to ``dst`` (placed jobs).

    With a fabric (:class:`~simulator.models.fabric.Fabric`), ``min(tp_src, tp_dst)`` GPU
    pairs send their KV shards in parallel, each at the per-GPU rate of the highest tier
    between the replicas' first nodes: NVLink inside one NVLink domain, else the smaller NIC
    share per GPU of the two nodes under one leaf, divided by the oversubscription across the
    spine (other flows on the links are not counted). Without a fabric: ``intra`` bytes/s
    inside one node, else ``default``.
    """
    a = int(sim.placement_of(src.job).nodes[0])
    b = int(sim.placement_of(dst.job).nodes[0])
    fabric = sim.fabric
    if fabric is None or not hasattr(fabric, "node_domain"):
        return intra if a == b else default
    streams = min(src.tp, dst.tp)
    if fabric.node_domain[a] == fabric.node_domain[b]:
        return fabric.nvlink_bw * streams
    nic = min(float(fabric.node_nic[a]), float(fabric.node_nic[b])) * streams
    if fabric.node_leaf[a] == fabric.node_leaf[b] or fabric.topology == "single_switch":
        return nic
    return nic / fabric.oversubscription


def _pool_setup(rep: Replica, pool: Pool) -> None:
    p = pool.prepared
    rep.pool = pool
    rep.step = p.step_time
    rep.kv_capacity = p.kv_capacity
    rep.max_batch = p.max_batch_size
    rep.max_tokens = p.max_batched_tokens
    rep.tp = p.tp


class PrefillReplica(Replica):
    """A prefill-pool replica: runs prompts to their first token, holds their KV until sent.

    Its requests need one output token here (``output`` is all ones) and hold ``prompt`` KV
    tokens (``footprint``) from admission to the end of their transfer.
    """

    def __init__(self, run: ServiceRun, slot: int, job: int, pool: Pool) -> None:
        super().__init__(run, slot, job)
        _pool_setup(self, pool)
        self.output = run.prefill_output
        self.footprint = run.prompt

    def _reset(self) -> None:
        super()._reset()
        self.holding: dict[int, int] = {}  # request -> KV tokens held for its transfer

    @property
    def outstanding(self) -> int:
        """Requests queued, in the batch, or waiting for their KV to leave."""
        return len(self.waiting) + len(self.ids) + len(self.holding)

    @property
    def admitted_requests(self) -> int:
        """Requests in the batch or holding KV here."""
        return len(self.ids) + len(self.holding)

    @property
    def label(self) -> str:
        """Name in the event log."""
        return f"prefill-{self.slot}"

    def take_all(self) -> list[int]:
        """As :meth:`Replica.take_all`, and the requests whose KV was still here."""
        held = list(self.holding)
        return super().take_all() + held

    def _finish_done(self, now: float) -> None:
        """Prefilled requests leave the batch but keep their KV until their transfer ends."""
        keep = [i for i, o in enumerate(self.out) if o > 0]
        done = [self.ids[i] for i, o in enumerate(self.out) if o == 0]
        self.ids = [self.ids[i] for i in keep]
        self.pre = [self.pre[i] for i in keep]
        self.out = [self.out[i] for i in keep]
        self.ctx = [self.ctx[i] for i in keep]
        for r in done:
            self.holding[r] = int(self.footprint[r])
            self.served += 1
        for r in done:
            self.run.prefilled(r, now, self)

    def release(self, r: int) -> None:
        """Request ``r``'s KV left (or is no longer needed): free it."""
        tokens = self.holding.pop(r, None)
        if tokens is None:
            return  # this replica was reset since (lost): nothing held
        self.load -= 1
        self.kv_used -= tokens
        if not self.busy:
            if self.waiting:
                self._schedule(0.0)
            elif self.state == DRAINING and not self.holding:
                self.run.idle(self)


class DecodeReplica(Replica):
    """A decode-pool replica: receives KV transfers one at a time, then decodes.

    Requests hold ``prompt + output`` KV tokens (``footprint``) from the start of their
    transfer to their last token; they are reserved, so admission to the batch never waits.
    """

    def __init__(self, run: ServiceRun, slot: int, job: int, pool: Pool) -> None:
        self.resets = 0  # transfers in flight when the replica was reset no longer count
        super().__init__(run, slot, job)
        _pool_setup(self, pool)

    def _reset(self) -> None:
        super()._reset()
        self.resets += 1
        self.ingress: deque[tuple[int, PrefillReplica, int]] = deque()
        self.transfer: tuple[int, PrefillReplica, int] | None = None

    @property
    def outstanding(self) -> int:
        """Requests in the ingress queue, in transfer, queued or in the batch."""
        return len(self.ingress) + (self.transfer is not None) + len(self.waiting) + len(self.ids)

    @property
    def admitted_requests(self) -> int:
        """Every request here was admitted (to prefill)."""
        return self.outstanding

    @property
    def label(self) -> str:
        """Name in the event log."""
        return f"decode-{self.slot}"

    def receive(self, r: int, src: PrefillReplica) -> None:
        """Prefilled request ``r`` (KV on ``src``) joins the ingress queue."""
        self.ingress.append((r, src, int(self.run.restarts[r])))
        self.load += 1
        self.work_tokens += int(self.output[r]) - 1
        self._next_transfer()

    def take_all(self) -> list[int]:
        """As :meth:`Replica.take_all`, with the ingress queue and the transfer in flight."""
        items = ([self.transfer] if self.transfer is not None else []) + list(self.ingress)
        stale = self.run.restarts
        moved = [(r, src) for r, src, gen in items if gen == stale[r]]
        for r, src in moved:
            src.release(r)
        return super().take_all() + [r for r, _ in moved]

    def _next_transfer(self) -> None:
        """Start the head transfer of the ingress queue if none runs and it can be admitted."""
        ingress, run = self.ingress, self.run
        while self.transfer is None and ingress:
            r, src, gen = ingress[0]
            if gen != run.restarts[r]:
                ingress.popleft()  # restarted since (its prefill replica was lost)
                self.load -= 1
                self.work_tokens -= int(self.output[r]) - 1
                continue
            need = int(self.footprint[r])
            if len(self.ids) + len(self.waiting) >= self.max_batch or (
                self.kv_used + need > self.kv_capacity
            ):
                return
            ingress.popleft()
            self.kv_used += need
            self.transfer = (r, src, gen)
            run._call(run.transfer_started(r, src, self), self._transfer_end, ARRIVAL,
                      (self.resets, r))  # fmt: skip

    def _transfer_end(self, value: tuple[int, int]) -> None:
        resets, r = value
        if resets != self.resets:
            return  # this replica was reset (lost) since
        _, src, gen = self.transfer
        self.transfer = None
        run = self.run
        if gen != run.restarts[r]:
            self.kv_used -= int(self.footprint[r])  # the source lost the KV: nothing came
            self.load -= 1
            self.work_tokens -= int(self.output[r]) - 1
        else:
            src.release(r)
            run.transferred(r, self)
            self.waiting.append(r)
            if not self.busy:
                self._schedule(0.0)
            elif self.seg_cum is not None and len(self.waiting) == 1:
                self._cut()
        self._next_transfer()

    def _fits(self, r: int) -> bool:
        return True  # reserved when its transfer started

    def _admit(self, now: float) -> None:
        waiting, run = self.waiting, self.run
        while waiting:
            r = waiting.popleft()
            self.ids.append(r)
            self.pre.append(0)
            self.out.append(int(self.output[r]) - 1)
            self.ctx.append(int(self.prompt[r]) + 1)
            run.decode_admitted(r, now)

    def _finish_done(self, now: float) -> None:
        super()._finish_done(now)
        if self.ingress and self.transfer is None:
            self._next_transfer()


def transfer_arrays(n: int) -> dict[str, np.ndarray]:
    """Per-request records of the handoff (NaN / -1 where it never happened)."""
    return {
        "decode_replica": np.full(n, -1, dtype=np.int32),
        "prefill_end": np.full(n, np.nan),
        "transfer_start": np.full(n, np.nan),
        "transfer_end": np.full(n, np.nan),
        "kv_transfer_bytes": np.zeros(n),
        "kv_transfer_s": np.full(n, np.nan),
    }
