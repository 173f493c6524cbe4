"""Table of GPU models with published specifications.

Figures are the vendors' published datasheet numbers for the SXM (or stated) variant:
``memory_gb`` is HBM/GDDR capacity, ``peak_tflops`` is dense FP16/BF16 tensor throughput
(without structured sparsity) and ``hbm_gbps`` is memory bandwidth in GB/s. Models that appear
in public traces under undisclosed internal codes (Alibaba's ``G2``/``G3``, PAI's ``MISC``) are
listed with unknown (NaN) figures so that clusters built from those inventories still load;
any model code that needs a figure for an unknown model raises a clear error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["GPUSpec", "GPU_SPECS", "canonical_gpu_name", "gpu_spec"]


@dataclass(frozen=True)
class GPUSpec:
    """Published specification of one GPU model.

    Attributes:
        name: canonical model name used throughout the simulator.
        memory_gb: device memory in GB.
        peak_tflops: dense FP16/BF16 tensor-core peak in TFLOP/s.
        hbm_gbps: memory bandwidth in GB/s.
        source: where the figures come from.
    """

    name: str
    memory_gb: float
    peak_tflops: float
    hbm_gbps: float
    source: str


_NAN = math.nan

GPU_SPECS: dict[str, GPUSpec] = {
    s.name: s
    for s in (
        GPUSpec("P100", 16, 21.2, 732, "NVIDIA Tesla P100 SXM2 datasheet"),
        GPUSpec("V100", 16, 125, 900, "NVIDIA V100 SXM2 datasheet (16 GB)"),
        GPUSpec("V100M32", 32, 125, 900, "NVIDIA V100 SXM2 datasheet (32 GB)"),
        GPUSpec("T4", 16, 65, 320, "NVIDIA T4 datasheet"),
        GPUSpec("A10", 24, 125, 600, "NVIDIA A10 datasheet"),
        GPUSpec("A100-40GB", 40, 312, 1555, "NVIDIA A100 SXM4 datasheet"),
        GPUSpec("A100-80GB", 80, 312, 2039, "NVIDIA A100 SXM4 80GB datasheet"),
        GPUSpec("H100", 80, 989, 3350, "NVIDIA H100 SXM5 datasheet"),
        GPUSpec("H200", 141, 989, 4800, "NVIDIA H200 SXM datasheet"),
        GPUSpec("B200", 180, 2250, 8000, "NVIDIA DGX/HGX B200 datasheet (per GPU)"),
        GPUSpec("GB200", 186, 2500, 8000, "NVIDIA GB200 NVL72 datasheet (per GPU)"),
        GPUSpec("G2", _NAN, _NAN, _NAN, "Alibaba openb internal code, undisclosed"),
        GPUSpec("G3", _NAN, _NAN, _NAN, "Alibaba openb internal code, undisclosed"),
        GPUSpec("MISC", _NAN, _NAN, _NAN, "Alibaba PAI: older K40m/K80/M60 mix"),
    )
}

_ALIASES = {
    "V100M16": "V100",
    "V100-16GB": "V100",
    "V100-32GB": "V100M32",
    "A100": "A100-80GB",
    "H100-SXM": "H100",
}


def canonical_gpu_name(name: str) -> str:
    """Return the canonical spelling of a GPU model name (aliases resolved, case-insensitive).

    Unknown names are returned unchanged so that inventories with private model codes load.
    """
    key = name.strip()
    if key in GPU_SPECS:
        return key
    upper = {k.upper(): k for k in GPU_SPECS}
    upper.update({k.upper(): v for k, v in _ALIASES.items()})
    return upper.get(key.upper(), key)


def gpu_spec(name: str) -> GPUSpec:
    """Look up the specification of a GPU model.

    Raises:
        KeyError: the model is not in the table (message lists the known models).
    """
    canon = canonical_gpu_name(name)
    if canon not in GPU_SPECS:
        raise KeyError(f"unknown GPU model {name!r}; known models: {', '.join(GPU_SPECS)}")
    return GPU_SPECS[canon]
