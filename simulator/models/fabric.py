"""Network fabric: where a gang runs changes how fast it runs.

A :class:`Fabric` is the engine's ``fabric`` extension (``setup``/``on_start``/``on_stop``, see
:mod:`simulator.core.extensions`). It models data-parallel training jobs whose every iteration is
compute plus one ring all-reduce of the gradients, and answers, whenever a job starts or
stops, the new speed (rate) of every job whose speed changes.

Tiers, from fast to slow: ``nvlink`` (inside an NVLink domain: a node, or a multi-node domain
such as a GB200 NVL72 rack), ``leaf`` (across domains under one leaf switch = the cluster's
rack) and ``spine`` (across leaves, through the leaves' oversubscribed uplinks).

* **All-reduce** (NCCL's ring model, bus-bandwidth form):
  ``t_comm = lat + S * 2(n-1)/n / busbw`` with ``S`` the gradient bytes per iteration and
  ``lat = 2(n-d) a_nvlink + 2(d-l) a_leaf + 2(l-1) a_spine`` (NCCL splits the ``2(n-1)``
  ring steps into intra- and inter-node steps; ``d`` domains, ``l`` leaves used).
  ``busbw`` is the slowest tier crossed: ``nvlink`` bandwidth per GPU; the job's NIC
  bandwidth in its thinnest domain (NCCL runs one ring per NIC, each ring leaves every domain
  once, so a domain holding ``g`` of the job's GPUs offers ``g`` NICs); and, across the spine,
  the job's max-min fair share of the uplinks of every leaf it uses.
* **Iteration**: ``t_iter = max(t_comp, f * t_comm) + (1 - f) * t_comm`` with overlap fraction
  ``f`` (0 = communication after compute, 1 = fully hidden behind compute when shorter).
* **Rate**: the trace ``duration`` is the run time under the ideal (most compact) placement on
  an idle fabric, so ``rate = t_iter(ideal) / t_iter(actual)``; exactly 1.0 at the ideal.
* **Contention**: a spine-crossing job is a flow on the uplink of each of its leaves, capped by
  its other tiers; flows share uplinks max-min fairly (progressive filling). On a start or stop
  only the connected component of flows and uplinks it touches is recomputed.

Communication volume per job comes from optional trace columns (``comm_bytes`` per iteration,
else ``model_params`` x ``bytes_per_param``; ``iterations``); without them a job spends
``comm_fraction`` of its ideal iteration in all-reduce (by job size). Units: bytes, seconds,
bytes/s; constructor arguments use datasheet units (GB/s, Gb/s, microseconds).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping

import numpy as np
import pandas as pd

from simulator.core.jobs import Status
from simulator.models.fabric_kernels import _max_min_fair, _profile

__all__ = [
    "Fabric",
    "NoFabric",
    "TIERS",
    "TOPOLOGIES",
    "allreduce_time",
    "iteration_time",
]

TIERS = ("none", "nvlink", "leaf", "spine")
"""Highest tier a placement's all-reduce crosses (``none`` = the job does not communicate)."""
NONE, NVLINK, LEAF, SPINE = 0, 1, 2, 3
TOPOLOGIES = ("single_switch", "leaf_spine", "rail_optimized")
"""Fabric topologies (``none`` is :class:`NoFabric`)."""


class NoFabric:
    """``fabric=none``: placement never changes a job's speed.

    Deliberately not a fabric (it has no ``on_start``): :func:`simulator.core.extensions.fabric_of`
    finds no fabric and the engine runs exactly as without one.
    """

    def __repr__(self) -> str:
        return "NoFabric()"


def allreduce_time(n: int, nbytes: float, busbw: float, latency: float = 0.0) -> float:
    """Ring all-reduce time in seconds: ``latency + nbytes * 2(n-1)/n / busbw``.

    Args:
        n: GPUs in the ring.
        nbytes: bytes reduced (the gradient size ``S``).
        busbw: bus bandwidth in bytes/s (NCCL's ``busbw``: the slowest link of the ring).
        latency: total per-step latency in seconds (``sum of a_tier * steps_tier``).
    """
    if n <= 1:
        return 0.0
    return latency + nbytes * 2.0 * (n - 1) / n / busbw


def iteration_time(compute: float, comm: float, overlap: float) -> float:
    """Seconds per iteration: ``max(compute, overlap * comm) + (1 - overlap) * comm``."""
    return max(compute, overlap * comm) + (1.0 - overlap) * comm


def _ring_latency(n: int, d: int, leaves: int, a_nvl: float, a_leaf: float, a_spine: float):
    """Per-step latencies of a ring over ``n`` GPUs in ``d`` domains and ``leaves`` leaves."""
    return 2 * (n - d) * a_nvl + 2 * (d - leaves) * a_leaf + 2 * (leaves - 1) * a_spine


def _fraction_table(comm_fraction: Mapping | float) -> list[tuple[int, float]]:
    """``comm_fraction`` (a number, or ``{min_gpus: fraction}``) as sorted ``(gpus, f)`` pairs.

    Raises:
        ValueError: neither a number nor a mapping of job sizes to numbers, or out of range.
    """
    usage = (
        "comm_fraction: expected a number in [0, 1) (every job of >= 2 GPUs) or a map "
        '{min GPUs: fraction}, e.g. fabric.comm_fraction="{2: 0.1, 16: 0.3}"; got '
    )
    if isinstance(comm_fraction, bool):
        raise ValueError(f"{usage}{comm_fraction!r}")
    if isinstance(comm_fraction, int | float):
        table = {2: float(comm_fraction)}
    elif isinstance(comm_fraction, Mapping):
        try:
            table = {int(k): float(v) for k, v in comm_fraction.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{usage}{dict(comm_fraction)!r}") from None
    else:
        raise ValueError(f"{usage}{comm_fraction!r}")
    for k, v in table.items():
        if k < 1 or not 0.0 <= v < 1.0:
            raise ValueError(
                f"comm_fraction: {k} GPUs -> {v}; keys are job sizes >= 1, values in [0, 1)"
            )
    return sorted(table.items())


class Fabric:
    """Topology-aware all-reduce cost with max-min fair sharing of oversubscribed uplinks.

    Args:
        topology: ``single_switch`` (one non-blocking switch: racks ignored), ``leaf_spine``
            (leaf = the cluster's rack, uplinks oversubscribed) or ``rail_optimized`` (leaf =
            the rack's rail group; with ``pxn`` false a job whose nodes use different GPU slots
            must cross rails through the spine).
        nvlink_gb_per_s: NVLink bus bandwidth per GPU inside a domain, GB/s (1e9 bytes/s).
        nic_gbit_per_s: line rate of one NIC, Gb/s.
        nics_per_node: NICs per node (the GPUs of a node share them equally).
        oversubscription: leaf downlink : uplink bandwidth ratio (1 = non-blocking).
        nvlink_domain_nodes: consecutive nodes of a rack that share one NVLink domain
            (1 = the node; 18 = GB200 NVL72 with 4-GPU nodes).
        nvlink_latency_us: latency per ring step inside a domain, microseconds.
        leaf_latency_us: latency per ring step between domains under one leaf.
        spine_latency_us: latency per ring step between leaves.
        overlap: fraction of communication that may overlap compute, in [0, 1].
        comm_fraction: share of the ideal iteration spent in all-reduce for jobs without
            ``comm_bytes``/``model_params``: a number (all jobs of >= 2 GPUs) or a mapping
            ``{min_gpus: fraction}`` (the largest key <= the job's GPUs applies).
        iteration_time: seconds per ideal iteration for jobs without ``iterations``.
        bytes_per_param: gradient bytes per parameter (2 = bf16/fp16 gradients).
        pxn: NCCL PXN (rail-optimized only): cross-rail traffic hops over NVLink first.
        record_links: keep the uplink utilisation rows for :meth:`tables`.
        incremental: skip the max-min recomputation when a start or stop provably changes no
            other share (no uplink fills / none was full); ``False`` always recomputes: the
            reference path that tests compare the fast path with (same rates, slower).
        name: preset name shown in the summary.
    """

    def __init__(
        self,
        topology: str,
        nvlink_gb_per_s: float,
        nic_gbit_per_s: float,
        nics_per_node: int,
        oversubscription: float = 1.0,
        nvlink_domain_nodes: int = 1,
        nvlink_latency_us: float = 0.0,
        leaf_latency_us: float = 0.0,
        spine_latency_us: float = 0.0,
        overlap: float = 0.0,
        comm_fraction: Mapping | float = 0.0,
        iteration_time: float = 1.0,
        bytes_per_param: float = 2.0,
        pxn: bool = True,
        record_links: bool = True,
        incremental: bool = True,
        name: str = "",
    ) -> None:
        if topology not in TOPOLOGIES:
            raise ValueError(f"unknown topology {topology!r}; choose one of {TOPOLOGIES}")
        positive = {
            "nvlink_gb_per_s": nvlink_gb_per_s,
            "nic_gbit_per_s": nic_gbit_per_s,
            "nics_per_node": nics_per_node,
            "oversubscription": oversubscription,
            "nvlink_domain_nodes": nvlink_domain_nodes,
            "iteration_time": iteration_time,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ValueError(f"{key} must be > 0, got {value}")
        if not 0.0 <= overlap <= 1.0:
            raise ValueError(f"overlap must lie in [0, 1], got {overlap}")
        for key, value in (
            ("nvlink_latency_us", nvlink_latency_us),
            ("leaf_latency_us", leaf_latency_us),
            ("spine_latency_us", spine_latency_us),
            ("bytes_per_param", bytes_per_param),
        ):
            if not value >= 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        self.topology = topology
        self.nvlink_bw = float(nvlink_gb_per_s) * 1e9
        self.nic_bw = float(nic_gbit_per_s) * 1e9 / 8.0
        self.nics_per_node = int(nics_per_node)
        self.oversubscription = float(oversubscription)
        self.domain_nodes = int(nvlink_domain_nodes)
        self.a_nvl = float(nvlink_latency_us) * 1e-6
        self.a_leaf = float(leaf_latency_us) * 1e-6
        self.a_spine = float(spine_latency_us) * 1e-6
        self.overlap = float(overlap)
        self.fractions = _fraction_table(comm_fraction)
        self.default_iteration = float(iteration_time)
        self.bytes_per_param = float(bytes_per_param)
        self.pxn = bool(pxn)
        self.record_links = bool(record_links)
        self.incremental = bool(incremental)
        self.name = name or topology
        self.recomputes = 0
        """Max-min recomputations done (one per start/stop of a spine-crossing job)."""
        self.rate_changes = 0
        """Rates of already running jobs changed by others' starts and stops."""
        self.fast_paths = 0
        """Spine starts/stops that provably left every other share unchanged (no recompute)."""

    def __repr__(self) -> str:
        return f"Fabric({self.name!r}, topology={self.topology!r})"

    # ------------------------------------------------------------------ setup
    def setup(self, sim) -> None:
        """Read the cluster's nodes and racks and derive every job's communication."""
        self._layout(sim.spec, sim.state)
        self._jobs(sim.jobs)
        n = sim.jobs.n
        self._rate = [1.0] * n
        self._since = [0.0] * n
        self._t_iter = [0.0] * n
        self._t_comm = [0.0] * n
        self._lat = [0.0] * n
        self._cap = [0.0] * n
        self._busbw = [0.0] * n
        self._per_iter: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * n
        # per-job scalars as Python lists: scalar reads/writes on lists are several times
        # cheaper than on NumPy arrays, and they happen on every start and stop
        self._tier = bytearray(n)
        self._bytes = ([0.0] * n, [0.0] * n, [0.0] * n)
        self._comm_seconds = [0.0] * n
        self._run_seconds = [0.0] * n
        self._running: set[int] = set()
        self._flow_leaves: dict[int, tuple[int, ...]] = {}
        self._link_jobs: list[set[int]] = [set() for _ in range(len(self.uplink_cap))]
        self._load = [0.0] * len(self.uplink_cap)
        """Sum of the fair shares (bytes/s) of the flows on each uplink."""
        self._cap_list = self.uplink_cap.tolist()
        self._last_row: list[tuple] = [(0, 0.0, 0.0)] * len(self.uplink_cap)
        self._links = (array("d"), array("q"), array("q"), array("d"), array("d"))
        self._leaf_buf = np.empty(max(int(sim.spec.gpus.sum()), 1), dtype=np.int64)
        self.recomputes = 0
        self.rate_changes = 0
        self.fast_paths = 0

    def _layout(self, spec, state) -> None:
        """Per node: NVLink domain, leaf, NIC bandwidth per GPU; per leaf: uplink capacity."""
        n_nodes = spec.num_nodes
        self.g_max = int(state.gpu_free.shape[1])
        gpus = spec.gpus.astype(np.int64)
        if self.topology == "single_switch":
            leaf = np.zeros(n_nodes, dtype=np.int64)
        else:
            leaf = spec.racks.astype(np.int64)
        order = np.argsort(leaf, kind="stable")
        domain = np.empty(n_nodes, dtype=np.int64)
        next_id, position = 0, 0
        for i, node in enumerate(order):
            if i and leaf[node] != leaf[order[i - 1]]:
                next_id += (position + self.domain_nodes - 1) // self.domain_nodes
                position = 0
            domain[node] = next_id + position // self.domain_nodes
            position += 1
        node_bw = self.nics_per_node * self.nic_bw
        with np.errstate(divide="ignore", invalid="ignore"):
            self.node_nic = np.where(gpus > 0, node_bw / np.maximum(gpus, 1), 0.0)
        self.node_leaf, self.node_domain = leaf, domain
        n_leaves = int(leaf.max()) + 1
        down = np.bincount(leaf, weights=np.full(n_nodes, node_bw), minlength=n_leaves)
        if self.topology == "single_switch":
            self.uplink_cap = np.zeros(0)
        else:
            self.uplink_cap = down / self.oversubscription
        self.domain_gpus = int(np.bincount(domain, weights=gpus).max())
        self.leaf_gpus = int(np.bincount(leaf, weights=gpus).max())
        self.max_node_gpus = int(gpus.max())
        self.gpu_nic = float(self.node_nic[int(np.argmax(gpus))])

    def _ideal(self, n: int) -> tuple[int, float, float]:
        """(tier, busbw in bytes/s, latency in s) of ``n`` GPUs packed as tightly as possible."""
        a = (self.a_nvl, self.a_leaf, self.a_spine)
        if n <= self.domain_gpus:
            return NVLINK, self.nvlink_bw, _ring_latency(n, 1, 1, *a)
        d = -(-n // self.domain_gpus)
        leaves = 1 if n <= self.leaf_gpus else -(-n // self.leaf_gpus)
        per = n // d
        egress = 0.0
        for _ in range(per):  # summed like the placement kernel sums it: same float
            egress += self.gpu_nic
        cap = min(egress, self.nvlink_bw) if -(-n // d) >= 2 else egress
        if leaves == 1:
            return LEAF, cap, _ring_latency(n, d, 1, *a)
        return SPINE, min(cap, float(self.uplink_cap.max())), _ring_latency(n, d, leaves, *a)

    def _fraction(self, n: int) -> float:
        value = 0.0
        for k, v in self.fractions:
            if n >= k:
                value = v
        return value

    def _jobs(self, jobs) -> None:
        """Bytes per iteration, compute time and ideal iteration time of every job."""
        f = jobs.frame
        n = jobs.num_gpus.astype(np.int64)
        size = np.full(jobs.n, np.nan)
        if "comm_bytes" in f.columns:
            size = pd.to_numeric(f["comm_bytes"], errors="coerce").to_numpy(np.float64)
        if "model_params" in f.columns:
            params = pd.to_numeric(f["model_params"], errors="coerce").to_numpy(np.float64)
            size = np.where(np.isnan(size), params * self.bytes_per_param, size)
        t_iter = np.full(jobs.n, self.default_iteration)
        if "iterations" in f.columns:
            iters = pd.to_numeric(f["iterations"], errors="coerce").to_numpy(np.float64)
            ok = np.isfinite(iters) & (iters > 0)
            t_iter[ok] = jobs.duration[ok] / iters[ok]
        if (size[np.isfinite(size)] < 0).any():
            raise ValueError("comm_bytes / model_params must be >= 0")
        comm = (n >= 2) & (jobs.milli >= 1000)
        fraction = np.array([self._fraction(int(k)) for k in n])
        comm &= np.where(np.isnan(size), fraction > 0, size > 0)
        self._communicates = comm
        self.allreduce_bytes = np.where(comm, size, 0.0)
        per_gpu = np.zeros(jobs.n)  # V = S * 2(n-1)/n bytes each GPU sends per iteration
        t_comp = np.zeros(jobs.n)
        t_ideal = np.zeros(jobs.n)
        self.comm_bound = 0
        self.ideal_tier = np.zeros(jobs.n, dtype=np.int8)
        cache: dict[int, tuple[int, float, float]] = {}
        for j in np.flatnonzero(comm):
            k = int(n[j])
            tier, busbw, lat = cache.get(k) or cache.setdefault(k, self._ideal(k))
            if np.isnan(size[j]):  # derive S from the share of the ideal iteration
                volume = max(fraction[j] * t_iter[j] - lat, 0.0) * busbw
                self.allreduce_bytes[j] = volume * k / (2.0 * (k - 1))
            s = self.allreduce_bytes[j]
            per_gpu[j] = s * 2.0 * (k - 1) / k
            c = allreduce_time(k, s, busbw, lat)
            if c <= t_iter[j]:
                t_comp[j] = t_iter[j] - (1.0 - self.overlap) * c
            else:
                self.comm_bound += 1  # communication alone exceeds the trace's iteration
            t_ideal[j] = iteration_time(t_comp[j], c, self.overlap)
            self.ideal_tier[j] = tier
        self._comm = comm.tolist()
        self._n = n.tolist()
        self._volume = per_gpu.tolist()
        self._t_comp = t_comp.tolist()
        self._t_ideal = t_ideal.tolist()

    def notified_jobs(self) -> np.ndarray:
        """The jobs whose starts and stops the model must see: those that communicate.

        Every other job runs at rate 1 wherever it is placed and loads no link, so the engine
        need not report it (``on_start`` would return ``{j: 1.0}`` and ``on_stop`` nothing).
        """
        return self._communicates

    # ------------------------------------------------------------------ events
    def on_start(self, j: int, placement, now: float) -> dict[int, float]:
        """Job ``j`` starts (or moves) on ``placement``: its rate and every changed rate."""
        if not self._comm[j]:
            return {j: 1.0}
        n = self._n[j]
        volume = self._volume[j]
        a = (self.a_nvl, self.a_leaf, self.a_spine)
        if len(placement.nodes) == 1 and self.domain_nodes == 1:
            d, n_leaves, egress, most, aligned = 1, 1, 0.0, n, True
        else:
            d, n_leaves, egress, most, aligned = _profile(
                placement.gpus,
                self.g_max,
                self.node_domain,
                self.node_leaf,
                self.node_nic,
                self._leaf_buf,
            )
        self._running.add(j)
        self._since[j] = now
        if d == 1:
            lat = _ring_latency(n, 1, 1, *a)
            return {j: self._set(j, NVLINK, self.nvlink_bw, lat, (n * volume, 0.0, 0.0))}
        cap = min(egress, self.nvlink_bw) if most >= 2 else egress
        misrailed = self.topology == "rail_optimized" and not self.pxn and not aligned
        if n_leaves == 1 and not misrailed:
            lat = _ring_latency(n, d, 1, *a)
            split = ((n - d) * volume, d * volume, 0.0)
            return {j: self._set(j, LEAF, cap, lat, split)}
        if n_leaves == 1:  # rails crossed through the spine (no PXN)
            lat = _ring_latency(n, d, d, *a)
            split = ((n - d) * volume, 0.0, d * volume)
        else:
            lat = _ring_latency(n, d, n_leaves, *a)
            split = ((n - d) * volume, (d - n_leaves) * volume, n_leaves * volume)
        leaves = tuple(self._leaf_buf[:n_leaves].tolist())
        self._tier[j] = SPINE
        self._lat[j], self._cap[j], self._per_iter[j] = lat, cap, split
        self._flow_leaves[j] = leaves
        for leaf in leaves:
            self._link_jobs[leaf].add(j)
        load, caps = self._load, self._cap_list
        if self.incremental and all(load[leaf] + cap <= caps[leaf] for leaf in leaves):
            # no uplink fills: every other share stays max-min fair, j gets its cap
            self.fast_paths += 1
            self._busbw[j] = cap
            for leaf in leaves:
                load[leaf] = sum(self._busbw[k] for k in self._link_jobs[leaf])
            rate = self._update(j)
            if self.record_links:
                self._record(leaves, now)
            return {j: rate}
        changed: dict[int, float] = {}
        self._share(leaves, now, changed, started=j)
        return changed

    def on_stop(self, j: int, now: float) -> dict[int, float]:
        """Job ``j`` stops: account its traffic, free its uplink share; changed rates."""
        if j not in self._running:
            return {}
        self._accrue(j, now)
        self._running.discard(j)
        leaves = self._flow_leaves.pop(j, None)
        if leaves is None:
            return {}
        load, caps, share = self._load, self._cap_list, self._busbw[j]
        saturated = any(load[leaf] >= caps[leaf] * (1.0 - 1e-9) for leaf in leaves)
        for leaf in leaves:
            self._link_jobs[leaf].discard(j)
            load[leaf] -= share
        if self.incremental and not saturated:
            # none of its uplinks was full, so no other flow was limited there: shares stay
            self.fast_paths += 1
            for leaf in leaves:
                load[leaf] = sum(self._busbw[k] for k in self._link_jobs[leaf])
            if self.record_links:
                self._record(leaves, now)
            return {}
        changed: dict[int, float] = {}
        self._share(leaves, now, changed)
        return changed

    def _set(self, j: int, tier: int, busbw: float, lat: float, split: tuple) -> float:
        """Start-time bookkeeping of a job outside the shared uplinks; returns its rate."""
        self._tier[j] = tier
        self._lat[j], self._cap[j], self._busbw[j], self._per_iter[j] = lat, busbw, busbw, split
        return self._update(j)

    def _update(self, j: int) -> float:
        """Recompute ``j``'s iteration time from its current busbw; returns its rate."""
        comm = self._lat[j] + self._volume[j] / self._busbw[j]
        t = iteration_time(self._t_comp[j], comm, self.overlap)
        self._t_comm[j], self._t_iter[j] = comm, t
        rate = self._t_ideal[j] / t
        self._rate[j] = rate
        return rate

    def _accrue(self, j: int, now: float) -> None:
        """Add ``j``'s traffic and communication time since its last rate change."""
        dt = now - self._since[j]
        if dt > 0.0:
            iters = dt / self._t_iter[j]
            b0, b1, b2 = self._per_iter[j]
            nvl, leaf, spine = self._bytes
            nvl[j] += iters * b0
            leaf[j] += iters * b1
            spine[j] += iters * b2
            self._comm_seconds[j] += iters * self._t_comm[j]
            self._run_seconds[j] += dt
        self._since[j] = now

    def _component(self, seeds: tuple[int, ...]) -> tuple[list[int], list[int]]:
        """Uplinks and flows connected to the uplinks ``seeds`` (through shared flows)."""
        links, flows = list(seeds), []
        seen_links, seen_flows = set(seeds), set()
        at = 0
        while at < len(links):
            for k in self._link_jobs[links[at]]:
                if k not in seen_flows:
                    seen_flows.add(k)
                    flows.append(k)
                    for leaf in self._flow_leaves[k]:
                        if leaf not in seen_links:
                            seen_links.add(leaf)
                            links.append(leaf)
            at += 1
        flows.sort()
        return links, flows

    def _share(self, seeds: tuple[int, ...], now: float, changed: dict, started: int = -1):
        """Max-min fair uplink shares of the flows connected to ``seeds``; fills ``changed``."""
        self.recomputes += 1
        links, flows = self._component(seeds)
        n_links = len(links)
        if not flows:
            for leaf in links:
                self._load[leaf] = 0.0
            if self.record_links:
                self._record(links, now)
            return
        local = {leaf: i for i, leaf in enumerate(links)}
        ptr = np.zeros(len(flows) + 1, dtype=np.int64)
        members: list[int] = []
        for i, k in enumerate(flows):
            members.extend(local[leaf] for leaf in self._flow_leaves[k])
            ptr[i + 1] = len(members)
        on = np.array(members, dtype=np.int64)
        rates = np.empty(len(flows))
        _max_min_fair(
            self.uplink_cap[links], ptr, on, np.array([self._cap[k] for k in flows]), rates
        )
        for k, share in zip(flows, rates.tolist(), strict=True):
            if k == started:
                self._busbw[k] = share
                changed[k] = self._update(k)
            elif share != self._busbw[k]:
                self._accrue(k, now)
                self._busbw[k] = share
                old = self._rate[k]
                rate = self._update(k)
                if rate != old:
                    changed[k] = rate
                    self.rate_changes += 1
        # per-uplink sums, vectorised over the component (flows x their uplinks)
        spans = np.diff(ptr)
        load = np.bincount(on, weights=np.repeat(rates, spans), minlength=n_links)
        for leaf, value in zip(links, load.tolist(), strict=True):
            self._load[leaf] = value
        if self.record_links:
            mean = np.array([self._volume[k] / self._t_iter[k] for k in flows])
            caps = self.uplink_cap[links]
            self._append_rows(
                links,
                np.bincount(on, minlength=n_links).tolist(),
                (np.bincount(on, weights=np.repeat(mean, spans), minlength=n_links) / caps),
                load / caps,
                now,
            )

    def _append_rows(self, links, flows, util, peak, now: float) -> None:
        """Append rows for links whose (flows, utilisation, peak) changed since their last row."""
        t, link, n_flows, u, pk = self._links
        last = self._last_row
        rows = zip(flows, util.tolist(), peak.tolist(), strict=True)
        for leaf, row in zip(links, rows, strict=True):
            if last[leaf] != row:
                last[leaf] = row
                t.append(now)
                link.append(leaf)
                n_flows.append(row[0])
                u.append(row[1])
                pk.append(row[2])

    def _record(self, links, now: float) -> None:
        """Rows for ``links`` computed from their flows (few links: the fast paths)."""
        caps, busbw = self._cap_list, self._busbw
        flows, util, peak = [], [], []
        for leaf in links:
            jobs = self._link_jobs[leaf]
            flows.append(len(jobs))
            util.append(sum(self._volume[k] / self._t_iter[k] for k in jobs) / caps[leaf])
            peak.append(sum(busbw[k] for k in jobs) / caps[leaf])
        self._append_rows(links, flows, np.array(util), np.array(peak), now)

    # ------------------------------------------------------------------ results
    def tiers(self) -> np.ndarray:
        """Tier code (index into :data:`TIERS`) of each job's last placement."""
        return np.frombuffer(bytes(self._tier), dtype=np.int8).copy()

    def _flush(self, now: float) -> None:
        for j in self._running:
            self._accrue(j, now)

    def job_columns(self, sim) -> dict[str, np.ndarray]:
        """Per-job columns: tier of the last placement, bytes per tier, communication share.

        ``fabric_tier`` (``none`` for jobs that do not communicate), ``fabric_ideal_tier``
        (tier of the most compact placement of the job's size), ``bytes_nvlink``,
        ``bytes_leaf``, ``bytes_spine`` (bytes sent over links of that tier, all runs),
        ``comm_fraction`` (all-reduce seconds / run seconds, NaN if it never ran) and
        ``allreduce_bytes`` (gradient bytes reduced per iteration).
        """
        self._flush(sim.env.now)
        names = np.array(TIERS, dtype=object)
        run = np.array(self._run_seconds)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(run > 0, np.array(self._comm_seconds) / run, np.nan)
        ran = ~np.isnan(sim.jobs.start)
        share = np.where(ran & ~np.array(self._comm, dtype=bool), 0.0, share)
        nvl, leaf, spine = (np.array(b) for b in self._bytes)
        return {
            "fabric_tier": names[self.tiers()],
            "fabric_ideal_tier": np.where(self._comm, names[self.ideal_tier], "none"),
            "bytes_nvlink": nvl,
            "bytes_leaf": leaf,
            "bytes_spine": spine,
            "comm_fraction": share,
            "allreduce_bytes": self.allreduce_bytes.copy(),
        }

    def summary(self, sim) -> dict:
        """Bytes per tier, mean/p99 slowdown by tier, uplink utilisation."""
        self._flush(sim.env.now)
        jobs = sim.jobs
        fin = jobs.status == Status.FINISHED
        slowdown = np.full(jobs.n, np.nan)
        slowdown[fin] = jobs.run_seconds[fin] / jobs.duration[fin]
        out: dict = {
            "fabric": self.name,
            "fabric_topology": self.topology,
            "fabric_bytes_nvlink": float(sum(self._bytes[0])),
            "fabric_bytes_leaf": float(sum(self._bytes[1])),
            "fabric_bytes_spine": float(sum(self._bytes[2])),
            "fabric_comm_bound_jobs": int(self.comm_bound),
            "fabric_recomputes": int(self.recomputes),
            "fabric_rate_changes": int(self.rate_changes),
            "fabric_fast_paths": int(self.fast_paths),
        }
        tiers = self.tiers()
        for code, tier in enumerate(TIERS):
            values = slowdown[fin & (tiers == code)]
            out[f"fabric_jobs_{tier}"] = int(values.size)
            out[f"fabric_mean_slowdown_{tier}"] = float(values.mean()) if values.size else None
            out[f"fabric_p99_slowdown_{tier}"] = (
                float(np.percentile(values, 99)) if values.size else None
            )
        out["fabric_mean_uplink_utilization"] = self._mean_utilization(_end_time(sim))
        return out

    def _mean_utilization(self, end: float) -> float | None:
        """Time-weighted mean uplink utilisation over all uplinks, from 0 to ``end`` (s)."""
        if not self.record_links or not len(self.uplink_cap) or end <= 0:
            return None
        rows = self.links_frame()
        total = 0.0
        for _, g in rows.groupby("link", sort=False):
            times = np.append(g["time"].to_numpy(), end)
            total += float((np.diff(times) * g["utilization"].to_numpy()).sum())
        return total / (end * len(self.uplink_cap))

    def links_frame(self) -> pd.DataFrame:
        """Uplink utilisation rows: one per uplink and instant at which its load changed.

        Columns: ``time`` (s), ``tier`` (``leaf_uplink``), ``link`` (leaf id), ``flows`` (jobs
        crossing it), ``utilization`` (mean traffic / capacity: the jobs' gradient bytes per
        iteration over their iteration times) and ``peak_utilization`` (sum of the jobs'
        fair shares / capacity: the load while their all-reduces run together).
        """
        t, link, flows, util, peak = (np.frombuffer(a, dtype=a.typecode) for a in self._links)
        frame = pd.DataFrame(
            {
                "time": t.astype(np.float64),
                "tier": "leaf_uplink",
                "link": link.astype(np.int64),
                "flows": flows.astype(np.int64),
                "utilization": util.astype(np.float64),
                "peak_utilization": peak.astype(np.float64),
            }
        )
        return frame.drop_duplicates(["time", "link"], keep="last").reset_index(drop=True)

    def tables(self, sim) -> dict[str, pd.DataFrame]:
        """``links``: uplink utilisation over time (see :meth:`links_frame`)."""
        return {"links": self.links_frame()} if self.record_links else {}


def _end_time(sim) -> float:
    """Time of the run's last real event (s).

    ``env.now`` may lie later: superseded completion events still advance SimPy's clock when
    they fire as no-ops. With jobs left unfinished (``until``) the run ends at ``env.now``.
    """
    jobs = sim.jobs
    ended = jobs.end[np.isfinite(jobs.end)]
    if (jobs.status == Status.UNFINISHED).any() or (jobs.status == Status.RUNNING).any():
        return float(sim.env.now)
    return float(ended.max()) if ended.size else float(sim.env.now)
