"""The run state of a disaggregated service (see :mod:`simulator.models.serving.disagg`).

Each pool is sized on its own: a pool without an autoscaler runs its ``replicas`` for the whole
run; a pool with one gets a decision every ``interval_s`` from what *that pool* did over the
last interval, by the rules of :mod:`simulator.models.serving.autoscaler`:

* outstanding requests of the prefill pool are those routed to it and not yet prefilled (token
  1 not out), of the decode pool those prefilled and not finished (in an ingress queue, in
  transfer, queued or decoding); "queued" are those of them not yet in a batch of the pool;
* the ``slo`` policy's attainment is, for the prefill pool, the share of first tokens in the
  interval within ``ttft_slo_s`` (TTFT ends at the prefill), and for the decode pool the share
  of requests with more than one output token finishing in the interval within ``tpot_slo_s``;
* ``max_batch_size`` is the pool's.

Scale-out, the scale-in window and draining are the service autoscaler's; a drained replica
stops once it holds nothing (prefill: no KV left to send; decode: no transfer coming).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

from simulator.models.serving.autoscaler import Observation
from simulator.models.serving.disagg import (
    DecodeReplica,
    Pool,
    PrefillReplica,
    link_bandwidth,
    transfer_arrays,
)
from simulator.models.serving.replica import (
    ARRIVAL,
    DORMANT,
    DRAINING,
    LOADING,
    PENDING,
    READY,
    Replica,
)
from simulator.models.serving.service import (
    ServiceRun,
    _mean,
    _pct,
    _Prepared,
    _slot_jobs,
    _summary,
)

__all__ = ["DisaggServiceRun"]


class DisaggServiceRun(ServiceRun):
    """A :class:`ServiceRun` with a prefill and a decode pool and KV transfers between them.

    Requests are routed to the prefill pool (``route``), and from there, prefilled, to the
    decode pool (``route_decode``). ``kv_capacity`` (the rejection test on arrival) is the
    decode replicas'; a prompt larger than a prefill replica's KV cache is rejected too.
    """

    def _make_replicas(self, kind: type, prepared: _Prepared) -> list[Replica]:
        svc = self.service
        self.prefill_output = np.ones(self.n, dtype=np.int64)
        prefill_cap = prepared.pools[0].kv_capacity
        self.kv_need = np.where(self.prompt > prefill_cap, self.kv_capacity + 1, self.kv_need)
        self.handoff = transfer_arrays(self.n)
        self.stage = np.zeros(self.n, dtype=np.int8)
        """Per request: 0 not routed yet, 1 in the prefill pool, 2 in the decode pool, 3 done."""
        self.in_batch = np.zeros(self.n, dtype=bool)
        self._src: dict[int, tuple[PrefillReplica, int]] = {}
        routes = (self.route, self.route_decode)
        self.pools = tuple(
            Pool(p, svc.router, route, svc.affinity_load_cap)
            for p, route in zip(prepared.pools, routes, strict=True)
        )
        jobs = iter(_slot_jobs(self.sim, prepared))
        replicas: list[Replica] = []
        for pool, cls in zip(self.pools, (PrefillReplica, DecodeReplica), strict=True):
            count = len(pool.prepared.slot_ids)
            pool.replicas = [cls(self, k, next(jobs), pool) for k in range(count)]
            replicas += pool.replicas
        return replicas

    # ------------------------------------------------------------------ replicas
    def control(self):
        """The service's SimPy process: first replicas of each pool, arrivals, autoscalers."""
        if self.n:
            self._call(max(float(self.arrival[0]) - self.env.now, 0.0), self._on_arrival,
                       ARRIVAL)  # fmt: skip
        for pool in self.pools:
            self.scale_pool(pool, pool.prepared.spec.initial, self.service.warm_start, True)
        if not self.n:
            self.close()
        for pool in self.pools:
            if pool.autoscaler is not None and not self.closed:
                self.env.process(self._autoscale(pool))
        yield from ()

    def _autoscale(self, pool: Pool):
        """One pool's autoscaler: a decision every ``interval_s`` until the service closes."""
        scaler = pool.autoscaler
        recent: deque = deque()
        while not self.closed:
            start = self.env.now
            pool.touch(start)
            pool.area_out = pool.area_queued = 0.0
            pool.win_met = pool.win_count = 0
            yield self.env.timeout(scaler.interval_s)
            if self.closed:
                break
            target = scaler.target(recent, self.observe_pool(pool, self.env.now - start))
            pool.decisions.append((self.env.now, recent[-1][1], target))
            self.scale_pool(pool, target)

    def observe_pool(self, pool: Pool, window: float) -> Observation:
        """Averages of ``pool`` over the last ``window`` seconds (see the module doc)."""
        now = self.env.now
        pool.touch(now)
        states = [r.state for r in pool.replicas]
        return Observation(
            now=now,
            provisioned=sum(s in (PENDING, LOADING, READY) for s in states),
            ready=states.count(READY),
            avg_outstanding=pool.area_out / window,
            avg_queued=pool.area_queued / window,
            ttft_met=pool.win_met,
            ttft_count=pool.win_count,
            max_batch_size=pool.prepared.max_batch_size,
        )

    def scale_pool(self, pool: Pool, target: int, warm: bool = False, initial: bool = False):
        """Bring ``pool``'s provisioned replicas to ``target``."""
        pool.target = target
        self.target = sum(p.target for p in self.pools)
        self._scale(pool.replicas, target, warm, initial)
        self.record()

    def scale_to(self, target: int, warm: bool = False, initial: bool = False) -> None:
        """Not used: each pool is sized by :meth:`scale_pool`."""
        raise TypeError("a disaggregated service sizes each pool with scale_pool")

    def idle(self, rep: Replica) -> None:
        """A draining replica with nothing left (no KV held, no transfer coming) stops."""
        if rep.state == DRAINING and rep.outstanding == 0:
            self._stop(rep)

    # ------------------------------------------------------------------ requests
    def _enter(self, r: int, stage: int) -> None:
        """Request ``r`` moves to ``stage`` (1 prefill, 2 decode, 3 done): pool counts follow."""
        now = self.env.now
        old = int(self.stage[r])
        if old in (1, 2):
            pool = self.pools[old - 1]
            pool.touch(now)
            pool.outstanding -= 1
            pool.queued -= not self.in_batch[r]
        self.stage[r] = stage
        self.in_batch[r] = False
        if stage in (1, 2):
            pool = self.pools[stage - 1]
            pool.touch(now)
            pool.outstanding += 1
            pool.queued += 1

    def _batched(self, r: int, stage: int) -> None:
        """Request ``r`` joined a batch of the pool of ``stage``."""
        if self.stage[r] == stage and not self.in_batch[r]:
            pool = self.pools[stage - 1]
            pool.touch(self.env.now)
            pool.queued -= 1
            self.in_batch[r] = True

    def route(self, r: int) -> None:
        """Send request ``r`` to a prefill replica, or hold it until one is ready."""
        if self.stage[r] != 1 or self.in_batch[r]:
            self._enter(r, 1)  # an arrival, or a restart after a replica loss
        rep = self._route_in(self.pools[0], r)
        if rep is not None:
            self.replica_of[r] = rep.slot
            rep.enqueue(r)

    def _route_in(self, pool: Pool, r: int) -> Replica | None:
        routable = pool.routable
        while routable:
            rep = routable[0] if len(routable) == 1 else pool.router.choose(routable, r)
            if self.alive(rep):
                self.log(r, f"route {rep.label}")
                return rep
            self.lost(rep)
        pool.pending.append(r)
        return None

    def prefilled(self, r: int, now: float, src: PrefillReplica) -> None:
        """Request ``r``'s prefill on ``src`` ended (token 1 is out): hand it to decode."""
        self.handoff["prefill_end"][r] = now
        self.log(r, "prefill_end")
        if self.output[r] == 1:
            src.release(r)
            self.finished(r, now, src)
            return
        self._enter(r, 2)
        self._src[r] = (src, int(self.restarts[r]))
        self.route_decode(r)

    def route_decode(self, r: int) -> None:
        """Send prefilled request ``r`` to a decode replica's ingress queue (or hold it)."""
        item = self._src.pop(r, None)
        if item is None or item[1] != self.restarts[r]:
            return  # a stale entry of the pending queue (restarted, or routed already)
        self._src[r] = item
        dst = self._route_in(self.pools[1], r)
        if dst is None:
            return
        del self._src[r]
        self.handoff["decode_replica"][r] = dst.slot
        dst.receive(r, item[0])

    def transfer_started(self, r: int, src: PrefillReplica, dst: DecodeReplica) -> float:
        """Request ``r``'s KV starts moving from ``src`` to ``dst``: the transfer's seconds."""
        svc = self.service
        nbytes = svc.model.kv_bytes_per_token * float(self.prompt[r])
        bw = link_bandwidth(self.sim, src, dst, svc.kv_transfer_bw, svc.kv_intra_node_bw)
        h = self.handoff
        h["transfer_start"][r] = self.env.now
        h["kv_transfer_bytes"][r] = nbytes
        self.log(r, "transfer_start")
        seconds = svc.kv_transfer_latency_s + nbytes / bw
        h["kv_transfer_s"][r] = seconds
        return seconds

    def transferred(self, r: int, dst: DecodeReplica) -> None:
        """Request ``r``'s KV arrived on ``dst``."""
        self.handoff["transfer_end"][r] = self.env.now
        self.log(r, "transfer_end")

    def decode_admitted(self, r: int, now: float) -> None:
        """Request ``r`` joined a decode batch."""
        self._batched(r, 2)
        self.log(r, "decode_admit")

    def admitted(self, r: int, now: float, rep: Replica) -> None:
        """Request ``r`` joined a prefill batch."""
        super().admitted(r, now, rep)
        self._batched(r, 1)

    def first_token(self, r: int, now: float) -> None:
        """Token 1 (the end of the prefill): counted in the prefill pool's TTFT window."""
        count, met = self.win_count, self.win_met
        super().first_token(r, now)
        pool = self.pools[0]
        pool.win_count += self.win_count - count
        pool.win_met += self.win_met - met

    def finished(self, r: int, now: float, rep: Replica) -> None:
        """Request ``r``'s last token; with more than one, counted in the decode TPOT window."""
        super().finished(r, now, rep)
        self._enter(r, 3)
        out = int(self.output[r])
        if out > 1:
            pool = self.pools[1]
            pool.win_count += 1
            pool.win_met += (now - self.first[r]) / (out - 1) <= self.service.tpot_slo_s

    # ------------------------------------------------------------------ results
    def request_frame(self) -> pd.DataFrame:
        """As :meth:`ServiceRun.request_frame`, with the handoff columns.

        ``replica`` is the prefill replica; then the decode replica, the prefill end, the KV
        transfer's start, end, seconds and bytes, and the wait from prefill end to transfer.
        """
        f = super().request_frame()
        h = self.handoff
        f["decode_replica"] = h["decode_replica"]
        f["prefill_end"] = h["prefill_end"]
        f["transfer_start"] = h["transfer_start"]
        f["transfer_end"] = h["transfer_end"]
        f["kv_transfer_s"] = np.where(np.isnan(h["transfer_end"]), np.nan, h["kv_transfer_s"])
        f["transfer_wait_s"] = h["transfer_start"] - h["prefill_end"]
        f["kv_transfer_bytes"] = h["kv_transfer_bytes"]
        return f

    def summary(self) -> dict:
        """As :meth:`ServiceRun.summary`, with ``disaggregation``: per-pool and transfer figures."""
        f = self.request_frame()
        out = _summary(self, f)
        jobs = self.sim.jobs
        pools = {}
        for pool in self.pools:
            p = pool.prepared
            slots = np.array([r.job for r in pool.replicas], dtype=np.int64)
            # replicas started (a slot is DORMANT until first submitted)
            started = sum(r.state != DORMANT for r in pool.replicas)
            pools[pool.name] = {
                "replicas": started,
                "replica_slots": len(pool.replicas),
                "autoscaled": pool.autoscaler is not None,
                "scale_decisions": len(pool.decisions),
                "max_target": max((d[2] for d in pool.decisions), default=pool.target),
                "tensor_parallel": p.tp,
                "gpu_type": p.gpu.name,
                "kv_capacity_tokens": int(p.kv_capacity),
                "gpu_hours": float(jobs.gpu_seconds[slots].sum()) / 3600.0,
                "iterations": int(sum(r.iterations for r in pool.replicas)),
                "served": int(sum(r.served for r in pool.replicas)),
            }
        t = f["kv_transfer_s"].to_numpy(np.float64)
        w = f["transfer_wait_s"].to_numpy(np.float64)
        out["disaggregation"] = {
            "pools": pools,
            "transfers": int((~np.isnan(t)).sum()),
            "kv_transfer_bytes": float(np.nansum(f["kv_transfer_bytes"].to_numpy())),
            "avg_kv_transfer_s": _mean(t),
            "p50_kv_transfer_s": _pct(t, 50),
            "p99_kv_transfer_s": _pct(t, 99),
            "avg_transfer_wait_s": _mean(w),
            "p99_transfer_wait_s": _pct(w, 99),
        }
        return out
