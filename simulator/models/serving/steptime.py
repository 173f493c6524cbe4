"""Iteration (step) time of a replica: a roofline model over the GPU table, or a profiled table.

One iteration of continuous batching processes ``prefill`` prompt tokens (chunks of prompts
being prefilled) and ``decode`` tokens (one per request in its decode phase) and reads the KV
cache of ``kv`` tokens already cached for the scheduled requests. The roofline model
(:class:`RooflineStepTime`) charges, for a replica of ``tp`` GPUs::

    tokens  = prefill + decode
    FLOPs   = 2 x params x tokens
    bytes   = weight_bytes + kv_bytes_per_token x (kv + tokens)      # read weights + KV, write KV
    time    = max(FLOPs / (peak_flops x compute_efficiency x tp),
                  bytes / (hbm_bandwidth x memory_efficiency x tp)) + step_overhead

``peak_flops`` (dense BF16) and ``hbm_bandwidth`` come from :mod:`simulator.core.gpus`. Decode
steps at small batch are memory bound (the weights are read once per step, whatever the batch);
prefill chunks of hundreds of tokens are compute bound. Attention FLOPs (``4 x layers x
hidden x context`` per token, a few percent of ``2 x params`` below 4k context for 7B-70B
models) and tensor-parallel all-reduce time are not modelled separately: ``step_overhead`` and
the efficiency factors absorb them. :class:`TableStepTime` replaces the model with measured
times: batch tokens -> seconds for one (model, GPU, TP), linearly interpolated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from simulator.core.gpus import GPUSpec
from simulator.models.serving.model import ModelSpec

__all__ = ["StepTime", "RooflineStepTime", "TableStepTime", "PROFILE_COLUMNS"]

PROFILE_COLUMNS = ("model", "gpu", "tp", "batch_tokens", "time_s")
"""Columns of a profiled step-time CSV: one row per measured (model, GPU, TP, batch tokens)."""


class StepTime(Protocol):
    """Seconds one replica iteration takes."""

    def step(self, prefill: int, decode: int, kv: int) -> float:
        """One iteration with ``prefill`` + ``decode`` new tokens reading ``kv`` cached tokens."""
        ...

    def decode_run(self, batch: int, kv: int, steps: int) -> np.ndarray:
        """End offsets (s, cumulative) of ``steps`` decode-only iterations of ``batch`` requests.

        The first iteration reads ``kv`` cached tokens; each one adds ``batch`` tokens.
        """
        ...


class RooflineStepTime:
    """Roofline iteration time of ``model`` on ``tp`` GPUs of model ``gpu`` (see module doc).

    Args:
        model: the served model.
        gpu: the GPU specification (``peak_tflops``, ``hbm_gbps``).
        tp: tensor-parallel degree (GPUs per replica).
        compute_efficiency: achieved share of peak FLOP/s (model FLOPs utilisation).
        memory_efficiency: achieved share of peak HBM bandwidth.
        step_overhead_s: fixed seconds per iteration (scheduling, kernel launches, sampling).
    """

    def __init__(
        self,
        model: ModelSpec,
        gpu: GPUSpec,
        tp: int = 1,
        compute_efficiency: float = 0.6,
        memory_efficiency: float = 0.8,
        step_overhead_s: float = 0.002,
    ) -> None:
        if not (np.isfinite(gpu.peak_tflops) and np.isfinite(gpu.hbm_gbps)):
            raise ValueError(f"GPU {gpu.name} has no published FLOP/s or bandwidth figures")
        for name, v in (
            ("compute_efficiency", compute_efficiency),
            ("memory_efficiency", memory_efficiency),
        ):
            if not 0 < v <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        if tp < 1 or step_overhead_s < 0:
            raise ValueError("tp must be >= 1 and step_overhead_s >= 0")
        self.model, self.gpu, self.tp = model, gpu, int(tp)
        self.overhead = float(step_overhead_s)
        self.flops_per_token = 2.0 * model.params
        self.flops_per_s = gpu.peak_tflops * 1e12 * compute_efficiency * tp
        self.bytes_per_s = gpu.hbm_gbps * 1e9 * memory_efficiency * tp
        self.weights = model.weight_bytes
        self.kv_bytes = model.kv_bytes_per_token

    def step(self, prefill: int, decode: int, kv: int) -> float:
        """Seconds of one iteration (see module doc for the formula)."""
        tokens = prefill + decode
        compute = self.flops_per_token * tokens / self.flops_per_s
        memory = (self.weights + self.kv_bytes * (kv + tokens)) / self.bytes_per_s
        return (compute if compute > memory else memory) + self.overhead

    def decode_run(self, batch: int, kv: int, steps: int) -> np.ndarray:
        """Cumulative end offsets of ``steps`` decode iterations (vectorised :meth:`step`)."""
        compute = self.flops_per_token * batch / self.flops_per_s
        cached = kv + batch * np.arange(1, steps + 1, dtype=np.float64)  # kv + tokens, per step
        memory = (self.weights + self.kv_bytes * cached) / self.bytes_per_s
        return np.cumsum(np.maximum(memory, compute) + self.overhead)


class TableStepTime:
    """Profiled iteration times: seconds as a function of the tokens in the batch.

    Times are interpolated linearly between measured points; below the first point the first
    time is used, beyond the last one the last segment's slope extends the table. The KV-cache
    size is not an input (profile at a representative context length).

    Args:
        batch_tokens: measured batch sizes in tokens (strictly increasing after sorting).
        time_s: seconds of one iteration at each size.
    """

    def __init__(self, batch_tokens: np.ndarray, time_s: np.ndarray) -> None:
        x = np.asarray(batch_tokens, dtype=np.float64)
        y = np.asarray(time_s, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        if x.size == 0 or x.size != y.size:
            raise ValueError("step-time table needs matching, non-empty batch_tokens and time_s")
        if (np.diff(x) <= 0).any() or not (y > 0).all() or not np.isfinite(y).all():
            raise ValueError("step-time table: batch_tokens must be distinct, times > 0")
        self.x, self.y = x, y
        self.slope = (y[-1] - y[-2]) / (x[-1] - x[-2]) if x.size > 1 else 0.0

    @classmethod
    def from_csv(
        cls, path: str | Path | pd.DataFrame, model: str, gpu: str, tp: int
    ) -> TableStepTime:
        """Read the rows of (``model``, ``gpu``, ``tp``) from a CSV with :data:`PROFILE_COLUMNS`.

        Raises:
            ValueError: missing columns, or no rows for that combination.
        """
        table = path if isinstance(path, pd.DataFrame) else pd.read_csv(path)
        missing = [c for c in PROFILE_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"step-time profile {path}: missing columns {missing}")
        rows = table[
            (table["model"].astype(str) == model)
            & (table["gpu"].astype(str) == gpu)
            & (table["tp"].astype(int) == int(tp))
        ]
        if rows.empty:
            raise ValueError(
                f"step-time profile {path}: no rows for model={model!r}, gpu={gpu!r}, tp={tp}"
            )
        return cls(rows["batch_tokens"].to_numpy(), rows["time_s"].to_numpy())

    def time(self, tokens: float) -> float:
        """Seconds of one iteration of ``tokens`` batch tokens."""
        x, y = self.x, self.y
        if tokens > x[-1]:
            return float(y[-1] + self.slope * (tokens - x[-1]))
        return float(np.interp(tokens, x, y))

    def step(self, prefill: int, decode: int, kv: int) -> float:
        """Seconds of one iteration of ``prefill + decode`` tokens (``kv`` is ignored)."""
        return self.time(prefill + decode)

    def decode_run(self, batch: int, kv: int, steps: int) -> np.ndarray:
        """Cumulative end offsets of ``steps`` decode iterations of ``batch`` tokens each."""
        return self.time(batch) * np.arange(1, steps + 1, dtype=np.float64)
