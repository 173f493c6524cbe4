"""Model sizes, KV capacity and the step-time models (roofline and profiled table)."""

import math

import numpy as np
import pandas as pd
import pytest

from simulator.core.gpus import gpu_spec
from simulator.models.serving import (
    MODELS,
    ModelSpec,
    RooflineStepTime,
    TableStepTime,
    kv_capacity_tokens,
    model_spec,
)

H100 = gpu_spec("H100")


def test_kv_bytes_per_token_of_presets():
    # 2 (K and V) x layers x kv_heads x head_dim x 2 bytes (bf16)
    assert MODELS["llama-2-70b"].kv_bytes_per_token == 2 * 80 * 8 * 128 * 2 == 327_680
    assert MODELS["llama-2-7b"].kv_bytes_per_token == 2 * 32 * 32 * 128 * 2 == 524_288
    assert MODELS["llama-3-8b"].kv_bytes_per_token == 131_072
    fp8 = ModelSpec("x", 1e9, layers=2, kv_heads=2, head_dim=4, kv_bytes_per_value=1)
    assert fp8.kv_bytes_per_token == 2 * 2 * 2 * 4 * 1
    assert model_spec({"name": "y", "params": 1e9, "layers": 1, "kv_heads": 1, "head_dim": 8})
    with pytest.raises(KeyError, match="presets"):
        model_spec("gpt-9")


def test_kv_capacity_formula_and_no_room():
    m = MODELS["llama-2-70b"]
    cap = kv_capacity_tokens(m, H100, tp=4, memory_utilization=0.9)
    assert cap == math.floor((80e9 * 4 * 0.9 - 68.98e9 * 2) / 327_680)
    with pytest.raises(ValueError, match="no KV cache"):
        kv_capacity_tokens(m, H100, tp=1)  # 138 GB of weights on one 80 GB GPU


def test_roofline_decode_70b_batch1_is_bounded_by_weights_over_bandwidth():
    # A decode step must at least stream all weights once: 141 GB / 3.35 TB/s = 42.1 ms.
    m = MODELS["llama-3-70b"]
    bound = m.weight_bytes / (H100.hbm_gbps * 1e9)
    model = RooflineStepTime(m, H100, tp=1)
    t = model.step(prefill=0, decode=1, kv=1024)
    print(f"70B bf16 decode, batch 1, 1 x H100: bound {bound * 1e3:.1f} ms, model {t * 1e3:.1f} ms")
    assert bound == pytest.approx(0.0421, abs=5e-4)
    assert t >= bound
    # default efficiency 0.8 + 2 ms overhead: weights/(0.8 x HBM) + KV read + 2 ms
    expected = (m.weight_bytes + m.kv_bytes_per_token * 1025) / (3.35e12 * 0.8) + 0.002
    assert t == pytest.approx(expected)
    assert t < 1.5 * bound
    # ideal hardware (efficiency 1, no overhead) reaches the bound up to the KV read
    ideal = RooflineStepTime(m, H100, tp=1, memory_efficiency=1.0, step_overhead_s=0.0)
    assert ideal.step(0, 1, 0) == pytest.approx(bound, rel=1e-5)


def test_roofline_regimes_and_tensor_parallel():
    m = MODELS["llama-3-8b"]
    one, four = RooflineStepTime(m, H100, 1), RooflineStepTime(m, H100, 4)
    # a 4k-token prefill chunk is compute bound: 2 x params x tokens / (peak x 0.6)
    flops = 2 * m.params * 4096
    assert one.step(4096, 0, 0) == pytest.approx(flops / (989e12 * 0.6) + 0.002)
    # decode at batch 8 is memory bound: time barely depends on the batch
    assert one.step(0, 8, 0) == pytest.approx(one.step(0, 1, 0), rel=0.01)
    # TP divides both the compute and the memory time
    assert four.step(4096, 0, 0) - 0.002 == pytest.approx((one.step(4096, 0, 0) - 0.002) / 4)


def test_decode_run_equals_summed_steps():
    m = MODELS["llama-2-7b"]
    for model in (RooflineStepTime(m, H100, 2), TableStepTime([1, 64, 512], [0.01, 0.02, 0.05])):
        cum = model.decode_run(batch=12, kv=3000, steps=50)
        steps = [model.step(0, 12, 3000 + 12 * i) for i in range(50)]
        np.testing.assert_allclose(cum, np.cumsum(steps), rtol=1e-12)


def test_table_interpolates_and_extrapolates(tmp_path):
    t = TableStepTime([512, 1, 64], [0.05, 0.01, 0.02])  # unsorted input
    assert t.step(0, 1, 10**6) == 0.01
    assert t.step(32, 0, 0) == pytest.approx(0.01 + 31 / 63 * 0.01)
    assert t.time(1024) == pytest.approx(0.05 + 512 * 0.03 / 448)
    csv = tmp_path / "profile.csv"
    pd.DataFrame(
        {
            "model": ["llama-3-8b"] * 3 + ["other"],
            "gpu": "H100",
            "tp": 1,
            "batch_tokens": [1, 64, 512, 1],
            "time_s": [0.01, 0.02, 0.05, 9.0],
        }
    ).to_csv(csv, index=False)
    assert TableStepTime.from_csv(csv, "llama-3-8b", "H100", 1).time(64) == 0.02
    with pytest.raises(ValueError, match="no rows"):
        TableStepTime.from_csv(csv, "llama-3-8b", "A10", 1)
    with pytest.raises(ValueError, match="distinct"):
        TableStepTime([1, 1], [0.1, 0.2])
