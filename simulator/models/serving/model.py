"""Model specifications for LLM serving: weight bytes, KV-cache bytes per token, KV capacity.

A transformer decoder is described by its parameter count and the shape of its attention
cache. Per token every layer stores one key and one value vector for each KV head:

``kv_bytes_per_token = 2 x layers x kv_heads x head_dim x kv_bytes_per_value``

(grouped-query attention models have ``kv_heads`` < attention heads). Weights take
``params x bytes_per_param`` bytes. A replica with ``tp`` GPUs of ``memory_gb`` each keeps

``kv_capacity_tokens = floor((memory_gb x 1e9 x tp x memory_utilization - weight_bytes)
/ kv_bytes_per_token)``

tokens of KV cache (``memory_utilization`` is the share of device memory the server may use,
0.9 in vLLM; activations and CUDA graphs live in the rest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

from simulator.core.gpus import GPUSpec

__all__ = ["ModelSpec", "MODELS", "model_spec", "kv_capacity_tokens"]


@dataclass(frozen=True)
class ModelSpec:
    """Size and attention-cache shape of a decoder-only LLM.

    Attributes:
        name: model name.
        params: parameter count.
        layers: transformer layers.
        kv_heads: key/value heads per layer (fewer than attention heads under GQA).
        head_dim: dimension of one head.
        bytes_per_param: bytes per weight (2 = bf16/fp16, 1 = fp8/int8).
        kv_bytes_per_value: bytes per cached key/value element (None = ``bytes_per_param``).
    """

    name: str
    params: float
    layers: int
    kv_heads: int
    head_dim: int
    bytes_per_param: float = 2.0
    kv_bytes_per_value: float | None = None

    def __post_init__(self) -> None:
        for field in ("params", "layers", "kv_heads", "head_dim", "bytes_per_param"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"model {self.name!r}: {field} must be > 0, got {value!r}")

    @property
    def weight_bytes(self) -> float:
        """Bytes of the weights (``params x bytes_per_param``)."""
        return float(self.params * self.bytes_per_param)

    @property
    def kv_bytes_per_token(self) -> float:
        """Bytes of KV cache one token occupies (keys and values of every layer)."""
        per_value = (
            self.bytes_per_param if self.kv_bytes_per_value is None else self.kv_bytes_per_value
        )
        return float(2 * self.layers * self.kv_heads * self.head_dim * per_value)


MODELS: MappingProxyType[str, ModelSpec] = MappingProxyType(
    {
        m.name: m
        for m in (
            # Shapes from the published model cards / config.json files (bf16 weights).
            ModelSpec("llama-2-7b", 6.74e9, layers=32, kv_heads=32, head_dim=128),
            ModelSpec("llama-2-13b", 13.0e9, layers=40, kv_heads=40, head_dim=128),
            ModelSpec("llama-2-70b", 68.98e9, layers=80, kv_heads=8, head_dim=128),
            ModelSpec("llama-3-8b", 8.03e9, layers=32, kv_heads=8, head_dim=128),
            ModelSpec("llama-3-70b", 70.55e9, layers=80, kv_heads=8, head_dim=128),
            ModelSpec("mistral-7b", 7.24e9, layers=32, kv_heads=8, head_dim=128),
        )
    }
)
"""Built-in model presets by name (read-only)."""


def model_spec(model: str | dict | ModelSpec) -> ModelSpec:
    """A :class:`ModelSpec` from a preset name, a mapping of its fields, or a spec itself.

    Raises:
        KeyError: an unknown preset name (the message lists the presets).
    """
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, dict):
        return ModelSpec(**model)
    if model not in MODELS:
        raise KeyError(f"unknown model {model!r}; presets: {', '.join(MODELS)}")
    return MODELS[model]


def kv_capacity_tokens(
    model: ModelSpec, gpu: GPUSpec, tp: int, memory_utilization: float = 0.9
) -> int:
    """Tokens of KV cache a replica of ``tp`` GPUs holds after loading the weights.

    Raises:
        ValueError: the weights do not fit in the usable memory (no room for any KV cache).
    """
    usable = gpu.memory_gb * 1e9 * tp * memory_utilization
    free = usable - model.weight_bytes
    tokens = math.floor(free / model.kv_bytes_per_token) if free > 0 else 0
    if tokens < 1:
        raise ValueError(
            f"model {model.name} ({model.weight_bytes / 1e9:.1f} GB of weights) leaves no KV "
            f"cache on {tp} x {gpu.name} ({gpu.memory_gb:g} GB x {memory_utilization:g} usable "
            "each): raise tensor_parallel or pick a larger GPU"
        )
    return tokens
