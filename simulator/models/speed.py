"""Speed of every job on every GPU model of a cluster, relative to a reference GPU type.

A job's ``duration`` is its run time on the *reference* type (``sim.speed_reference``). On a
GPU model ``m`` it progresses at ``speed[j, m]`` seconds of reference work per second, so it
needs ``duration / speed`` seconds there. Each cell comes from the first source that has it:

1. **a throughput table** (``sim.throughputs``, Gavel's ``simulation_throughputs.json`` or
   Shockwave's ``tacc_throughputs.json``) for a job with a ``job_type`` column whose
   ``(job_type, num_gpus)`` the table has on the reference's worker type:
   ``speed = T[job_type, num_gpus, worker(m)] / T[job_type, num_gpus, worker(ref)]``. A model
   whose worker type lacks the entry, or lists 0.0 steps/s, gets speed 0: the job cannot run
   there (the engine takes that model out of the job's ``type_mask``);
2. **per-job columns** ``speedup_<gpu_type>`` (e.g. ``speedup_A100``), the job's speed on
   that model relative to the reference (divided by ``speedup_<reference>`` if that column
   exists); an empty cell falls through;
3. **the default from the GPU table**: :func:`simulator.models.throughput.default_speedup`
   with ``compute_fraction`` (a model without published FLOP/s and bandwidth, e.g. ``K80`` or
   ``MISC``, is an error here: give a table or columns for it).

The reference type always has speed 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.core.gpus import canonical_gpu_name
from simulator.models.throughput import ThroughputTable, default_speedup, load_throughputs
from traces.errors import TraceError

__all__ = ["SPEED_COLUMN_PREFIX", "SPEED_KEYS", "SpeedModel", "speed_model_from_config"]

SPEED_KEYS = ("speed_reference", "throughputs", "compute_fraction", "speed_worker_types")
"""The ``sim`` options of GPU-type speeds (all of them are ignored while the first is null)."""

SPEED_COLUMN_PREFIX = "speedup_"
"""Prefix of the per-job speed columns (``speedup_<gpu_type>``)."""


class SpeedModel:
    """Per-(job, GPU model) speeds from a throughput table, job columns, or the GPU table.

    Args:
        reference: the GPU type on which a job's ``duration`` holds (e.g. ``V100``).
        throughputs: a Gavel/Shockwave throughput file (or a loaded table); None = no table.
        compute_fraction: compute-bound share of a job's step time on the reference, in
            [0, 1], for the default from the GPU table.
        worker_types: cluster GPU model -> the table's worker type (default: the model name
            in lower case, ``V100`` -> ``v100``).
    """

    def __init__(
        self,
        reference: str,
        throughputs: str | Path | ThroughputTable | None = None,
        compute_fraction: float = 0.5,
        worker_types: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(reference, str) or not reference.strip():
            raise ValueError(f"sim.speed_reference: expected a GPU type name, got {reference!r}")
        c = float(compute_fraction)
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"sim.compute_fraction must be in [0, 1], got {compute_fraction!r}")
        self.reference = canonical_gpu_name(reference)
        self.compute_fraction = c
        if throughputs is None or isinstance(throughputs, ThroughputTable):
            self.table = throughputs
        else:
            self.table = load_throughputs(throughputs)
        self.worker_types = {canonical_gpu_name(k): str(v) for k, v in (worker_types or {}).items()}

    def worker_type(self, model: str) -> str:
        """The table's worker type for a cluster GPU model."""
        return self.worker_types.get(canonical_gpu_name(model), canonical_gpu_name(model).lower())

    def matrix(self, frame: pd.DataFrame, models: Sequence[str]) -> np.ndarray:
        """Speeds ``[len(frame), len(models)]`` (the module docstring gives the sources).

        Raises:
            TraceError: the table lacks a worker type for a model, or a job's reference
                throughput is 0.
            ValueError: a cell needs the default for a model without published figures, or a
                ``speedup_*`` value is negative or not finite.
        """
        n, models = len(frame), list(models)
        out = np.full((n, len(models)), np.nan)
        if self.table is not None and "job_type" in frame.columns:
            self._from_table(frame, models, out)
        self._from_columns(frame, models, out)
        for k, m in enumerate(models):
            todo = np.isnan(out[:, k])
            if todo.any():
                out[todo, k] = self._default(m, frame, todo)
        return out

    def _from_table(self, frame: pd.DataFrame, models: list[str], out: np.ndarray) -> None:
        table = self.table
        ref_w = self.worker_type(self.reference)
        if ref_w not in table.worker_types:
            raise TraceError(
                f"{table.source}: no worker type {ref_w!r} for the reference "
                f"{self.reference} (has {list(table.worker_types)}); set sim.speed_worker_types"
            )
        for m in models:
            if canonical_gpu_name(m) != self.reference and self.worker_type(m) not in (
                table.worker_types
            ):
                raise TraceError(
                    f"{table.source}: no worker type {self.worker_type(m)!r} for the cluster's "
                    f"GPU model {m} (has {list(table.worker_types)}); set sim.speed_worker_types"
                )
        keys = pd.Series(
            list(zip(frame["job_type"].astype(str), frame["num_gpus"].astype(int), strict=True))
        )
        codes, uniq = pd.factorize(keys)
        rows = np.full((len(uniq), len(models)), np.nan)
        for u, (job_type, sf) in enumerate(uniq):
            if not table.has(job_type, ref_w, sf):
                continue  # not in the table: the next source
            ref = table.throughput(job_type, ref_w, sf)
            if ref <= 0.0:
                raise TraceError(
                    f"{table.source}: ({job_type!r}, {sf}) has 0 steps/s on the reference "
                    f"{ref_w!r}, so its duration there is undefined"
                )
            for k, m in enumerate(models):
                w = self.worker_type(m)
                if canonical_gpu_name(m) == self.reference:
                    rows[u, k] = 1.0
                elif table.has(job_type, w, sf):
                    rows[u, k] = table.throughput(job_type, w, sf) / ref
                else:
                    rows[u, k] = 0.0
        out[:] = rows[codes]

    def _from_columns(self, frame: pd.DataFrame, models: list[str], out: np.ndarray) -> None:
        cols = {
            canonical_gpu_name(c[len(SPEED_COLUMN_PREFIX) :]): c
            for c in frame.columns
            if isinstance(c, str) and c.startswith(SPEED_COLUMN_PREFIX)
        }
        if not cols:
            return
        ref = _speed_column(frame, cols[self.reference]) if self.reference in cols else None
        for k, m in enumerate(models):
            name = canonical_gpu_name(m)
            if name == self.reference:
                vals = np.ones(len(frame))
            elif name in cols:
                vals = _speed_column(frame, cols[name])
                if ref is not None:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        vals = np.where(ref > 0, vals / ref, np.nan)
            else:
                continue
            todo = np.isnan(out[:, k])
            out[todo, k] = vals[todo]

    def _default(self, model: str, frame: pd.DataFrame, todo: np.ndarray) -> float:
        if canonical_gpu_name(model) == self.reference:
            return 1.0
        try:
            return default_speedup(model, self.reference, self.compute_fraction)
        except (KeyError, ValueError) as exc:
            first = frame["job_id"].iloc[int(np.flatnonzero(todo)[0])] if "job_id" in frame else 0
            raise ValueError(
                f"job {first!r}: no speed on GPU model {model} (no throughput-table entry, no "
                f"{SPEED_COLUMN_PREFIX}{model} value) and no default from the GPU table: {exc}"
            ) from None


def _speed_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A ``speedup_*`` column as float64 (NaN = empty), checked finite and >= 0."""
    vals = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
    bad = ~np.isnan(vals) & ~((vals >= 0) & np.isfinite(vals))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"column {name!r}, row {k}: expected a finite speed >= 0, got {frame[name].iloc[k]!r}"
        )
    return vals


def speed_model_from_config(options: dict) -> SpeedModel | None:
    """Pop the ``sim`` speed options from ``options``; the model, or None when it is off.

    Keys: ``speed_reference`` (None = off), ``throughputs``, ``compute_fraction``,
    ``speed_worker_types``.
    """
    ref = options.pop("speed_reference", None)
    tput = options.pop("throughputs", None)
    frac = options.pop("compute_fraction", 0.5)
    workers = options.pop("speed_worker_types", None)
    if ref is None:
        if tput is not None:
            raise ValueError(
                "sim.throughputs is set but sim.speed_reference is null: name the GPU type "
                "on which a job's duration holds (e.g. sim.speed_reference=V100)"
            )
        return None
    return SpeedModel(ref, tput, frac, workers)
