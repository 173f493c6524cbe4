"""Gavel .trace loader (7- and 10-field layouts) with the Gavel throughput table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TRACES

from traces import gavel
from traces.canonical import TraceError

SHARED = TRACES / "gavel-philly-derived"
TPUT = {
    "v100": {
        "('ResNet-18 (batch size 32)', 1)": {"null": 10.0, "('A3C', 1)": [5.0, 2.0]},
        "('ResNet-18 (batch size 32)', 2)": {"null": 16.0},
        "('Transformer (batch size 128)', 1)": {"null": 4.0},
        "('A3C', 1)": {"null": 2.0},
    },
    "k80": {"('ResNet-18 (batch size 32)', 1)": {"null": 1.0}},
}
ROWS7 = [
    'ResNet-18 (batch size 32)\tcd %s/x && python3 main.py "q"\t--num_steps\t1\t1000\t0.0\t1',
    "Transformer (batch size 128)\tpython3 train.py\t-step\t1\t400\t266564.000000\t1",
    "A3C\tpython3 main.py\t--max-steps\t0\t50\t266566.5\t4",
    "ResNet-18 (batch size 32)\tpython3 main.py\t--num_steps\t1\t3200\t300000\t2",
]
ROW10 = (
    "ResNet-50 (batch size 64)\tpython3 main.py -j 2\timage_classification/imagenet\t"
    "--num_minibatches\t1\t2931\t1\t2\t-1.000000\t7"
)


def _setup(tmp_path: Path, rows: list[str], name: str = "6214e9.trace") -> Path:
    (tmp_path / "simulation_throughputs.json").write_text(json.dumps(TPUT))
    folder = tmp_path / "msr" / "seed=0"
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("\n".join(rows) + "\n")
    return p


def test_seven_field_trace(tmp_path):
    p = _setup(tmp_path, ROWS7)
    trace = gavel.load(str(p))
    jobs = trace.jobs
    assert trace.report == {"dropped_no_throughput": 1}  # (A3C, 4) has no entry
    assert jobs["job_id"].tolist() == ["6214e9-0", "6214e9-1", "6214e9-3"]
    assert jobs["duration"].tolist() == [100.0, 100.0, 200.0]
    assert jobs["num_gpus"].tolist() == [1, 1, 2]
    assert jobs["submit_time"].tolist() == [0.0, 266564.0, 300000.0]
    assert set(jobs["queue"]) == {"6214e9"}
    assert jobs["total_steps"].tolist() == [1000, 400, 3200]


def test_missing_throughput_rules(tmp_path):
    p = _setup(tmp_path, ROWS7)
    linear = gavel.load(str(p), missing_throughput="linear")
    assert linear.report == {"repaired_throughput_linear": 1}
    assert linear.jobs["duration"].tolist()[2] == 50 / (2.0 * 4)
    with pytest.raises(
        TraceError,
        match=r"row 3 \(line 3\), column job_type: no v100 "
        r"throughput for \('A3C', 4 GPUs\)",
    ):
        gavel.load(str(p), missing_throughput="error")
    k80 = gavel.load(str(p), worker_type="k80")
    assert k80.report == {"dropped_no_throughput": 3}
    with pytest.raises(TraceError, match="no worker type 'h100'"):
        gavel.load(str(p), worker_type="h100")


def test_ten_field_trace(tmp_path):
    tput = json.loads(json.dumps(TPUT))
    tput["v100"]["('ResNet-50 (batch size 64)', 1)"] = {"null": 2.931}
    p = _setup(tmp_path, [ROW10], name="small.trace")
    (tmp_path / "simulation_throughputs.json").write_text(json.dumps(tput))
    jobs = gavel.load(str(p)).jobs
    assert jobs["duration"].tolist() == pytest.approx([1000.0])
    assert jobs["num_gpus"].tolist() == [1] and jobs["slo"].tolist() == [-1.0]
    assert jobs["priority_weight"].tolist() == [2.0]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("A3C\tx\t-n\t1\tmany\t5.0\t1", "row 2 (line 2), column total_steps: cannot parse"),
        ("A3C\tx\t-n\t1\t10\t-5.0\t1", "row 2 (line 2), column arrival_time: expected a time"),
        ("A3C\tx\t-n\t1\t10\t5.0\t0", "row 2 (line 2), column scale_factor: expected GPUs >= 1"),
        ("A3C\tx\t-n\t1\t10\t5.0", "row 2 (line 2), column scale_factor: missing value"),
        ("A3C\tx\t-n\t1\t10\t5.0\t1\t9", "line 2: expected 7 fields, saw 8"),
    ],
)
def test_broken_rows(tmp_path, row, expected):
    p = _setup(tmp_path, [ROWS7[0], row])
    with pytest.raises(TraceError) as err:
        gavel.load(str(p))
    assert str(err.value).startswith(f"{p}: {expected}"), str(err.value)


def test_broken_files(tmp_path):
    p = _setup(tmp_path, ["a\tb\tc"])
    with pytest.raises(TraceError, match="expected 7 or 10 tab-separated fields"):
        gavel.load(str(p))
    lonely = tmp_path / "lonely.trace"
    lonely.write_text(ROWS7[0] + "\n")
    (tmp_path / "simulation_throughputs.json").unlink()
    with pytest.raises(TraceError, match="cannot find simulation_throughputs.json"):
        gavel.load(str(lonely))
    with pytest.raises(ValueError, match="needs a path"):
        gavel.load()


def test_real_traces():
    trace_file = SHARED / "msr" / "seed=0" / "6214e9.trace"
    if not trace_file.is_file():
        pytest.skip(f"{trace_file} not present")
    trace = gavel.load(str(trace_file))
    assert len(trace.jobs) == 1985 and trace.report == {"dropped_no_throughput": 15}
    median = float(np.median(trace.jobs["duration"]))
    assert 4000 < median < 5200  # SOURCE.md: ~4,600 s with v100
    small = gavel.load(str(SHARED / "physical_cluster" / "small_test.trace"))
    assert len(small.jobs) == 20 and small.report == {}
    capped = gavel.load(str(trace_file), max_jobs=100, min_gpus=2)
    assert len(capped.jobs) == 72 - 15  # 72 multi-GPU jobs, 15 of them without throughput
    assert capped.report["filtered_min_gpus"] == 1928
