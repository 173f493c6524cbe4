"""Node failures injected into a run: a stochastic failure model or a failure-trace file.

Each injector is an extension object (see :mod:`simulator.core.extensions`) built from the
``failures`` config group. Its :meth:`~FailureInjector.processes` is one SimPy process that walks
a time-ordered schedule of ``(time, node, down)`` events and applies them with
:meth:`Simulation.fail_node <simulator.core.engine.Simulation.fail_node>` and
:meth:`Simulation.repair_node <simulator.core.engine.Simulation.repair_node>`: jobs on a failed node
(whole gangs) roll back to their last checkpoint, pay the restart overhead and requeue (or end
``failed`` after ``max_retries`` kills); the node leaves the placement pool until repaired.

Models:

* :class:`NoFailures` (``failures=none``): no process, results identical to a run without it.
* :class:`RandomFailures`: per node, up-times drawn from an exponential or Weibull distribution
  whose mean is ``mtbf_hours`` (the time from a repair to the next failure; a fresh draw after
  every repair, i.e. an alternating renewal process), and repair times from a ``fixed``,
  ``exponential`` or ``lognormal`` distribution with mean ``repair_hours``. With
  ``level="gpu"`` the MTBF is per GPU and any GPU failure takes its whole node down (GPU
  failures are modelled as node failures): the node's up-time is the minimum of its GPUs'
  up-times, a Weibull with the same shape and scale ``scale_gpu * G ** (-1 / shape)``; nodes
  without GPUs never fail.
* :class:`TraceFailures`: a CSV failure trace with columns ``node, down_time, up_time``
  (simulated seconds; ``node`` a node name of the cluster or a 0-based node index; an empty
  ``up_time`` = never repaired).

The failure schedule depends only on the model, the cluster and the seed, never on the jobs or
the policy, so policies compared under the same seed see the same failures (common random
numbers). It draws from its own ``numpy.random.default_rng`` (``seed``, or derived from the
run's seed), never from the run's generator, so a model that never fires leaves a run
bit-identical.

The injector stops once there is nothing left to disturb: no job running, none still to arrive,
and either an empty queue or every node up with the queue unchanged by a pass on the idle
cluster (the engine would end the run there too). Without this rule an unbounded failure model
would keep the simulation alive for ever. Rows of a failure trace after that point are not
applied.

Results: :meth:`~FailureInjector.summary` adds ``failure_model``, ``failures``, ``repairs``,
``jobs_killed``, ``failure_lost_gpu_hours`` (work lost to kills) and ``lost_gpu_hours`` (all
lost work, ``lost_gpu_seconds / 3600``); ``restarts``, ``goodput``, ``node_failures`` and
``lost_gpu_seconds`` are in the core summary. :meth:`~FailureInjector.tables` adds the
``failures`` table (``time``, ``node``, ``node_name``, ``event``, ``jobs_killed``,
``lost_gpu_seconds``).
"""

from __future__ import annotations

import heapq
import math
import re
import weakref
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from traces.errors import TraceError, row_error, where
from traces.tables import blank_cells, check, numbers, read_csv_table

__all__ = [
    "FAILURE_TRACE_COLUMNS",
    "REPAIR_DISTRIBUTIONS",
    "TBF_DISTRIBUTIONS",
    "FailureInjector",
    "FailureLog",
    "NoFailures",
    "RandomFailures",
    "TraceFailures",
    "expected_lost_per_kill",
    "weibull_scale",
]

HOUR = 3600.0
"""Seconds in an hour (model parameters are in hours, simulated time in seconds)."""

TBF_DISTRIBUTIONS = ("exponential", "weibull")
"""Distributions of the time from a repair to the next failure (up-time)."""

REPAIR_DISTRIBUTIONS = ("fixed", "exponential", "lognormal")
"""Distributions of the repair time (down-time)."""

LEVELS = ("node", "gpu")
"""What ``mtbf_hours`` is per: a node, or each GPU of a node (any GPU failure downs the node)."""

FAILURE_TRACE_COLUMNS = ("node", "down_time", "up_time")
"""Required columns of a failure-trace CSV (other columns are ignored)."""

_SEED_SALT = 0xFA11
"""Mixed with the run's seed when no ``seed`` is given, so failures get their own stream."""

_INDEX = re.compile(r"\s*[0-9]+\s*")

Schedule = Iterator[tuple[float, int, bool]]
"""Time-ordered ``(time s, node index, down)`` events; ``down=False`` is a repair."""


def weibull_scale(mean: float, shape: float) -> float:
    """Scale of the Weibull distribution with this mean and shape: ``mean / Gamma(1 + 1/k)``."""
    return mean / math.gamma(1.0 + 1.0 / shape)


def expected_lost_per_kill(
    mtbf: float, checkpoint_interval: float, overhead: float, shape: float = 1.0
) -> float:
    """Mean seconds of work a job loses per kill when the time to the kill is Weibull/exponential.

    The job progresses at full speed from its (re)start and is killed after ``T``; the work
    since its last checkpoint is ``T mod C``, whose mean is ``E[T] - C * sum_k S(k C)``
    (``S`` the survival function; ``floor(T / C)`` has mean ``sum_k P(T >= k C)``), plus the
    restart ``overhead`` paid again. For exponential ``T`` (``shape=1``) that is
    ``mtbf - C / (exp(C / mtbf) - 1)`` = ``C/2 - C**2 / (12 mtbf) + ...``: ``C/2`` when
    failures are rare per interval, and memorylessness makes it hold for any job. For a
    Weibull ``T`` it holds when the job starts as its node comes up (a repair renews the
    node). Kills during a restart overhead (probability about ``overhead / mtbf``) and kills
    cut short by the job's end are neglected.

    Args:
        mtbf: mean time from the job's (re)start to its kill, s (a job on ``n`` nodes with
            exponential failures of MTBF ``m`` each: ``m / n``).
        checkpoint_interval: seconds of progress between checkpoints (0 = no rollback).
        overhead: restart overhead, s.
        shape: Weibull shape of ``T`` (1 = exponential).

    Returns:
        Expected lost seconds of work per kill.
    """
    c = float(checkpoint_interval)
    if c <= 0:
        return float(overhead)
    if shape == 1.0:
        x = c / mtbf
        if x < 1e-12:  # no failure within an interval: uniform over it
            return c / 2 + overhead
        if x > 700:  # exp(x) overflows; c / (exp(x) - 1) is 0 here
            return float(mtbf + overhead)
        return float(mtbf - c / math.expm1(x) + overhead)
    scale = weibull_scale(mtbf, shape)
    last = math.ceil(scale * 745.0 ** (1.0 / shape) / c)  # S(k C) < 1e-323 beyond
    k = np.arange(1, max(last, 1) + 1, dtype=np.float64)
    survival = np.exp(-((k * c / scale) ** shape))
    return float(mtbf - c * survival.sum() + overhead)


# ---------------------------------------------------------------------------------- results
@dataclass
class FailureLog:
    """What one injector did to one run (rows of the ``failures`` table).

    Attributes:
        time: simulated time of each event, s.
        node: node index of each event.
        event: ``"down"`` or ``"up"``.
        killed: jobs killed by each event (0 for repairs).
        lost: GPU-seconds of work lost by the jobs each event killed (incl. restart overhead).
        last_change: time of the latest event applied, s.
    """

    time: list[float] = field(default_factory=list)
    node: list[int] = field(default_factory=list)
    event: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    lost: list[float] = field(default_factory=list)
    last_change: float = -math.inf

    def add(self, time: float, node: int, event: str, killed: int = 0, lost: float = 0.0) -> None:
        """Append one applied event."""
        self.time.append(float(time))
        self.node.append(int(node))
        self.event.append(event)
        self.killed.append(int(killed))
        self.lost.append(float(lost))
        self.last_change = float(time)

    def frame(self, spec: ClusterSpec) -> pd.DataFrame:
        """The ``failures`` table: time, node, node_name, event, jobs_killed, lost_gpu_seconds."""
        names = np.array(spec.node_names, dtype=object)
        nodes = np.asarray(self.node, dtype=np.int64)
        return pd.DataFrame(
            {
                "time": np.asarray(self.time, dtype=np.float64),
                "node": nodes,
                "node_name": names[nodes] if len(nodes) else np.array([], dtype=object),
                "event": np.asarray(self.event, dtype=object),
                "jobs_killed": np.asarray(self.killed, dtype=np.int64),
                "lost_gpu_seconds": np.asarray(self.lost, dtype=np.float64),
            }
        )


# ---------------------------------------------------------------------------------- injectors
class NoFailures:
    """``failures=none``: no failure process; a run is identical to one without the extension."""

    def processes(self) -> list[Callable[[Simulation], Generator]]:
        """No processes."""
        return []


class FailureInjector:
    """Base of the failure injectors: applies a schedule of node failures and repairs.

    Subclasses implement :meth:`schedule` and :meth:`describe`. One injector object may serve
    several simulations (one after another or interleaved); what it did to each is kept per
    simulation and read with :meth:`log`.
    """

    def __init__(self) -> None:
        self._logs: weakref.WeakKeyDictionary[Simulation, FailureLog] = weakref.WeakKeyDictionary()

    def schedule(self, cluster: ClusterSpec, seed: int) -> Schedule:
        """Time-ordered ``(time s, node, down)`` events for a cluster (may be endless).

        Args:
            cluster: the simulated cluster.
            seed: the run's seed (models without their own seed derive their RNG from it).
        """
        raise NotImplementedError

    def describe(self) -> str:
        """One-line description of the model for ``summary.json``."""
        raise NotImplementedError

    def processes(self) -> list[Callable[[Simulation], Generator]]:
        """The SimPy process that injects the failures (see :meth:`process`)."""
        return [self.process]

    def log(self, sim: Simulation) -> FailureLog:
        """What this injector did to ``sim`` (empty if it did not run there)."""
        return self._logs.get(sim) or FailureLog()

    def process(self, sim: Simulation) -> Generator:
        """SimPy process: apply the schedule to ``sim`` until there is nothing left to disturb."""
        log = self._logs[sim] = FailureLog()
        last_arrival = _last_arrival(sim)
        for t, node, down in self.schedule(sim.spec, sim.seed):
            if t > sim.env.now:
                yield sim.env.timeout(t - sim.env.now)
            if not _work_left(sim, last_arrival, log.last_change):
                return
            if down:
                _fail(sim, node, log)
            else:
                sim.repair_node(node)
                log.add(sim.env.now, node, "up")

    def summary(self, sim: Simulation) -> dict:
        """Failure counts and lost work of ``sim`` (entries for ``summary.json``)."""
        log = self.log(sim)
        lost = float((sim.lost_seconds * sim.jobs.gpu_share).sum())
        return {
            "failure_model": self.describe(),
            "failures": log.event.count("down"),
            "repairs": log.event.count("up"),
            "jobs_killed": int(sum(log.killed)),
            "failure_lost_gpu_hours": float(sum(log.lost)) / HOUR,
            "lost_gpu_hours": lost / HOUR,
        }

    def tables(self, sim: Simulation) -> dict[str, pd.DataFrame]:
        """The ``failures`` table of ``sim`` (one row per applied failure or repair)."""
        return {"failures": self.log(sim).frame(sim.spec)}


def _fail(sim: Simulation, node: int, log: FailureLog) -> None:
    """Fail ``node`` and log the kills with the GPU-seconds of work they lost."""
    lost = sim.lost_seconds
    before = {j: float(lost[j]) for j in sim.running}
    victims = sim.fail_node(node)
    share = sim.jobs.gpu_share
    gpu_lost = sum((float(lost[j]) - before[j]) * float(share[j]) for j in victims)
    log.add(sim.env.now, node, "down", len(victims), gpu_lost)


def _last_arrival(sim: Simulation) -> float:
    """Latest finite submit time of the trace (dormant jobs with ``inf`` do not count)."""
    submit = sim.jobs.submit
    return float(np.max(submit, initial=-math.inf, where=np.isfinite(submit)))


def _work_left(sim: Simulation, last_arrival: float, last_change: float) -> bool:
    """Whether a failure now could still matter to a job (see the module docstring)."""
    now = sim.env.now
    if now <= last_arrival or sim.running:
        return True
    if not len(sim.queue):
        return False
    # Jobs wait, none runs: for nodes to come back, or (every node up since before now) for
    # nothing: the pass after the last change saw the idle cluster and started none of them.
    return not (now > last_change and bool(sim.state.node_up.all()))


# ---------------------------------------------------------------------------------- random
class RandomFailures(FailureInjector):
    """Independent per-node failures with random up-times and repair times.

    Args:
        mtbf_hours: mean up-time (time from a repair, or the start, to the next failure) of a
            node, or of each GPU with ``level="gpu"``, hours.
        distribution: up-time distribution, ``exponential`` or ``weibull``.
        shape: Weibull shape ``k`` (< 1: failures cluster early, infant mortality; > 1: wear
            out); must be 1 for ``exponential``.
        repair: repair-time distribution, ``fixed``, ``exponential`` or ``lognormal``.
        repair_hours: mean repair time, hours (``fixed`` may be 0: back at the same instant).
        repair_sigma: ``lognormal`` only: standard deviation of the log of the repair time.
        level: ``node`` (MTBF per node) or ``gpu`` (MTBF per GPU; a GPU failure takes its node
            down, so the node fails at the first of its GPUs' failures).
        seed: seed of the failure RNG (None = derived from the run's seed).

    Raises:
        ValueError: a parameter out of range (the message names it).
    """

    def __init__(
        self,
        mtbf_hours: float,
        distribution: str = "exponential",
        shape: float = 1.0,
        repair: str = "fixed",
        repair_hours: float = 1.0,
        repair_sigma: float = 1.0,
        level: str = "node",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _choice("distribution", distribution, TBF_DISTRIBUTIONS)
        _choice("repair", repair, REPAIR_DISTRIBUTIONS)
        _choice("level", level, LEVELS)
        self.mtbf_hours = _positive("mtbf_hours", mtbf_hours)
        self.shape = _positive("shape", shape)
        if distribution == "exponential" and self.shape != 1.0:
            raise ValueError(f"failures: shape={shape} needs distribution=weibull")
        self.repair_hours = _positive("repair_hours", repair_hours, zero_ok=repair == "fixed")
        self.repair_sigma = _positive("repair_sigma", repair_sigma)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"failures: seed must be an integer >= 0 or null, got {seed!r}")
        self.distribution, self.repair, self.level, self.seed = distribution, repair, level, seed

    def describe(self) -> str:
        """E.g. ``weibull(MTBF 1000 h per gpu, shape 0.8), repair lognormal(2 h, sigma 1)``."""
        tbf = f"{self.distribution}(MTBF {self.mtbf_hours:g} h per {self.level}"
        tbf += f", shape {self.shape:g})" if self.distribution == "weibull" else ")"
        rep = f"{self.repair}({self.repair_hours:g} h"
        rep += f", sigma {self.repair_sigma:g})" if self.repair == "lognormal" else ")"
        return f"{tbf}, repair {rep}"

    def node_scales(self, cluster: ClusterSpec) -> np.ndarray:
        """Up-time scale per node, s (the Weibull scale; the mean for ``exponential``).

        ``inf`` = the node never fails (``level="gpu"`` and no GPUs).
        """
        scale = weibull_scale(self.mtbf_hours * HOUR, self.shape)
        if self.level == "node":
            return np.full(cluster.num_nodes, scale)
        gpus = cluster.gpus.astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.where(gpus > 0, scale * gpus ** (-1.0 / self.shape), math.inf)

    def rng(self, run_seed: int) -> np.random.Generator:
        """The failure RNG: ``default_rng(seed)``, or seeded from the run's seed and a salt."""
        if self.seed is not None:
            return np.random.default_rng(self.seed)
        return np.random.default_rng([int(run_seed), _SEED_SALT])

    def _up_time(self, rng: np.random.Generator, scale: float) -> float:
        if self.distribution == "exponential":
            return float(rng.exponential(scale))
        return float(scale * rng.weibull(self.shape))

    def _repair_time(self, rng: np.random.Generator) -> float:
        mean = self.repair_hours * HOUR
        if self.repair == "fixed":
            return mean
        if self.repair == "exponential":
            return float(rng.exponential(mean))
        sigma = self.repair_sigma
        return float(rng.lognormal(math.log(mean) - sigma * sigma / 2.0, sigma))

    def schedule(self, cluster: ClusterSpec, seed: int) -> Schedule:
        """Endless failure/repair events of every node, merged in time order.

        Ties at one instant: repairs before failures, then by node index. Draws happen in
        event order from one generator, so the schedule is a function of (model, cluster,
        seed) only.
        """
        rng = self.rng(seed)
        scales = self.node_scales(cluster)
        heap: list[tuple[float, int, int]] = []
        for node in np.flatnonzero(np.isfinite(scales)).tolist():
            heap.append((self._up_time(rng, float(scales[node])), 1, node))
        heapq.heapify(heap)
        while heap:
            t, down, node = heapq.heappop(heap)
            yield t, node, bool(down)
            if down:
                heapq.heappush(heap, (t + self._repair_time(rng), 0, node))
            else:
                heapq.heappush(heap, (t + self._up_time(rng, float(scales[node])), 1, node))


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"failures: {name} must be one of {list(allowed)}, got {value!r}")


def _positive(name: str, value: object, zero_ok: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and math.isfinite(value) and (value > 0 or (zero_ok and value == 0)):
        return float(value)
    bound = ">= 0" if zero_ok else "> 0"
    raise ValueError(f"failures: {name} must be a finite number {bound}, got {value!r}")


# ---------------------------------------------------------------------------------- trace
class TraceFailures(FailureInjector):
    """Failures replayed from a CSV file with columns ``node, down_time, up_time``.

    ``node`` is a node name of the cluster (``ClusterSpec.node_names``, e.g. ``node-3``) or,
    when no node has that name, a 0-based node index. Times are simulated seconds (the clock of
    the rebased job trace). ``up_time`` must be later than ``down_time``; an empty ``up_time``
    means the node is never repaired. Intervals of one node must not overlap. Other columns
    (e.g. a reason) are ignored. The file is read and checked when the object is built; node
    names are checked against the cluster in :meth:`prepare` (before the run) or at the start
    of the run.

    Args:
        path: the CSV file.

    Raises:
        traces.TraceError: missing/empty/unreadable file, missing column, or a bad value
            (the message names the file, row, line and column).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        if path is None or str(path) == "???":
            raise ValueError(
                "failures=trace needs a file: failures.path=<CSV with columns "
                "node,down_time,up_time>"
            )
        self.path = Path(path)
        self.source = str(self.path)
        table, self._lines = read_csv_table(
            self.path,
            required=FAILURE_TRACE_COLUMNS,
            dtype={"node": str},
            what="failure trace (node, down_time, up_time)",
        )
        if len(table) == 0:
            raise TraceError(f"{self.source}: no failures in the file (header only)")
        self._labels = table["node"]
        missing = blank_cells(self._labels)
        if missing.any():
            raise row_error(self.source, missing, "node", "missing node", self._lines)
        self.down = numbers(table, "down_time", self.source, self._lines)
        check(
            self.down >= 0,
            table["down_time"],
            self.source,
            "down_time",
            "expected a time >= 0 s",
            self._lines,
        )
        self.up = numbers(table, "up_time", self.source, self._lines, fill=np.nan)
        check(
            ~(self.up <= self.down),
            table["up_time"],
            self.source,
            "up_time",
            "expected a repair time later than down_time",
            self._lines,
        )

    def describe(self) -> str:
        """``trace(FILE)``."""
        return f"trace({self.source})"

    def prepare(self, trace: pd.DataFrame, cluster: ClusterSpec) -> pd.DataFrame:
        """Check the file's nodes against the cluster before the run; the trace is unchanged."""
        self.nodes(cluster)
        return trace

    def nodes(self, cluster: ClusterSpec) -> np.ndarray:
        """Node index of every row.

        Raises:
            traces.TraceError: an unknown node, or overlapping intervals of one node.
        """
        index = {name: i for i, name in enumerate(cluster.node_names)}
        n = cluster.num_nodes
        out = np.empty(len(self._labels), dtype=np.int64)
        for row, label in enumerate(self._labels.tolist()):
            text = str(label).strip()
            if text in index:
                out[row] = index[text]
            elif _INDEX.fullmatch(text) and int(text) < n:
                out[row] = int(text)
            else:
                raise TraceError(
                    f"{self.source}: {where(row, self._lines)}, column node: unknown node "
                    f"{text!r} (not a node name of the cluster, nor an index 0..{n - 1})"
                )
        self._check_overlaps(out)
        return out

    def _check_overlaps(self, nodes: np.ndarray) -> None:
        order = np.lexsort((self.down, nodes))
        same = nodes[order][1:] == nodes[order][:-1]
        prev_up = np.where(np.isnan(self.up), math.inf, self.up)[order][:-1]
        clash = same & (self.down[order][1:] < prev_up)
        if clash.any():
            k = int(np.flatnonzero(clash)[0])
            first, second = int(order[k]), int(order[k + 1])
            raise TraceError(
                f"{self.source}: {where(second, self._lines)}, column down_time: node "
                f"{int(nodes[second])} fails again at {self.down[second]:g} s while down "
                f"since {where(first, self._lines)}"
            )

    def schedule(self, cluster: ClusterSpec, seed: int) -> Schedule:
        """The file's events in time order (ties: repairs first, then file order)."""
        nodes = self.nodes(cluster)
        repaired = ~np.isnan(self.up)
        times = np.concatenate([self.down, self.up[repaired]])
        node = np.concatenate([nodes, nodes[repaired]])
        down = np.concatenate([np.ones(len(nodes), bool), np.zeros(int(repaired.sum()), bool)])
        row = np.concatenate([np.arange(len(nodes)), np.flatnonzero(repaired)])
        for k in np.lexsort((row, down, times)).tolist():
            yield float(times[k]), int(node[k]), bool(down[k])
