"""The run state of a disaggregated service (see :mod:`simulator.models.serving.disagg`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.models.serving.disagg import (
    DecodeReplica,
    Pool,
    PrefillReplica,
    link_bandwidth,
    transfer_arrays,
)
from simulator.models.serving.replica import DRAINING, Replica
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
    def scale_to(self, target: int, warm: bool = False, initial: bool = False) -> None:
        """Submit every pool's fixed replicas (pools are not autoscaled)."""
        self.target = len(self.replicas)
        for rep in self.replicas:
            self._submit(rep, warm)
        self.record()

    def idle(self, rep: Replica) -> None:
        """A draining replica with nothing left (no KV held, no transfer coming) stops."""
        if rep.state == DRAINING and rep.outstanding == 0:
            self._stop(rep)

    # ------------------------------------------------------------------ requests
    def route(self, r: int) -> None:
        """Send request ``r`` to a prefill replica, or hold it until one is ready."""
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
        self.log(r, "decode_admit")

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
            pools[pool.name] = {
                "replicas": len(pool.replicas),
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
