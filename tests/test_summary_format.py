"""One number format in what is printed: the run summary, sweep lines and the sweep table.

Issue 17: the printed summary mixed formats (``0.101 s`` next to ``1,234.5 s``, utilization
as ``0.857`` next to an SLO attainment of ``95.0 %``, the sweep table with 0 or 2 decimals
depending on the size of a number).
"""

import re

import numpy as np
import pandas as pd
from hydra.core.utils import JobReturn, JobStatus

from simulator.app import format_summary
from simulator.output import formats
from simulator.output.callbacks import job_line
from simulator.output.report import summary_table

NUMBER = r"\d[\d,]*(?:\.\d+)?"
GROUPED = re.compile(r"^\d{1,3}(?:,\d{3})*(?:\.\d+)?$")


def summary(**extra) -> dict:
    base = {
        "policy": "gang",
        "cluster": "64 nodes, 512 GPUs (H100 x512), 8 racks",
        "jobs_finished": 1_234_567,
        "jobs_unfinished": 12,
        "jobs_total": 1_234_600,
        "jobs_unschedulable": 21,
        "jobs_rejected": 0,
        "jobs_failed": 0,
        "jobs_dormant": 0,
        "avg_jct": 1_234_567.891,
        "p50_jct": 12.3456,
        "p99_jct": 2_419_200.0,
        "avg_wait": 0.04,
        "p99_wait": 98_765.4321,
        "makespan": 2_419_234.5,
        "gpu_utilization": 0.85674,
        "wall_seconds": 0.1017,
        "engine": "compiled",
    }
    return {**base, **extra}


def numbers_with_units(text: str) -> list[tuple[str, str]]:
    """Every number of ``text`` with what follows it (`` s``, `` %``, `` ms`` or nothing)."""
    return re.findall(rf"(?<![\w.,])({NUMBER})( ms| s\b| %|)", text)


def assert_one_format(text: str) -> None:
    decimals = {" s": 1, " %": 1, " ms": 1}
    for value, unit in numbers_with_units(text):
        assert GROUPED.match(value), f"{value!r} without thousands separators in:\n{text}"
        places = len(value.partition(".")[2])
        if unit in decimals:
            assert places == decimals[unit], f"{value}{unit}: {places} decimals in:\n{text}"


def test_run_summary_numbers_have_one_format_per_kind():
    text = format_summary(summary())
    rows = dict(line.split("  ", 1) for line in text.splitlines())
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["jobs (finished/unfinished/total)"] == "1,234,567 / 12 / 1,234,600"
    assert rows["jobs otherwise"] == "21 unschedulable"
    assert rows["avg / p50 / p99 JCT"] == "1,234,567.9 s / 12.3 s / 2,419,200.0 s"
    assert rows["avg / p99 wait"] == "0.0 s / 98,765.4 s"
    assert rows["makespan"] == "2,419,234.5 s"
    assert rows["GPU utilization"] == "85.7 %"
    assert rows["wall time"] == "0.1 s (compiled pass)"
    assert_one_format(text)


def test_serving_and_failure_lines_share_the_format():
    s = summary(
        serving={
            "llm": {
                "finished": 12_345,
                "requests": 12_400,
                "slo_attainment": 0.95,
                "p99_ttft": 0.12345,
            },
            "idle": {"finished": 0, "requests": 0, "slo_attainment": None, "p99_ttft": None},
        },
        failures=1_001,
        repairs=999,
        jobs_killed=17,
        lost_gpu_hours=12_345.678,
        goodput=0.98765,
    )
    text = format_summary(s)
    rows = {k.strip(): v.strip() for k, v in (line.split("  ", 1) for line in text.splitlines())}
    assert rows["serving llm"] == "12,345 / 12,400 requests, SLO met 95.0 %, p99 TTFT 123.5 ms"
    assert rows["serving idle"] == "0 / 0 requests, SLO met -, p99 TTFT -"
    assert rows["failures / repairs"] == "1,001 / 999"
    assert rows["jobs killed / failed"] == "17 / 0"
    assert rows["lost GPU-hours / goodput"] == "12,345.7 / 98.8 %"
    assert_one_format(text)


def test_sweep_lines_use_the_same_format():
    ret = JobReturn(
        overrides=["+policy=gang", "seed=1"],
        status=JobStatus.COMPLETED,
        _return_value={"avg_jct": 12_345.678, "gpu_utilization": 0.5, "wall_seconds": 1.234},
    )
    line = job_line(ret, 3)
    assert (
        line == "#3 +policy=gang seed=1: ok, avg JCT 12,345.7 s, GPU util 50.0 %, 1.2 s simulating"
    )


def test_sweep_table_has_fixed_decimals_per_kind():
    n = 3
    runs = pd.DataFrame(
        {
            "run_status": ["ok"] * 2 * n,
            "policy": ["fifo"] * n + ["gang"] * n,
            "seed": list(range(n)) * 2,
            "jobs_finished": [1_000_000, 1_000_001, 1_000_002, 5, 5, 5],
            # seconds: the column stays in s (the largest mean is below 2 minutes)
            "avg_jct": [100.0, 100.5, 101.0, 1.0, 2.0, 3.0],
            "p50_jct": [1.0] * 2 * n,
            "p99_jct": [110.0] * 2 * n,
            "avg_wait": [0.0] * 2 * n,
            "p99_wait": [5.0] * 2 * n,
            "gpu_utilization": [0.5, 0.6, 0.7, 0.25, 0.25, 0.25],
            # days: 1,234 days and more, shown with two decimals like any other size
            "makespan": np.array([1234.5, 1234.6, 1234.7, 2.0, 2.0, 2.0]) * 86400,
        }
    )
    table = summary_table(runs, ["policy"]).set_index("policy")
    assert table.loc["fifo", "finished jobs"] == "1,000,001 ± 2"
    assert table.loc["fifo", "avg JCT (s)"] == "100.5 ± 1.2"
    assert table.loc["gang", "avg JCT (s)"] == "2.0 ± 2.5"
    assert table.loc["fifo", "GPU utilization (%)"] == "60.0 ± 24.8"
    assert table.loc["gang", "GPU utilization (%)"] == "25.0 ± 0.0"
    assert table.loc["fifo", "makespan (days)"] == "1,234.60 ± 0.25"
    assert table.loc["gang", "makespan (days)"] == "2.00 ± 0.00"


def test_missing_values_print_as_a_dash():
    for f in (formats.count, formats.seconds, formats.share, formats.millis, formats.gpu_hours):
        assert f(None) == formats.MISSING and f(float("nan")) == formats.MISSING
    assert formats.count(np.int64(10**15)) == "1,000,000,000,000,000"
    text = format_summary(summary(avg_jct=None, gpu_utilization=float("nan")))
    assert "avg / p50 / p99 JCT" in text and "- / 12.3 s" in text
