"""Cluster description (:class:`ClusterSpec`) and mutable cluster state (:class:`ClusterState`).

A cluster is a list of nodes. Each node has a number of GPUs of one model, CPU cores, memory
and a place in the topology (a rack / leaf switch id). The spec is immutable and built once from
config; the state holds free resources in NumPy arrays that the compiled placement kernels read.

Units: CPUs in cores, memory in GB, GPU shares in milli-GPU (1000 = one whole GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from simulator.core import kernels
from simulator.core.gpus import canonical_gpu_name
from traces.tables import shown

__all__ = [
    "ClusterSpec",
    "ClusterState",
    "ClusterArrays",
    "BOOKS",
    "NODE_LIST_COLUMNS",
    "MILLI",
]

MILLI = 1000
"""Milli-GPU in one whole GPU."""

NODE_LIST_COLUMNS = {
    "num_gpus": "GPUs on the node (int >= 0), required",
    "gpu_type": "GPU model name (empty for CPU-only nodes), required",
    "num_cpus": "CPU cores (float >= 0), optional, default 0 = unlimited",
    "memory_gb": "memory in GB (float >= 0), optional, default 0 = unlimited",
    "rack": "rack / leaf-switch id (int or str), optional, default: nodes_per_rack grouping",
    "node": "node name (str), optional, default node-<index>",
    "count": "number of identical nodes this row describes (int >= 1), optional, default 1",
}
"""Columns of the node-list CSV accepted by :meth:`ClusterSpec.from_node_list`."""


@dataclass(frozen=True)
class ClusterSpec:
    """Immutable description of the nodes of a cluster.

    Attributes:
        node_names: one name per node.
        gpus: GPUs per node.
        gpu_models: GPU model name per node ("" for CPU-only nodes).
        cpus: CPU cores per node (``inf`` when the CPU dimension is not modelled).
        memory_gb: memory per node in GB (``inf`` when not modelled).
        racks: rack / leaf id per node (dense ints from 0).
        name: human-readable name of the cluster preset.
    """

    node_names: tuple[str, ...]
    gpus: np.ndarray
    gpu_models: tuple[str, ...]
    cpus: np.ndarray
    memory_gb: np.ndarray
    racks: np.ndarray
    name: str = "cluster"

    def __post_init__(self) -> None:
        n = len(self.node_names)
        for field in ("gpus", "cpus", "memory_gb", "racks"):
            if len(getattr(self, field)) != n:
                raise ValueError(
                    f"cluster spec: {field} has {len(getattr(self, field))} entries, "
                    f"expected {n} (one per node)"
                )
        if n == 0:
            raise ValueError("cluster spec: a cluster needs at least one node")
        if (self.gpus < 0).any():
            raise ValueError("cluster spec: negative GPU count on a node")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def homogeneous(
        cls,
        num_nodes: int,
        gpus_per_node: int,
        gpu_type: str,
        cpus_per_node: float = 0.0,
        memory_gb_per_node: float = 0.0,
        nodes_per_rack: int = 32,
        name: str = "homogeneous",
    ) -> ClusterSpec:
        """Build ``num_nodes`` identical nodes; racks group ``nodes_per_rack`` consecutive nodes.

        A CPU or memory value of 0 means that dimension is not modelled (unlimited).
        """
        group = {
            "count": num_nodes,
            "num_gpus": gpus_per_node,
            "gpu_type": gpu_type,
            "num_cpus": cpus_per_node,
            "memory_gb": memory_gb_per_node,
        }
        return cls.from_groups([group], nodes_per_rack=nodes_per_rack, name=name)

    @classmethod
    def from_groups(
        cls, groups: Sequence[dict], nodes_per_rack: int = 32, name: str = "groups"
    ) -> ClusterSpec:
        """Build a heterogeneous cluster from node groups.

        Args:
            groups: each a mapping with ``count``, ``num_gpus``, ``gpu_type`` and optionally
                ``num_cpus``, ``memory_gb`` (0 = unlimited), ``rack_prefix``.
            nodes_per_rack: consecutive nodes that share a rack / leaf switch.
            name: preset name.
        """
        rows = []
        for i, g in enumerate(groups):
            g = dict(g)
            unknown = set(g) - {"count", "num_gpus", "gpu_type", "num_cpus", "memory_gb"}
            if unknown:
                raise ValueError(f"cluster group {i}: unknown keys {sorted(unknown)}")
            rows.append({"num_cpus": 0.0, "memory_gb": 0.0, **g})
        table = pd.DataFrame(rows)
        return cls.from_table(
            table, source=f"cluster groups of {name!r}", nodes_per_rack=nodes_per_rack, name=name
        )

    @classmethod
    def from_node_list(
        cls, path: str | Path, nodes_per_rack: int = 32, name: str | None = None
    ) -> ClusterSpec:
        """Read a node-list CSV (columns in :data:`NODE_LIST_COLUMNS`)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"node list {path}: file not found")
        table = pd.read_csv(
            path,
            dtype={"gpu_type": str, "node": str, "rack": str},
            keep_default_na=False,
            na_values={"num_gpus": [""]},
        )
        return cls.from_table(
            table, source=str(path), nodes_per_rack=nodes_per_rack, name=name or path.stem
        )

    @classmethod
    def from_table(
        cls, table: pd.DataFrame, source: str, nodes_per_rack: int = 32, name: str = "cluster"
    ) -> ClusterSpec:
        """Build from a DataFrame in node-list form, with errors that name ``source`` and row."""
        missing = [c for c in ("num_gpus", "gpu_type") if c not in table.columns]
        if missing:
            raise ValueError(
                f"{source}: missing required column(s) {missing}; "
                f"node-list columns are {list(NODE_LIST_COLUMNS)}"
            )
        t = table.reset_index(drop=True)
        count = _int_column(t, "count", source, default=1, minimum=1)
        gpus = _int_column(t, "num_gpus", source, default=None, minimum=0)
        cpus = _float_column(t, "num_cpus", source)
        mem = _float_column(t, "memory_gb", source)
        models = [canonical_gpu_name(str(m)) if str(m).strip() else "" for m in t["gpu_type"]]
        for row, (g, m) in enumerate(zip(gpus, models, strict=True)):
            if g > 0 and not m:
                raise ValueError(
                    f"{source}: row {row + 1}, column gpu_type: node has {g} GPUs but no GPU model"
                )
        reps = np.asarray(count)
        names_col = t["node"].astype(str).tolist() if "node" in t.columns else None
        node_names: list[str] = []
        for row, c in enumerate(reps):
            base = names_col[row] if names_col else None
            for k in range(int(c)):
                idx = len(node_names)
                if base and c == 1:
                    node_names.append(base)
                elif base:
                    node_names.append(f"{base}-{k}")
                else:
                    node_names.append(f"node-{idx}")
        if len(set(node_names)) != len(node_names):
            raise ValueError(f"{source}: duplicate node names")
        n = len(node_names)
        if "rack" in t.columns and (t["rack"].astype(str) != "").all():
            rack_labels = np.repeat(t["rack"].astype(str).to_numpy(), reps)
            _, racks = np.unique(rack_labels, return_inverse=True)
        else:
            if nodes_per_rack < 1:
                raise ValueError(f"{source}: nodes_per_rack must be >= 1")
            racks = np.arange(n) // nodes_per_rack
        cpu_arr = np.repeat(np.where(cpus > 0, cpus, np.inf), reps)
        mem_arr = np.repeat(np.where(mem > 0, mem, np.inf), reps)
        return cls(
            node_names=tuple(node_names),
            gpus=np.repeat(gpus, reps).astype(np.int32),
            gpu_models=tuple(np.repeat(np.array(models, dtype=object), reps).tolist()),
            cpus=cpu_arr.astype(np.float64),
            memory_gb=mem_arr.astype(np.float64),
            racks=np.asarray(racks, dtype=np.int32),
            name=name,
        )

    # ------------------------------------------------------------------ properties
    @property
    def num_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_names)

    @property
    def total_gpus(self) -> int:
        """GPUs in the whole cluster."""
        return int(self.gpus.sum())

    @property
    def max_gpus_per_node(self) -> int:
        """Largest GPU count of any node."""
        return int(self.gpus.max())

    def model_names(self) -> list[str]:
        """Distinct GPU models present, in first-appearance order (ids used by the state)."""
        seen: dict[str, None] = {}
        for m in self.gpu_models:
            if m:
                seen.setdefault(m, None)
        return list(seen)

    def describe(self) -> str:
        """One-line description, e.g. ``64 nodes, 512 GPUs (A100-80GB x512), 2 racks``."""
        counts: dict[str, int] = {}
        for m, g in zip(self.gpu_models, self.gpus, strict=True):
            if g:
                counts[m] = counts.get(m, 0) + int(g)
        models = ", ".join(f"{m} x{c}" for m, c in counts.items())
        return (
            f"{self.num_nodes} nodes, {self.total_gpus} GPUs ({models}), "
            f"{len(np.unique(self.racks))} racks"
        )


def _int_column(
    t: pd.DataFrame, col: str, source: str, default: int | None, minimum: int
) -> np.ndarray:
    if col not in t.columns:
        if default is None:
            raise ValueError(f"{source}: missing required column {col!r}")
        return np.full(len(t), default, dtype=np.int64)
    vals = pd.to_numeric(t[col].replace("", np.nan), errors="coerce")
    for row, v in enumerate(vals):
        if pd.isna(v) or not np.isfinite(v) or v != int(v) or v < minimum or v >= 2**31:
            raise ValueError(
                f"{source}: row {row + 1}, column {col}: expected an integer "
                f">= {minimum}, got {shown(t[col].iloc[row])}"
            )
    return vals.to_numpy(dtype=np.int64)


def _float_column(t: pd.DataFrame, col: str, source: str) -> np.ndarray:
    if col not in t.columns:
        return np.zeros(len(t))
    vals = pd.to_numeric(t[col].replace("", 0), errors="coerce")
    for row, v in enumerate(vals):
        if pd.isna(v) or not np.isfinite(v) or v < 0:
            raise ValueError(
                f"{source}: row {row + 1}, column {col}: expected a number >= 0, "
                f"got {shown(t[col].iloc[row])}"
            )
    return vals.to_numpy(dtype=np.float64)


BOOKS = np.dtype(
    [
        ("free_gpus", np.int64),
        ("alloc_milli", np.int64),
        ("version", np.int64),
        ("total_milli", np.int64),
    ],
    align=True,
)
"""Running totals of a cluster state (one record): whole free GPUs, allocated milli-GPU, an
allocation counter bumped by every allocation and release, and the cluster's milli-GPU."""


class ClusterArrays(NamedTuple):
    """The arrays of a :class:`ClusterState`, as compiled code takes them (see there)."""

    gpu_free: np.ndarray
    free_full: np.ndarray
    cpu_free: np.ndarray
    mem_free: np.ndarray
    buckets: np.ndarray
    books: np.ndarray
    capacity: np.ndarray
    cpu_cap: np.ndarray
    mem_cap: np.ndarray
    node_model: np.ndarray
    node_up: np.ndarray
    racks: np.ndarray
    rack_order: np.ndarray
    rack_start: np.ndarray


class ClusterState:
    """Free resources of every node and GPU, as NumPy arrays (mutated only by the engine).

    Attributes:
        gpu_free: ``int32[num_nodes, max_gpus]`` free milli-GPU of each GPU; ``-1`` marks a
            GPU slot the node does not have.
        free_full: ``int32[num_nodes]`` GPUs per node that are entirely free (1000 milli).
        cpu_free: ``float64[num_nodes]`` free CPU cores (``inf`` = not modelled).
        mem_free: ``float64[num_nodes]`` free memory in GB (``inf`` = not modelled).
        node_model: ``int32[num_nodes]`` GPU model id (index into ``models``; -1 = no GPU).
        node_up: ``bool[num_nodes]`` node is in the placement pool.
        racks: ``int32[num_nodes]`` rack / leaf id.
        books: one :data:`BOOKS` record (free GPU total, allocated milli-GPU, version).
        arrays: all of them as one :class:`ClusterArrays` (what compiled code takes).
    """

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.models: list[str] = spec.model_names()
        model_id = {m: i for i, m in enumerate(self.models)}
        n, g = spec.num_nodes, max(spec.max_gpus_per_node, 1)
        self.gpu_free = np.full((n, g), -1, dtype=np.int32)
        for i, cnt in enumerate(spec.gpus):
            self.gpu_free[i, :cnt] = MILLI
        self.capacity = spec.gpus.astype(np.int32).copy()
        self.free_full = self.capacity.copy()
        self.cpu_cap = spec.cpus.copy()
        self.mem_cap = spec.memory_gb.copy()
        self.cpu_free = spec.cpus.copy()
        self.mem_free = spec.memory_gb.copy()
        self.node_model = np.array([model_id.get(m, -1) for m in spec.gpu_models], dtype=np.int32)
        self.node_up = np.ones(n, dtype=np.bool_)
        self.racks = spec.racks.astype(np.int32)
        self.total_gpus = int(spec.gpus.sum())
        self.books = np.zeros(1, dtype=BOOKS).view(np.recarray)
        self.books[0].free_gpus = self.total_gpus
        self.books[0].total_milli = self.total_gpus * MILLI
        self.rack_order, self.rack_start = kernels.rack_index(self.racks)
        """Node ids grouped by rack, and each rack's slice bounds in that list (static)."""
        self.buckets = kernels.build_buckets(self.free_full, g)
        """Index of nodes by whole free GPUs (see :func:`simulator.core.kernels.build_buckets`)."""
        self.arrays = ClusterArrays(
            self.gpu_free,
            self.free_full,
            self.cpu_free,
            self.mem_free,
            self.buckets,
            self.books,
            self.capacity,
            self.cpu_cap,
            self.mem_cap,
            self.node_model,
            self.node_up,
            self.racks,
            self.rack_order,
            self.rack_start,
        )
        self._zeros: dict[int, np.ndarray] = {}
        self._ref = None

    @property
    def ref(self):
        """The arrays as compiled code takes them (see :mod:`simulator.core.refs`)."""
        if self._ref is None:
            from simulator.core.refs import cluster_ref  # refs depends on this module

            self._ref = cluster_ref(self.arrays)
        return self._ref

    @property
    def free_gpu_total(self) -> int:
        """Count of entirely free GPUs over the cluster (kept in step with ``free_full``)."""
        return int(self.books[0].free_gpus)

    @property
    def allocated_milli(self) -> int:
        """Milli-GPU allocated over the cluster."""
        return int(self.books[0].alloc_milli)

    @property
    def version(self) -> int:
        """Bumped on every allocation and release."""
        return int(self.books[0].version)

    def zeros(self, k: int) -> np.ndarray:
        """A shared read-only float64 array of ``k`` zeros (CPU/memory of GPU-only placements)."""
        z = self._zeros.get(k)
        if z is None:
            z = self._zeros[k] = np.zeros(k)
            z.flags.writeable = False
        return z

    def load_free(
        self,
        gpu_free: np.ndarray,
        cpu_free: np.ndarray,
        mem_free: np.ndarray,
        node_up: np.ndarray | None = None,
    ) -> None:
        """Overwrite the free resources and recompute everything derived from them.

        For what-if copies of a cluster (would job J fit if ...?): after this call the state is
        consistent (``free_full``, the books, ``buckets``).
        """
        self.gpu_free[...] = gpu_free
        self.cpu_free[...] = cpu_free
        self.mem_free[...] = mem_free
        if node_up is not None:
            self.node_up[...] = node_up
        self.free_full[...] = (self.gpu_free == MILLI).sum(axis=1)
        b = self.books[0]
        b.free_gpus = int(self.free_full.sum())
        real = self.gpu_free >= 0
        b.alloc_milli = int((MILLI - self.gpu_free[real]).sum())
        self.buckets[...] = kernels.build_buckets(self.free_full, self.gpu_free.shape[1])
        b.version += 1

    def copy(self) -> ClusterState:
        """An independent copy with the same free resources (a what-if scratch state)."""
        twin = ClusterState(self.spec)
        twin.load_free(self.gpu_free, self.cpu_free, self.mem_free, self.node_up)
        return twin

    def type_mask(self, gpu_type: str) -> int:
        """Bit mask of model ids allowed by a ``gpu_type`` constraint (``A|B`` = either).

        Returns 0 for no constraint, and -1 when none of the named models exists here.
        """
        names = [canonical_gpu_name(p) for p in gpu_type.split("|") if p.strip()]
        if not names:
            return 0
        mask = 0
        for name in names:
            if name in self.models:
                mask |= 1 << self.models.index(name)
        return mask if mask else -1

    def check(
        self,
        nodes: np.ndarray,
        gpus: np.ndarray,
        milli: int,
        cpus: np.ndarray,
        mem: np.ndarray,
        type_mask: int = 0,
    ) -> int:
        """Validate a placement against free resources: an ``ALLOC_*`` code (0 = it fits).

        ``gpus`` are flat ids ``node * G + slot``; ``cpus``/``mem`` are per node in ``nodes``.
        See :data:`simulator.core.kernels.ALLOC_MESSAGES` for what non-zero codes mean.
        """
        return kernels._check_alloc(
            self.gpu_free,
            self.cpu_free,
            self.mem_free,
            self.node_up,
            self.node_model,
            nodes,
            gpus,
            milli,
            cpus,
            mem,
            type_mask,
        )

    def allocate(
        self, nodes: np.ndarray, gpus: np.ndarray, milli: int, cpus: np.ndarray, mem: np.ndarray
    ) -> None:
        """Take the resources of a placement already validated by :meth:`check`."""
        kernels.take(self.ref, nodes, gpus, milli, cpus, mem, -1)

    def release(
        self, nodes: np.ndarray, gpus: np.ndarray, milli: int, cpus: np.ndarray, mem: np.ndarray
    ) -> None:
        """Give back what :meth:`allocate` took."""
        kernels.take(self.ref, nodes, gpus, milli, cpus, mem, 1)
