"""Throughput of a job type on a GPU (worker) type: Gavel's table, and a default from the GPU table.

**Gavel / Shockwave table** (``simulation_throughputs.json`` of stanford-futuredata/gavel,
``tacc_throughputs.json`` of uw-mad-dash/shockwave)::

    {worker_type: {"('<job_type>', <scale_factor>)": {
        "null": steps_per_s,                                   # the job alone
        "('<other_job_type>', <sf>)": [steps_per_s_this, steps_per_s_other],  # co-located pair
        ...}}}

Keys of the second level are Python tuple literals (read with :func:`ast.literal_eval`, which
evaluates literals only): a job type such as ``ResNet-18 (batch size 32)`` and the scale factor
(the gang size, in GPUs). Values are steps (iterations) per second of the whole gang.
:func:`load_throughputs` keeps the ``"null"`` (isolated) values only; the co-located pair
entries (Gavel's space sharing) are skipped unread and counted in
:attr:`ThroughputTable.skipped_pairs`. A throughput of ``0.0`` is kept: the shipped files use it
for combinations that were not profiled or do not run (e.g. Shockwave's ``v100`` A3C and
CycleGAN); callers must not divide by it. Negative, NaN or infinite values are errors.

**Default from the GPU table** (:func:`default_speedup`): when no measured table exists, the
speed of a job on GPU ``g`` relative to a reference GPU is derived from the published peak
FLOP/s and memory bandwidth in :mod:`simulator.core.gpus`.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from simulator.core.gpus import gpu_spec
from traces.errors import TraceError
from traces.tables import check_file

__all__ = ["ThroughputTable", "default_speedup", "load_throughputs"]

_ISOLATED = "null"
"""Key of the isolated (not co-located) throughput inside an entry."""


@dataclass(frozen=True)
class ThroughputTable:
    """Isolated throughput (steps/s of the gang) per (job type, worker type, scale factor).

    Immutable: built once by :func:`load_throughputs` or :meth:`from_mapping`; lookups never
    change it. Not every (job type, scale factor) exists on every worker type (Gavel's
    ``k80_unconsolidated`` has 77 keys, the others 83); a missing one is an error on lookup.

    Attributes:
        source: where the table came from (file path or a description), used in messages.
        worker_types: worker types in file order.
        job_types: job types, sorted.
        skipped_pairs: number of co-located pair entries skipped (all worker types).
    """

    source: str
    worker_types: tuple[str, ...]
    job_types: tuple[str, ...]
    skipped_pairs: int
    _rates: Mapping[tuple[str, str, int], float] = field(repr=False)

    @classmethod
    def from_mapping(cls, data: object, source: str = "<throughputs>") -> ThroughputTable:
        """Build a table from the parsed JSON layout described in the module docstring.

        Args:
            data: ``{worker_type: {"('<job_type>', <sf>)": {"null": x, ...}}}``.
            source: name used in error messages.

        Raises:
            TraceError: wrong layout, a key that is not a ``(str, int >= 1)`` tuple, two keys
                that denote the same tuple, or a missing, negative or non-finite ``"null"``.
        """
        if not isinstance(data, dict) or not data:
            raise TraceError(f"{source}: expected a non-empty JSON object of worker types")
        rates: dict[tuple[str, str, int], float] = {}
        pairs = 0
        for worker, entries in data.items():
            if not isinstance(entries, dict) or not entries:
                raise TraceError(f"{source}: [{worker!r}]: expected a non-empty object of jobs")
            for key, entry in entries.items():
                job_type, scale = _parse_key(key, source, worker)
                if (worker, job_type, scale) in rates:
                    raise TraceError(
                        f"{source}: [{worker!r}][{key!r}]: duplicate of another key for "
                        f"({job_type!r}, {scale})"
                    )
                rates[(worker, job_type, scale)] = _isolated_rate(entry, source, worker, key)
                pairs += len(entry) - 1
        return cls(
            source=source,
            worker_types=tuple(data),
            job_types=tuple(sorted({j for _, j, _ in rates})),
            skipped_pairs=pairs,
            _rates=MappingProxyType(rates),
        )

    def throughput(self, job_type: str, worker_type: str, scale_factor: int = 1) -> float:
        """Steps/s of a ``scale_factor``-GPU gang of ``job_type`` alone on ``worker_type``.

        Raises:
            TraceError: unknown worker type, or no entry for ``(job_type, scale_factor)`` on
                that worker type (the message lists what exists).
            ValueError: ``scale_factor`` is not an integer.
        """
        self._check_worker(worker_type)
        rate = self._rates.get((worker_type, job_type, _gang(scale_factor)))
        if rate is None:
            have = self.scale_factors(job_type, worker_type)
            why = f"scale factors {list(have)} only" if have else "no such job type"
            raise TraceError(
                f"{self.source}: [{worker_type!r}]: no entry for ({job_type!r}, "
                f"{int(scale_factor)}) ({why})"
            )
        return rate

    def has(self, job_type: str, worker_type: str, scale_factor: int = 1) -> bool:
        """Whether the table has an entry (possibly 0.0) for this combination."""
        return (worker_type, job_type, _gang(scale_factor)) in self._rates

    def scale_factors(self, job_type: str, worker_type: str) -> tuple[int, ...]:
        """Scale factors with an entry for ``job_type`` on ``worker_type``, ascending."""
        self._check_worker(worker_type)
        return tuple(sorted(s for w, j, s in self._rates if w == worker_type and j == job_type))

    def matrix(self, jobs: Sequence[tuple[str, int]], worker_types: Sequence[str]) -> np.ndarray:
        """Throughput matrix (jobs x worker types, steps/s) for the allocation policies.

        Args:
            jobs: ``(job_type, scale_factor)`` per job (row).
            worker_types: the columns.

        Raises:
            TraceError: as :meth:`throughput`, for the first missing combination.
        """
        out = np.empty((len(jobs), len(worker_types)), dtype=np.float64)
        for i, (job_type, scale) in enumerate(jobs):
            for k, worker in enumerate(worker_types):
                out[i, k] = self.throughput(job_type, worker, scale)
        return out

    def _check_worker(self, worker_type: str) -> None:
        if worker_type not in self.worker_types:
            raise TraceError(
                f"{self.source}: no worker type {worker_type!r} (has {list(self.worker_types)})"
            )


def load_throughputs(path: str | Path) -> ThroughputTable:
    """Read a Gavel/Shockwave throughput file (layout in the module docstring).

    Args:
        path: the ``.json`` file.

    Returns:
        The table; :attr:`ThroughputTable.source` is the path.

    Raises:
        TraceError: missing or empty file, invalid JSON, duplicate keys within one object, or
            any problem listed in :meth:`ThroughputTable.from_mapping`; the message names the
            file and the key path (``[worker][key]``).
    """
    p = check_file(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{p}: not valid JSON ({exc})") from exc
    except _DuplicateKey as exc:
        raise TraceError(f"{p}: duplicate key {exc.args[0]!r} in one JSON object") from None
    return ThroughputTable.from_mapping(data, str(p))


def default_speedup(gpu_type: str, reference_type: str, compute_fraction: float) -> float:
    """Speed of a job on ``gpu_type`` relative to ``reference_type``, from the GPU table.

    The job's step time on the reference GPU is split into a compute-bound share
    ``compute_fraction`` (scales with peak FLOP/s) and a memory-bound share
    ``1 - compute_fraction`` (scales with HBM bandwidth)::

        speedup = 1 / (c * F_ref / F_gpu + (1 - c) * B_ref / B_gpu)

    i.e. the time-weighted (harmonic) mix of the FLOP/s ratio and the bandwidth ratio; ``c = 1``
    gives the FLOP/s ratio, ``c = 0`` the bandwidth ratio. Figures are the datasheet peaks of
    :data:`simulator.core.gpus.GPU_SPECS` (dense FP16/BF16 tensor FLOP/s), so the FLOP/s ratio
    between tensor-core generations (P100 21.2 vs V100 125 TFLOP/s) is much larger than the
    measured speedups in Gavel's table: this is a default for clusters without measurements,
    not a substitute for them.

    Args:
        gpu_type: GPU model (any spelling :func:`simulator.core.gpus.gpu_spec` accepts).
        reference_type: the model on which the job's ``duration`` holds.
        compute_fraction: share of the step time that is compute-bound, in [0, 1].

    Returns:
        The factor by which the job runs faster (> 1) or slower (< 1) on ``gpu_type``.

    Raises:
        KeyError: a model is not in the GPU table.
        ValueError: ``compute_fraction`` outside [0, 1], or a model with unknown (NaN) figures.
    """
    c = float(compute_fraction)
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"compute_fraction must be in [0, 1], got {compute_fraction}")
    gpu, ref = gpu_spec(gpu_type), gpu_spec(reference_type)
    for s in (gpu, ref):
        if not (math.isfinite(s.peak_tflops) and math.isfinite(s.hbm_gbps)):
            raise ValueError(f"GPU {s.name} has no published FLOP/s or bandwidth figures")
    return 1.0 / (c * ref.peak_tflops / gpu.peak_tflops + (1.0 - c) * ref.hbm_gbps / gpu.hbm_gbps)


def _gang(scale_factor: int) -> int:
    if scale_factor != int(scale_factor):
        raise ValueError(f"scale_factor must be an integer number of GPUs, got {scale_factor!r}")
    return int(scale_factor)


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _parse_key(key: str, source: str, worker: str) -> tuple[str, int]:
    """``"('<job_type>', <sf>)"`` -> (job_type, sf), or a TraceError naming the key."""
    try:
        value = ast.literal_eval(key)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
        and value[1] >= 1
    )
    if not ok:
        raise TraceError(
            f"{source}: [{worker!r}][{key!r}]: expected a key \"('<job_type>', <scale_factor "
            '>= 1>)"'
        )
    return value[0], value[1]


def _isolated_rate(entry: object, source: str, worker: str, key: str) -> float:
    """The entry's ``"null"`` throughput, checked finite and >= 0."""
    where = f"{source}: [{worker!r}][{key!r}]"
    if not isinstance(entry, dict) or _ISOLATED not in entry:
        raise TraceError(f'{where}: expected an object with a "{_ISOLATED}" throughput')
    x = entry[_ISOLATED]
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x < 0:
        raise TraceError(
            f'{where}["{_ISOLATED}"]: expected a finite throughput >= 0 steps/s, got {x!r}'
        )
    return float(x)
