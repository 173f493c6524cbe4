"""Azure LLM inference trace loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TRACES

from traces import azure_llm
from traces.canonical import TraceError

SHARED = TRACES / "azure-llm-inference-2023"
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
ROWS = (
    "2023-11-16 18:15:46.6805900,374,44\r\n"
    "2023-11-16 18:15:50.9951690,396,109\r\n"
    "2023-11-16 18:15:51.2224670,879,55\r\n"
)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "conv.csv"
    p.write_bytes(text.encode())
    return p


def test_bundled_sample():
    trace = azure_llm.load()
    jobs = trace.jobs
    assert len(jobs) == 2000 and trace.report == {}
    assert (jobs["kind"] == "infer").all() and jobs["submit_time"].is_monotonic_increasing
    assert jobs["job_id"].iloc[0] == "azure_llm_conv_sample-0"
    assert jobs["prompt_tokens"].iloc[:3].tolist() == [374, 396, 879]
    assert jobs["output_tokens"].iloc[:3].tolist() == [44, 109, 55]
    np.testing.assert_allclose(jobs["submit_time"].iloc[:3], [0.0, 4.314579, 4.541877], atol=1e-6)
    assert jobs["duration"].iloc[0] == pytest.approx(0.05 + 374 * 1e-4 + 44 * 0.02)
    assert (jobs["num_gpus"] == 1).all() and (jobs["gpu_milli"] == 1000).all()


def test_sample_is_verbatim_prefix():
    path = SHARED / "AzureLLMInferenceTrace_conv.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    sample = azure_llm.SAMPLE.read_bytes()
    assert path.read_bytes()[: len(sample)] == sample


def test_full_files():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    code = azure_llm.load(str(SHARED / "AzureLLMInferenceTrace_code.csv"))
    conv = azure_llm.load(str(SHARED / "AzureLLMInferenceTrace_conv.csv"))
    assert (len(code.jobs), len(conv.jobs)) == (8819, 19366)
    assert conv.jobs["submit_time"].max() == pytest.approx(58.4 * 60, abs=60)


def test_placeholder_duration_options(tmp_path):
    p = _write(tmp_path, HEADER + ROWS)
    jobs = azure_llm.load(
        str(p),
        base_duration=1.0,
        prefill_s_per_token=0.0,
        decode_s_per_token=0.01,
        num_gpus=2,
        gpu_type="A100",
        queue="chat",
    ).jobs
    assert jobs["duration"].tolist() == pytest.approx([1.44, 2.09, 1.55])
    assert set(jobs["queue"]) == {"chat"} and set(jobs["gpu_type"]) == {"A100"}
    assert (jobs["num_gpus"] == 2).all()
    with pytest.raises(ValueError, match="decode_s_per_token"):
        azure_llm.load(str(p), decode_s_per_token=-1)


def test_zero_duration_rule(tmp_path):
    p = _write(tmp_path, HEADER + ROWS.replace("396,109", "0,0"))
    trace = azure_llm.load(str(p), base_duration=0.0, zero_duration="repair", min_duration=0.5)
    assert trace.jobs["duration"].iloc[1] == 0.5
    assert trace.report == {"repaired_zero_duration": 1}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("2023-11-16 18:15:50.9951690", "2023-11-16 18:15:50", "column TIMESTAMP: cannot parse"),
        ("2023-11-16 18:15:50.9951690", "yesterday", "column TIMESTAMP: cannot parse"),
        ("396,109", "-396,109", "column ContextTokens: expected a token count >= 0"),
        ("396,109", "396,", "column GeneratedTokens: missing value"),
        ("396,109", "396,1.5", "column GeneratedTokens: expected a whole number"),
        ("396,109", "396,inf", "column GeneratedTokens: expected a finite number"),
    ],
)
def test_broken_rows(tmp_path, old, new, expected):
    p = _write(tmp_path, HEADER + ROWS.replace(old, new))
    with pytest.raises(TraceError) as err:
        azure_llm.load(str(p))
    assert str(err.value).startswith(f"{p}: row 2 (line 3), {expected}"), str(err.value)


def test_wrong_columns(tmp_path):
    p = _write(tmp_path, "timestamp,prompt,output\n2023-11-16 18:15:46.6805900,1,1\n")
    with pytest.raises(TraceError, match=r"missing column\(s\) \['TIMESTAMP'"):
        azure_llm.load(str(p))


def test_options():
    t0 = pd.Timestamp("2023-11-16 18:15:46.6805900", tz="UTC").timestamp()
    trace = azure_llm.load(start=t0 + 60.0, end="2023-11-16 18:17:46.6805900")
    jobs = trace.jobs
    assert len(jobs) + trace.report["filtered_window"] == 2000
    assert jobs["submit_time"].min() == 0.0 and jobs["submit_time"].max() < 60.0
    fast = azure_llm.load(time_scale=2.0, max_jobs=100)
    assert len(fast.jobs) == 100 and fast.report == {"truncated_max_jobs": 1900}
    slow = azure_llm.load(max_jobs=100)
    np.testing.assert_allclose(fast.jobs["submit_time"] * 2, slow.jobs["submit_time"])
