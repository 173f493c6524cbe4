"""An inference service on the cluster: the serving extension object and its per-run state.

:class:`Service` implements the extension protocol of :mod:`simulator.core.extensions`:

* ``prepare(trace, cluster)`` appends one dormant job row per replica slot (``submit_time``
  and ``duration`` infinite, ``kind=infer``, ``num_gpus`` = tensor-parallel degree, the
  service's ``priority``); the active policy places a submitted replica like any gang;
* ``processes()`` starts the service's controller with the run: request arrivals (one event
  per arrival instant), replica iterations (one event per iteration or decode run, see
  :mod:`simulator.models.serving.replica`) and the autoscaler; the service's own events
  run in its own heap behind one SimPy timeout per instant (:meth:`ServiceRun._call`);
* ``job_columns``, ``summary`` and ``tables`` (``requests``, ``replicas``) report the run.

A replica is ready ``load_delay_s`` seconds after its job starts. The engine tells the service
when a replica job starts or stops running (``Simulation.listen``: right after the event, for a
start after the scheduling pass that placed it), so ready times are exact and a replica that
loses its GPUs (preemption, node failure, migration) is noticed at that instant. A pending
replica whose job is never placed (unschedulable, rejected) is found by checking its status
every ``poll_interval_s``. When every request has finished, all replicas stop.
"""

from __future__ import annotations

import heapq
import math
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.core.gpus import GPUSpec, gpu_spec
from simulator.core.jobs import Status
from simulator.models.serving.autoscaler import Autoscaler, Observation
from simulator.models.serving.disagg import PoolSpec, PreparedPool
from simulator.models.serving.model import ModelSpec, kv_capacity_tokens, model_spec
from simulator.models.serving.replica import (
    ARRIVAL,
    DORMANT,
    DRAINING,
    ITERATION,
    LOADING,
    PENDING,
    READY,
    STOPPED,
    CachingReplica,
    PreemptingReplica,
    Replica,
)
from simulator.models.serving.requests import PrefixRequestStream, RequestStream
from simulator.models.serving.router import make_router
from simulator.models.serving.steptime import RooflineStepTime, StepTime, TableStepTime

if TYPE_CHECKING:
    from simulator.core.cluster import ClusterSpec
    from simulator.core.engine import Simulation

__all__ = ["Service", "ServiceRun", "NoServing", "ServingGroup"]

POLL = 3
"""SimPy priority of placement polls: after the engine's scheduling pass of the same instant."""

WAITING, DONE, REJECTED = 0, 1, 2
REQUEST_STATUS = np.array(["unfinished", "finished", "rejected"], dtype=object)


class NoServing:
    """No inference service (``serving: none``): implements none of the extension methods."""


@dataclass(frozen=True)
class _Prepared:
    stream: RequestStream
    slot_ids: tuple
    gpu: GPUSpec
    step_time: StepTime
    kv_capacity: int
    pools: tuple[PreparedPool, ...] = ()
    """Disaggregated: the prefill and the decode pool (``slot_ids`` lists both, in order)."""


class Service:
    """One model served by autoscaled replicas that are cluster jobs (see module doc).

    Args:
        name: service name (replica job ids ``<name>-replica-<k>``; queue of the replicas).
        model: preset name (:data:`~simulator.models.serving.model.MODELS`), fields, or a spec.
        gpu_type: GPU model of the replicas (None = the cluster's only GPU model).
        tensor_parallel: GPUs per replica.
        priority: ``priority`` of the replica jobs (under ``priority``: above training).
        requests: a request source with ``load()`` (see
            :mod:`simulator.models.serving.requests`); None = the trace's ``kind=infer`` rows
            with token columns, which ``prepare`` removes.
        max_batch_size: requests in one replica's batch at most.
        max_batched_tokens: tokens (prefill + decode) in one iteration at most.
        chunked_prefill: split prompts across iterations to fill the token budget.
        gpu_memory_utilization: share of GPU memory for weights + KV cache.
        compute_efficiency: roofline: achieved share of peak FLOP/s.
        memory_efficiency: roofline: achieved share of HBM bandwidth.
        step_overhead_s: roofline: fixed seconds per iteration.
        step_profile: CSV of profiled step times (``model, gpu, tp, batch_tokens, time_s``)
            that replaces the roofline model.
        step_time: a step-time object that replaces both (tests, custom models).
        load_delay_s: seconds from a replica's placement to ready (model load).
        warm_start: the initial replicas skip the load delay.
        poll_interval_s: seconds between checks that a pending replica's job is still queued
            (one never placed, e.g. unschedulable or rejected, is given up).
        router: ``round_robin``, ``least_outstanding``, ``jsq`` or ``prefix_affinity``
            (needs ``prefix_cache``).
        affinity_load_cap: ``prefix_affinity``: a replica is a candidate while its
            outstanding requests are at most this times those of the least loaded replica
            (at least 1).
        prefix_cache: cache KV blocks by prefix hash on every replica (LRU eviction, in the
            KV memory left after weights); needs requests with block hashes
            (:class:`~simulator.models.serving.requests.PrefixRequestStream`).
        kv_preemption: reserve KV per step (prompt + tokens generated so far) and, when the
            cache is full, preempt the newest running request and recompute it later (vLLM's
            default); False = reserve the whole sequence (prompt + output) at admission, no
            preemption. Not combined with ``prefix_cache`` yet.
        replicas: fixed replica count when ``autoscaler`` is None.
        autoscaler: an :class:`~simulator.models.serving.autoscaler.Autoscaler`, or None.
        replica_slots: dormant replica rows to append (None = ``replicas``, or 4 x
            ``max_replicas`` with an autoscaler); a scale-out finding none left is counted.
        ttft_slo_s: time-to-first-token target (s).
        tpot_slo_s: time-per-output-token target (s).
        prefill: with ``decode``, disaggregate: the prefill pool (a
            :class:`~simulator.models.serving.disagg.PoolSpec` or a mapping of its fields:
            ``replicas``, ``tensor_parallel``, ``gpu_type``, ``max_batch_size``,
            ``max_batched_tokens``; unset fields take the service's). See
            :mod:`simulator.models.serving.disagg`.
        decode: the decode pool, likewise.
        kv_transfer_gb_per_s: disaggregated, without a fabric: GB/s (1e9 bytes/s) of a KV
            transfer between replicas on different nodes.
        kv_intra_node_gb_per_s: ... between replicas on one node (NVLink).
        kv_transfer_latency_s: seconds added to every KV transfer.
    """

    def __init__(
        self,
        name: str = "llm",
        model: str | dict | ModelSpec = "llama-3-8b",
        gpu_type: str | None = None,
        tensor_parallel: int = 1,
        priority: int = 100,
        requests: object | None = None,
        max_batch_size: int = 256,
        max_batched_tokens: int = 8192,
        chunked_prefill: bool = True,
        gpu_memory_utilization: float = 0.9,
        compute_efficiency: float = 0.6,
        memory_efficiency: float = 0.8,
        step_overhead_s: float = 0.002,
        step_profile: str | None = None,
        step_time: StepTime | None = None,
        load_delay_s: float = 120.0,
        warm_start: bool = False,
        poll_interval_s: float = 1.0,
        router: str = "least_outstanding",
        affinity_load_cap: float = 2.0,
        prefix_cache: bool = False,
        kv_preemption: bool = False,
        replicas: int = 1,
        autoscaler: Autoscaler | None = None,
        replica_slots: int | None = None,
        ttft_slo_s: float = 1.0,
        tpot_slo_s: float = 0.1,
        prefill: PoolSpec | dict | None = None,
        decode: PoolSpec | dict | None = None,
        kv_transfer_gb_per_s: float = 50.0,
        kv_intra_node_gb_per_s: float = 450.0,
        kv_transfer_latency_s: float = 0.0,
    ) -> None:
        if tensor_parallel < 1 or max_batch_size < 1 or max_batched_tokens < max_batch_size:
            raise ValueError(
                "need tensor_parallel >= 1, max_batch_size >= 1 and "
                "max_batched_tokens >= max_batch_size"
            )
        if load_delay_s < 0 or poll_interval_s <= 0 or replicas < 0:
            raise ValueError("need load_delay_s >= 0, poll_interval_s > 0, replicas >= 0")
        make_router(router)  # fail early on a typo
        if router == "prefix_affinity" and not prefix_cache:
            raise ValueError(f"service {name!r}: router prefix_affinity needs prefix_cache: true")
        if prefix_cache and kv_preemption:
            raise ValueError(
                f"service {name!r}: prefix_cache with kv_preemption is not supported yet"
            )
        if not affinity_load_cap >= 1:
            raise ValueError(f"service {name!r}: affinity_load_cap must be >= 1")
        self.name = str(name)
        self.model = model_spec(model)
        self.gpu_type = gpu_type
        self.tp = int(tensor_parallel)
        self.priority = int(priority)
        self.requests = requests
        self.max_batch_size, self.max_batched_tokens = int(max_batch_size), int(max_batched_tokens)
        self.chunked_prefill = bool(chunked_prefill)
        self.gpu_memory_utilization = float(gpu_memory_utilization)
        self.roofline = {
            "compute_efficiency": compute_efficiency,
            "memory_efficiency": memory_efficiency,
            "step_overhead_s": step_overhead_s,
        }
        self.step_profile, self.step_time = step_profile, step_time
        self.load_delay_s, self.warm_start = float(load_delay_s), bool(warm_start)
        self.poll_interval_s = float(poll_interval_s)
        self.router = router
        self.affinity_load_cap = float(affinity_load_cap)
        self.prefix_cache = bool(prefix_cache)
        self.kv_preemption = bool(kv_preemption)
        self.replicas, self.autoscaler = int(replicas), autoscaler
        if replica_slots is None:
            replica_slots = self.replicas if autoscaler is None else 4 * autoscaler.max_replicas
        self.replica_slots = int(replica_slots)
        self.ttft_slo_s, self.tpot_slo_s = float(ttft_slo_s), float(tpot_slo_s)
        self.pools = self._pool_specs(prefill, decode)
        if not (kv_transfer_gb_per_s > 0 and kv_intra_node_gb_per_s > 0):
            raise ValueError(f"service {name!r}: KV transfer bandwidths must be > 0")
        if not kv_transfer_latency_s >= 0:
            raise ValueError(f"service {name!r}: kv_transfer_latency_s must be >= 0")
        self.kv_transfer_bw = float(kv_transfer_gb_per_s) * 1e9
        self.kv_intra_node_bw = float(kv_intra_node_gb_per_s) * 1e9
        self.kv_transfer_latency_s = float(kv_transfer_latency_s)
        self.prepared: _Prepared | None = None
        self._runs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _pool_specs(self, prefill, decode) -> tuple[PoolSpec, ...]:
        if prefill is None and decode is None:
            return ()
        if prefill is None or decode is None:
            raise ValueError(f"service {self.name!r}: disaggregation needs prefill and decode")
        if self.autoscaler is not None or self.prefix_cache or self.kv_preemption:
            raise ValueError(
                f"service {self.name!r}: with prefill/decode pools, give each pool its own "
                "autoscaler (prefill.autoscaler / decode.autoscaler); prefix_cache and "
                "kv_preemption are not supported with pools yet"
            )
        pools = (PoolSpec.of(prefill), PoolSpec.of(decode))
        for name, p in zip(("prefill", "decode"), pools, strict=True):
            if p.autoscaler is None and p.replicas < 1:
                raise ValueError(f"service {self.name!r}: the {name} pool needs replicas >= 1")
            if p.slots < max(p.initial, 1):
                raise ValueError(
                    f"service {self.name!r}: the {name} pool's replica_slots ({p.slots}) is "
                    f"below the replicas it starts with ({p.initial})"
                )
        return pools

    # ------------------------------------------------------------------ extension protocol
    def prepare(self, trace: pd.DataFrame, cluster: ClusterSpec) -> pd.DataFrame:
        """Load the requests, check the replica fits the cluster, append the replica rows."""
        if self.pools:
            return self._prepare_pools(trace, cluster)
        ids = _replica_ids(trace, self.name, self.replica_slots)
        trace, stream = self._take_requests(trace)
        if self.prefix_cache and not isinstance(stream, PrefixRequestStream):
            raise ValueError(
                f"service {self.name!r}: prefix_cache needs requests with prefix-block hashes "
                f"(MooncakeRequests, a PrefixRequestStream, or SyntheticRequests with "
                f"prefix=...), got {type(stream).__name__}"
            )
        gpu = self._gpu(cluster)
        step = self.step_time or self._step_model(gpu)
        kv = kv_capacity_tokens(self.model, gpu, self.tp, self.gpu_memory_utilization)
        rows = pd.DataFrame(
            {
                "job_id": ids,
                "submit_time": math.inf,
                "duration": math.inf,
                "num_gpus": self.tp,
                "gpu_type": gpu.name,
                "kind": "infer",
                "queue": self.name,
                "priority": self.priority,
            }
        )
        self.prepared = _Prepared(stream, tuple(ids), gpu, step, kv)
        if trace.empty and not len(trace.columns):
            return rows
        return pd.concat([trace, rows], ignore_index=True)

    def _prepare_pools(self, trace: pd.DataFrame, cluster: ClusterSpec) -> pd.DataFrame:
        """``prepare`` of a disaggregated service: rows of the prefill, then the decode pool."""
        n = [p.slots for p in self.pools]
        ids = _replica_ids(trace, self.name, sum(n))
        trace, stream = self._take_requests(trace)
        pools, rows = [], []
        for name, spec, slots in zip(("prefill", "decode"), self.pools, (ids[: n[0]], ids[n[0] :]),
                                     strict=True):  # fmt: skip
            tp = spec.tensor_parallel or self.tp
            gpu = self._gpu(cluster, spec.gpu_type or self.gpu_type, tp)
            step = self.step_time or self._step_model(gpu, tp)
            kv = kv_capacity_tokens(self.model, gpu, tp, self.gpu_memory_utilization)
            batch = spec.max_batch_size or self.max_batch_size
            tokens = spec.max_batched_tokens or self.max_batched_tokens
            pools.append(PreparedPool(name, tuple(slots), gpu, tp, step, kv, batch, tokens, spec))
            rows.append(self._rows(slots, tp, gpu))
        decode = pools[1]
        self.prepared = _Prepared(stream, tuple(ids), decode.gpu, decode.step_time,
                                  decode.kv_capacity, tuple(pools))  # fmt: skip
        rows = pd.concat(rows, ignore_index=True)
        if trace.empty and not len(trace.columns):
            return rows
        return pd.concat([trace, rows], ignore_index=True)

    def _rows(self, ids: list, tp: int, gpu: GPUSpec) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "job_id": ids,
                "submit_time": math.inf,
                "duration": math.inf,
                "num_gpus": tp,
                "gpu_type": gpu.name,
                "kind": "infer",
                "queue": self.name,
                "priority": self.priority,
            }
        )

    def processes(self) -> list:
        """The controller process of this service (one per run)."""
        return [self._process]

    def _process(self, sim: Simulation):
        if self.prepared is None:
            raise RuntimeError(f"service {self.name!r}: call prepare(trace, cluster) first")
        if self.pools:
            from simulator.models.serving.disagg_run import DisaggServiceRun  # imports this module

            run = DisaggServiceRun(self, self.prepared, sim)
        else:
            run = ServiceRun(self, self.prepared, sim)
        self._runs[sim] = run
        yield from run.control()

    def run_of(self, sim: Simulation) -> ServiceRun:
        """The state of this service in simulation ``sim``.

        Raises:
            KeyError: the service did not take part in ``sim``.
        """
        return self._runs[sim]

    def job_columns(self, sim: Simulation) -> dict[str, np.ndarray]:
        """``service`` (name on replica rows, else "") and ``served_requests`` per job."""
        run = self.run_of(sim)
        service = np.full(sim.jobs.n, "", dtype=object)
        served = np.zeros(sim.jobs.n, dtype=np.int64)
        for rep in run.replicas:
            service[rep.job] = self.name
            served[rep.job] = rep.served
        return {"service": service, "served_requests": served}

    def summary(self, sim: Simulation) -> dict:
        """``{"serving": {name: {...}}}``: request latencies, SLO attainment, goodput, replicas."""
        return {"serving": {self.name: self.run_of(sim).summary()}}

    def tables(self, sim: Simulation) -> dict[str, pd.DataFrame]:
        """``requests`` (one row per request) and ``replicas`` (replica counts over time)."""
        run = self.run_of(sim)
        return {"requests": run.request_frame(), "replicas": run.replica_frame()}

    # ------------------------------------------------------------------ helpers
    def _take_requests(self, trace: pd.DataFrame) -> tuple[pd.DataFrame, RequestStream]:
        if self.requests is not None:
            return trace, self.requests.load()
        cols = {"kind", "prompt_tokens", "output_tokens"}
        if not cols <= set(trace.columns):
            raise ValueError(
                f"service {self.name!r} has no requests source and the trace has "
                f"no kind=infer rows with {sorted(cols - {'kind'})}"
            )
        mine = (trace["kind"] == "infer") & trace["prompt_tokens"].notna()
        return trace.loc[~mine].reset_index(drop=True), RequestStream.from_frame(trace[mine])

    def _gpu(self, cluster: ClusterSpec, name: str | None = None, tp: int | None = None) -> GPUSpec:
        """The replicas' GPU model (default: the service's), checked to hold ``tp`` GPUs."""
        models = {m for m, g in zip(cluster.gpu_models, cluster.gpus, strict=True) if g > 0}
        name = self.gpu_type if name is None else name
        tp = self.tp if tp is None else tp
        if name is None:
            if len(models) != 1:
                raise ValueError(
                    f"service {self.name!r}: set gpu_type, the cluster has {sorted(models)}"
                )
            name = next(iter(models))
        spec = gpu_spec(name)
        have = sum(
            int(g) for m, g in zip(cluster.gpu_models, cluster.gpus, strict=True) if m == spec.name
        )
        if have < tp:
            raise ValueError(
                f"service {self.name!r}: a replica needs {tp} x {spec.name}, the cluster has {have}"
            )
        return spec

    def _step_model(self, gpu: GPUSpec, tp: int | None = None) -> StepTime:
        tp = self.tp if tp is None else tp
        if self.step_profile is not None:
            return TableStepTime.from_csv(self.step_profile, self.model.name, gpu.name, tp)
        return RooflineStepTime(self.model, gpu, tp, **self.roofline)


def _replica_ids(trace: pd.DataFrame, name: str, n: int) -> list:
    """Ids of ``n`` replica rows (ints after the largest int id, else ``NAME-replica-K``).

    Raises:
        ValueError: a trace job already has one of these ids (the message names it).
    """
    if "job_id" in trace.columns and len(trace) and pd.api.types.is_integer_dtype(trace["job_id"]):
        first = int(trace["job_id"].max()) + 1
        return list(range(first, first + n))
    ids = [f"{name}-replica-{k}" for k in range(n)]
    if "job_id" in trace.columns and len(trace):
        taken = trace["job_id"].astype(str)
        clash = taken[taken.isin(ids)]
        if len(clash):
            rows = f"{n} replica rows ({ids[0]} to {ids[-1]})" if n > 1 else "replica row"
            raise ValueError(
                f"service {name!r}: trace job id {clash.iloc[0]!r} (row {clash.index[0]}) is also "
                f"the id of the service's {rows}; rename that trace job or give the service "
                "another name (serving.name=...)"
            )
    return ids


class ServingGroup:
    """Several services in one run; each reports under its own name.

    Args:
        services: the services (distinct names).
    """

    def __init__(self, services: list[Service]) -> None:
        names = [s.name for s in services]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be distinct, got {names}")
        self.services = list(services)

    def prepare(self, trace: pd.DataFrame, cluster: ClusterSpec) -> pd.DataFrame:
        """Each service's :meth:`Service.prepare`, in order."""
        for s in self.services:
            trace = s.prepare(trace, cluster)
        return trace

    def processes(self) -> list:
        """All services' controller processes."""
        return [p for s in self.services for p in s.processes()]

    def job_columns(self, sim: Simulation) -> dict[str, np.ndarray]:
        """As :meth:`Service.job_columns`, over all services."""
        cols = [s.job_columns(sim) for s in self.services]
        service = cols[0]["service"].copy()
        served = sum(c["served_requests"] for c in cols)
        for c in cols[1:]:
            service = np.where(c["service"] != "", c["service"], service)
        return {"service": service, "served_requests": served}

    def summary(self, sim: Simulation) -> dict:
        """``{"serving": {name: {...}, ...}}``."""
        return {"serving": {s.name: s.run_of(sim).summary() for s in self.services}}

    def tables(self, sim: Simulation) -> dict[str, pd.DataFrame]:
        """The services' ``requests`` and ``replicas`` tables, concatenated."""
        parts = [s.tables(sim) for s in self.services]
        return {
            k: pd.concat([p[k] for p in parts], ignore_index=True) for k in ("requests", "replicas")
        }


class ServiceRun:
    """State of one service during one simulation: requests, replicas, router, autoscaling.

    Args:
        service: the service configuration.
        prepared: what :meth:`Service.prepare` resolved (requests, GPU, step model, KV size).
        sim: the simulation.
    """

    def __init__(self, service: Service, prepared: _Prepared, sim: Simulation) -> None:
        self.service, self.sim, self.env = service, sim, sim.env
        s = prepared.stream
        self.arrival, self.prompt, self.output = s.arrival, s.prompt_tokens, s.output_tokens
        self.report = dict(s.report)
        n = self.n = len(s)
        self.sched = np.full(n, np.nan)
        self.first = np.full(n, np.nan)
        self.end = np.full(n, np.nan)
        self.replica_of = np.full(n, -1, dtype=np.int32)
        self.restarts = np.zeros(n, dtype=np.int32)
        self.status = np.zeros(n, dtype=np.int8)
        self.step_time, self.kv_capacity = prepared.step_time, prepared.kv_capacity
        self.footprint = self.kv_need = self.prompt + self.output
        """KV tokens a running request holds (outside cached blocks), and in all."""
        self.cache_hits: tuple[np.ndarray, np.ndarray] | None = None
        self.kv_preemptions: np.ndarray | None = None
        kind = Replica
        if service.prefix_cache:
            kind = CachingReplica
            self._cache_setup(s)
        elif service.kv_preemption:
            kind = PreemptingReplica
            self.generated = np.zeros(n, np.int64)
            """Output tokens a preempted request had generated (recomputed on readmission)."""
            self.kv_preemptions = np.zeros(n, np.int32)
            self.recomputed_tokens = 0
        self.replicas = self._make_replicas(kind, prepared)
        self.routable: list[Replica] = []
        self.pending: deque[int] = deque()
        self.dispatching = False
        """A dispatch of the pending requests is due (the run is its own replica pool)."""
        self.router = make_router(service.router, load_cap=service.affinity_load_cap)
        self.next_arrival = 0
        self.done = 0
        self.closed = False
        self.outstanding = self.queued = 0
        self.t_last = self.area_out = self.area_queued = 0.0
        self.win_met = self.win_count = 0
        self.target = 0
        self.counts = {
            "scale_outs": 0,
            "scale_ins": 0,
            "replica_losses": 0,
            "slots_exhausted": 0,
            "replicas_unplaceable": 0,
        }
        self.timeline: list[tuple] = []
        self.decisions: list[tuple[float, int, int]] = []
        """Autoscaler decisions: ``(time, desired, stabilised target)``."""
        self.events: list[tuple] | None = [] if sim.record_events else None
        self._heap: list = []
        self._seq = 0
        self._wake_at = math.inf
        self._wake_ev: object = None
        self._by_job = {rep.job: rep for rep in self.replicas}
        sim.listen(self._by_job, on_start=self._job_started, on_stop=self._job_stopped)
        self._status, self._run_start = sim.jobs.status, sim.jobs.run_start
        self._preempt, self._restart = sim.jobs.preemptions, sim.jobs.restarts

    def _make_replicas(self, kind: type, prepared: _Prepared) -> list[Replica]:
        return [kind(self, k, j) for k, j in enumerate(_slot_jobs(self.sim, prepared))]

    def _cache_setup(self, s: PrefixRequestStream) -> None:
        """Per-request block lists and KV footprints of prefix caching."""
        b = self.block_tokens = s.block_tokens
        hashes, offsets = s.block_hashes, s.block_offsets
        nblocks = np.diff(offsets)
        self.blocks = lambda r: hashes[offsets[r] : offsets[r + 1]].tolist()
        self.footprint = self.output + np.maximum(self.prompt - b * nblocks, 0)
        self.kv_need = self.footprint + b * nblocks
        self.nblocks = nblocks
        self.cache_hits = (np.zeros(self.n, np.int64), np.zeros(self.n, np.int64))

    def cache_hit(self, r: int, blocks: int, tokens: int) -> None:
        """Request ``r`` was admitted with ``blocks`` cached leading blocks (``tokens`` saved)."""
        self.cache_hits[0][r] = blocks
        self.cache_hits[1][r] = tokens
        if blocks:
            self.log(r, f"cache_hit {blocks} blocks {tokens} tokens")

    def kv_preempted(self, r: int, tokens: int) -> None:
        """Request ``r`` was preempted (KV full), losing ``tokens`` cached tokens; it requeues."""
        self.kv_preemptions[r] += 1
        self.recomputed_tokens += int(tokens)
        self._touch()
        self.queued += 1
        self.log(r, "kv_preempt")

    # ------------------------------------------------------------------ plumbing
    def _call(self, delay: float, fn, priority: int, value: object = None) -> None:
        """Call ``fn(value)`` after ``delay`` s; same-time calls run by ``priority``, then order.

        The service keeps its own event heap and one SimPy timeout at its earliest time (public
        SimPy API only): at that instant it runs every call due, lowest priority first
        (``ARRIVAL`` < ``ITERATION`` < ``POLL``), including those added while it runs.
        """
        t = self.env.now + delay
        heapq.heappush(self._heap, (t, priority, self._seq, fn, value))
        self._seq += 1
        if t < self._wake_at:
            self._wake_at = t
            ev = self._wake_ev = self.env.timeout(delay)
            ev.callbacks.append(self._wake)

    def _wake(self, ev) -> None:
        if ev is not self._wake_ev:
            return  # an earlier call superseded this wake-up
        heap, now = self._heap, self.env.now
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            _, _, _, fn, value = pop(heap)
            fn(value)
        if heap:
            self._wake_at = t = heap[0][0]
            ev = self._wake_ev = self.env.timeout(t - now)
            ev.callbacks.append(self._wake)
        else:
            self._wake_at = math.inf
            self._wake_ev = None

    def log(self, subject: object, what: str) -> None:
        """Record ``(time, subject, event)`` when the simulation records events."""
        if self.events is not None:
            self.events.append((self.env.now, subject, what))

    def _touch(self) -> None:
        now = self.env.now
        dt = now - self.t_last
        if dt:
            self.area_out += self.outstanding * dt
            self.area_queued += self.queued * dt
            self.t_last = now

    # ------------------------------------------------------------------ controller
    def control(self):
        """The service's SimPy process: first replicas, arrivals, then autoscaling decisions."""
        if self.n:
            # the controller may start after t = 0 (a user process delaying it): requests that
            # arrived before then are taken at once, a later first arrival exactly on time
            first = max(float(self.arrival[0]) - self.env.now, 0.0)
            self._call(first, self._on_arrival, ARRIVAL)
        scaler = self.service.autoscaler
        initial = self.service.replicas if scaler is None else scaler.initial_replicas
        self.scale_to(initial, warm=self.service.warm_start, initial=True)
        if not self.n:
            self.close()
        if scaler is None:
            return
        recent: deque = deque()
        while not self.closed:
            start = self.env.now
            self._touch()
            self.area_out = self.area_queued = 0.0
            self.win_met = self.win_count = 0
            yield self.env.timeout(scaler.interval_s)
            if self.closed:
                break
            target = scaler.target(recent, self.observe(self.env.now - start))
            self.decisions.append((self.env.now, recent[-1][1], target))
            self.scale_to(target)

    def observe(self, window: float) -> Observation:
        """Averages over the last ``window`` seconds for the autoscaler."""
        self._touch()
        active = [r.state for r in self.replicas]
        return Observation(
            now=self.env.now,
            provisioned=sum(s in (PENDING, LOADING, READY) for s in active),
            ready=sum(s == READY for s in active),
            avg_outstanding=self.area_out / window,
            avg_queued=self.area_queued / window,
            ttft_met=self.win_met,
            ttft_count=self.win_count,
            max_batch_size=self.service.max_batch_size,
        )

    def scale_to(self, target: int, warm: bool = False, initial: bool = False) -> None:
        """Bring the provisioned replicas to ``target``: un-drain or submit, or drain/stop."""
        self.target = target
        self._scale(self.replicas, target, warm, initial)
        self.record()

    def _scale(self, replicas: list[Replica], target: int, warm: bool, initial: bool) -> None:
        """Bring the provisioned replicas among ``replicas`` to ``target``."""
        active = [r for r in replicas if r.state in (PENDING, LOADING, READY)]
        n = len(active)
        if target > n:
            self.counts["scale_outs"] += 0 if initial else 1
            for rep in sorted(
                (r for r in replicas if r.state == DRAINING), key=lambda r: -r.outstanding
            ):
                if n >= target:
                    break
                rep.state = READY
                self._add_routable(rep)
                self.log(rep.label, "undrain")
                n += 1
            spare = (r for r in replicas if r.state == DORMANT)
            while n < target:
                rep = next(spare, None)
                if rep is None:
                    self.counts["slots_exhausted"] += 1
                    break
                self._submit(rep, warm)
                n += 1
        elif target < n:
            self.counts["scale_ins"] += 1
            order = {PENDING: 0, LOADING: 1, READY: 2}
            active.sort(key=lambda r: (order[r.state], r.outstanding, -r.slot))
            for rep in active[: n - target]:
                if rep.state == READY:
                    self._drain(rep)
                else:
                    self._stop(rep)

    def _submit(self, rep: Replica, warm: bool) -> None:
        rep.state = PENDING
        rep.warm = warm
        self.log(rep.label, "submit")
        self.sim.submit(rep.job)
        self._call(0.0, self._poll, POLL, rep)

    def _job_started(self, j: int) -> None:
        """The engine started replica job ``j`` (told right after the pass that placed it)."""
        rep = self._by_job[j]
        if rep.state == PENDING:
            self._placed(rep)

    def _job_stopped(self, j: int) -> None:
        """Replica job ``j`` stopped running (preempted, killed, migrated, or stopped by us)."""
        rep = self._by_job[j]
        if rep.state in (LOADING, READY, DRAINING) and not self.alive(rep):
            self.lost(rep)

    def _poll(self, value: object) -> None:
        """A pending replica's job that never starts (unschedulable, rejected) never serves."""
        rep: Replica = value
        if rep.state != PENDING:
            return
        st = self._status[rep.job]
        if st == Status.QUEUED:
            self._call(self.service.poll_interval_s, self._poll, POLL, rep)
            return
        if st == Status.RUNNING:
            self._placed(rep)
            return
        rep.state = STOPPED
        self.counts["replicas_unplaceable"] += 1
        self.record()

    def _placed(self, rep: Replica) -> None:
        j = rep.job
        rep.run_start = float(self._run_start[j])
        rep.epoch = int(self._preempt[j] + self._restart[j])
        rep.state = LOADING
        self.log(rep.label, "placed")
        delay = 0.0 if rep.warm else self.service.load_delay_s
        ready_at = max(self.env.now, rep.run_start + delay)
        self._call(ready_at - self.env.now, self._ready, ITERATION, (rep, rep.epoch))
        self.record()

    def _ready(self, value: object) -> None:
        rep, epoch = value
        if rep.state != LOADING or rep.epoch != epoch:
            return
        if not self.alive(rep):
            self.lost(rep)
            return
        rep.state = READY
        rep.warm = False
        self.log(rep.label, "ready")
        self._add_routable(rep)
        pool = rep.pool
        if pool.pending and not pool.dispatching:
            # after every replica that becomes ready at this instant, so that they share
            pool.dispatching = True
            self._call(0.0, self._dispatch, POLL, pool)
        self.record()

    def _dispatch(self, value: object) -> None:
        pool = value
        pool.dispatching = False
        while pool.pending and pool.routable:
            pool.route(pool.pending.popleft())

    def _add_routable(self, rep: Replica) -> None:
        routable = rep.pool.routable
        routable.append(rep)
        routable.sort(key=lambda r: r.slot)

    def _drain(self, rep: Replica) -> None:
        rep.state = DRAINING
        rep.pool.routable.remove(rep)
        self.log(rep.label, "drain")
        if rep.outstanding == 0 and not rep.busy:
            self._stop(rep)

    def _stop(self, rep: Replica) -> None:
        if rep in rep.pool.routable:
            rep.pool.routable.remove(rep)
        if self._status[rep.job] in (Status.RUNNING, Status.QUEUED):
            self.sim.stop(rep.job)
        rep.state = STOPPED
        self.log(rep.label, "stop")
        self.record()

    def alive(self, rep: Replica) -> bool:
        """Does ``rep`` still hold the placement it was loaded on?"""
        j = rep.job
        return (
            self._status[j] == Status.RUNNING
            and self._run_start[j] == rep.run_start
            and self._preempt[j] + self._restart[j] == rep.epoch
        )

    def lost(self, rep: Replica) -> None:
        """``rep`` lost its GPUs: back to pending (or stopped), its requests start over."""
        admitted = rep.admitted_requests
        reqs = rep.take_all()
        if rep in rep.pool.routable:
            rep.pool.routable.remove(rep)
        self.counts["replica_losses"] += 1
        self.log(rep.label, "lost")
        was_draining = rep.state == DRAINING
        rep.state = PENDING
        if was_draining or self._status[rep.job] not in (Status.QUEUED, Status.RUNNING):
            self._stop(rep)
        else:
            self._call(0.0, self._poll, POLL, rep)
        self._touch()
        self.queued += admitted
        for r in reqs:
            self.restarts[r] += 1
            self.route(r)
        self.record()

    def record(self) -> None:
        """Append a row of replica counts (one row per instant: a later change replaces it)."""
        states = [r.state for r in self.replicas]
        row = (
            self.env.now,
            states.count(PENDING),
            states.count(LOADING),
            states.count(READY),
            states.count(DRAINING),
            self.target,
        )
        if self.timeline and self.timeline[-1][0] == row[0]:
            self.timeline[-1] = row
        elif not self.timeline or self.timeline[-1][1:] != row[1:]:
            self.timeline.append(row)

    def close(self) -> None:
        """Every request is done: stop all replicas."""
        self.closed = True
        for rep in self.replicas:
            if rep.state in (PENDING, LOADING, READY, DRAINING):
                self._stop(rep)
        self.target = 0
        self.record()

    # ------------------------------------------------------------------ requests
    def _on_arrival(self, value: object) -> None:
        now, arrival = self.env.now, self.arrival
        i, n = self.next_arrival, self.n
        while i < n and arrival[i] <= now:
            self._arrive(i)
            i += 1
        self.next_arrival = i
        if i < n:
            self._call(float(arrival[i]) - now, self._on_arrival, ARRIVAL)

    def _arrive(self, r: int) -> None:
        self.log(r, "arrive")
        if self.kv_need[r] > self.kv_capacity:
            self.status[r] = REJECTED
            self.log(r, "reject")
            self._count_done()
            return
        self._touch()
        self.outstanding += 1
        self.queued += 1
        self.route(r)

    def route(self, r: int) -> None:
        """Send request ``r`` to a routable replica, or hold it until one is ready."""
        routable = self.routable
        while routable:
            rep = routable[0] if len(routable) == 1 else self.router.choose(routable, r)
            if self.alive(rep):
                self.replica_of[r] = rep.slot
                self.log(r, f"route {rep.label}")
                rep.enqueue(r)
                return
            self.lost(rep)
        self.pending.append(r)

    def admitted(self, r: int, now: float, rep: Replica) -> None:
        """Request ``r`` joined ``rep``'s batch."""
        if self.sched[r] != self.sched[r]:
            self.sched[r] = now
        self._touch()
        self.queued -= 1
        self.log(r, "admit")

    def first_token(self, r: int, now: float) -> None:
        """Request ``r`` produced its first output token."""
        if self.first[r] == self.first[r]:
            return  # restarted after a replica loss: the user saw it already
        self.first[r] = now
        self.win_count += 1
        if now - self.arrival[r] <= self.service.ttft_slo_s:
            self.win_met += 1
        self.log(r, "first_token")

    def finished(self, r: int, now: float, rep: Replica) -> None:
        """Request ``r`` produced its last token."""
        if self.first[r] != self.first[r]:
            self.first_token(r, now)
        self.end[r] = now
        self.status[r] = DONE
        self._touch()
        self.outstanding -= 1
        self.log(r, "finish")
        self._count_done()

    def _count_done(self) -> None:
        self.done += 1
        if self.done == self.n:
            self.close()

    def idle(self, rep: Replica) -> None:
        """``rep`` has nothing to do: a draining replica stops."""
        if rep.state == DRAINING:
            self._stop(rep)

    # ------------------------------------------------------------------ results
    def request_frame(self) -> pd.DataFrame:
        """One row per request (times in s; NaN where the request never got that far)."""
        out = self.output
        tpot = np.full(self.n, np.nan)
        many = out > 1
        tpot[many] = (self.end[many] - self.first[many]) / (out[many] - 1)
        ttft = self.first - self.arrival
        extra = {}  # columns of the optional mechanisms (none by default)
        if self.cache_hits is not None:
            extra = {"cached_blocks": self.cache_hits[0], "cached_tokens": self.cache_hits[1]}
        if self.kv_preemptions is not None:
            extra = {"kv_preemptions": self.kv_preemptions}
        return pd.DataFrame(
            {
                "service": self.service.name,
                "request": np.arange(self.n),
                "arrival_time": self.arrival,
                "prompt_tokens": self.prompt,
                "output_tokens": out,
                "replica": self.replica_of,
                "queueing_delay": self.sched - self.arrival,
                "ttft": ttft,
                "tpot": tpot,
                "e2e_latency": self.end - self.arrival,
                "first_token_time": self.first,
                "end_time": self.end,
                "status": REQUEST_STATUS[self.status],
                "restarts": self.restarts,
                "slo_met": self.slo_met(ttft, tpot),
                **extra,
            }
        )

    def slo_met(self, ttft: np.ndarray, tpot: np.ndarray) -> np.ndarray:
        """Finished requests within the TTFT target and (if >1 output token) the TPOT target."""
        s = self.service
        ok_tpot = np.isnan(tpot) | (tpot <= s.tpot_slo_s)
        return (self.status == DONE) & (ttft <= s.ttft_slo_s) & ok_tpot

    def replica_frame(self) -> pd.DataFrame:
        """Replica counts by state over time (a row at every change)."""
        cols = ["time", "pending", "loading", "ready", "draining", "target"]
        f = pd.DataFrame(self.timeline, columns=cols)
        f.insert(1, "service", self.service.name)
        return f

    def summary(self) -> dict:
        """Headline numbers of this service (JSON-serialisable; None where undefined)."""
        f = self.request_frame()
        return _summary(self, f)


def _slot_jobs(sim: Simulation, prepared: _Prepared) -> list[int]:
    """Job-table indices of the service's replica rows (still dormant when the run starts)."""
    dormant = np.flatnonzero(np.isinf(sim.jobs.submit))
    index = dict(zip(sim.jobs.job_ids[dormant].tolist(), dormant.tolist(), strict=True))
    return [index[i] for i in prepared.slot_ids]


def _pct(x: np.ndarray, q: float) -> float | None:
    x = x[~np.isnan(x)]
    return float(np.percentile(x, q)) if x.size else None


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else None


def _summary(run: ServiceRun, f: pd.DataFrame) -> dict:
    done = (f["status"] == "finished").to_numpy()
    met = f["slo_met"].to_numpy()
    arrival, end = f["arrival_time"].to_numpy(), f["end_time"].to_numpy()
    span = float(np.nanmax(end) - arrival.min()) if done.any() else 0.0
    n = max(run.n, 1)
    out = {
        "requests": run.n,
        "finished": int(done.sum()),
        "rejected": int((f["status"] == "rejected").sum()),
        "unfinished": int((f["status"] == "unfinished").sum()),
        "slo_attainment": float(met.sum() / n),
        "ttft_attainment": float((f["ttft"] <= run.service.ttft_slo_s).sum() / n),
        "tpot_attainment": float(
            (done & ~(f["tpot"] > run.service.tpot_slo_s).to_numpy()).sum() / n
        ),
        "goodput_rps": float(met.sum() / span) if span > 0 else None,
        "throughput_rps": float(done.sum() / span) if span > 0 else None,
        "output_tokens_per_s": float(f["output_tokens"][done].sum() / span) if span else None,
        "span_s": span,
    }
    for col in ("ttft", "tpot", "e2e_latency", "queueing_delay"):
        x = f[col].to_numpy(np.float64)
        out[f"avg_{col}"] = _mean(x)
        for q in (50, 90, 99):
            out[f"p{q}_{col}"] = _pct(x, q)
    out.update(_replica_summary(run))
    out.update(run.counts)
    out["iterations"] = int(sum(r.iterations for r in run.replicas))
    out["kv_capacity_tokens"] = int(run.kv_capacity)
    if run.cache_hits is not None:
        out["prefix_cache"] = _cache_summary(run, f)
    if run.kv_preemptions is not None:
        out["kv_preemptions"] = int(run.kv_preemptions.sum())
        out["kv_preempted_requests"] = int((run.kv_preemptions > 0).sum())
        out["recomputed_tokens"] = int(run.recomputed_tokens)
    out["request_report"] = run.report
    return out


def _replica_summary(run: ServiceRun) -> dict:
    jobs = run.sim.jobs
    slots = np.array([r.job for r in run.replicas], dtype=np.int64)
    used = np.array([r.state != DORMANT for r in run.replicas])
    # over the service's life: from its first replica row to its last (all stopped) or now
    t = np.array([row[0] for row in run.timeline] + ([] if run.closed else [run.env.now]))
    ready = np.array([row[3] for row in run.timeline], dtype=np.float64)[: max(len(t) - 1, 0)]
    dt = np.diff(t)
    horizon = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    return {
        "replica_gpu_seconds": float(jobs.gpu_seconds[slots].sum()) if slots.size else 0.0,
        "replicas_started": int(used.sum()),
        "replica_jobs_unused": int((~used).sum()),
        "avg_ready_replicas": float((ready * dt).sum() / horizon) if horizon > 0 else None,
        "max_ready_replicas": max((row[3] for row in run.timeline), default=0),
    }


def _cache_summary(run: ServiceRun, f: pd.DataFrame) -> dict:
    """Prefix-cache figures over the admitted requests (each counted at its last admission)."""
    admitted = ~np.isnan(run.sched)
    blocks = int(run.nblocks[admitted].sum())
    hit = int(f["cached_blocks"].to_numpy()[admitted].sum())
    prompt = int(run.prompt[admitted].sum())
    saved = int(f["cached_tokens"].to_numpy()[admitted].sum())
    return {
        "block_tokens": int(run.block_tokens),
        "capacity_blocks": int(run.kv_capacity // run.block_tokens),
        "lookup_blocks": blocks,
        "hit_blocks": hit,
        "block_hit_ratio": hit / blocks if blocks else None,
        "prompt_tokens": prompt,
        "saved_prefill_tokens": saved,
        "token_hit_ratio": saved / prompt if prompt else None,
        "requests_with_hit": int((f["cached_blocks"].to_numpy()[admitted] > 0).sum()),
        "evicted_blocks": int(sum(r.evicted for r in run.replicas)),
    }
