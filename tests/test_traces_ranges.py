"""Trace values the simulator cannot represent, temporal Parquet columns, reserved names."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output import metrics
from traces import file as trace_file
from traces.canonical import MAX_SECONDS, TraceError

HEADER = "job_id,submit_time,duration,num_gpus,priority\n"


def csv(tmp_path, rows: str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_text(HEADER + rows)
    return path


@pytest.mark.parametrize(
    ("row", "column", "shown"),
    [
        ("2,0,10,1,1e30", "priority", "1e+30"),
        ("2,0,10,1,9223372036854775808", "priority", "9223372036854775808"),
        ("2,0,10,1,-1e30", "priority", "-1e+30"),
        ("2,0,1e308,1,0", "duration", "1e+308"),
        ("2,1e17,1,1,0", "submit_time", "1e+17"),
        ("2,4294967000,1000,1,0", "duration", "1000"),  # the sum passes 2**32 s
        ("2,0,1e-9,1,0", "duration", "1e-09"),  # below the 1 us resolution
    ],
)
def test_values_outside_the_ranges_are_named_errors(tmp_path, row, column, shown):
    path = csv(tmp_path, f"1,0,10,1,0\n{row}\n")
    with pytest.raises(TraceError) as err:
        trace_file.load(path)
    text = str(err.value)
    assert str(path) in text and "row 2 (line 3)" in text and f"column {column}" in text
    assert shown in text


def test_values_inside_the_ranges_load_exactly(tmp_path):
    big = 2**53 - 1
    path = csv(tmp_path, f"1,0,10,1,{big}\n2,4000000000,0.000001,1,-{big}\n")
    jobs = trace_file.load(path, rebase=False).jobs
    assert jobs["priority"].tolist() == [big, -big]
    assert jobs["submit_time"].max() + jobs["duration"].min() < MAX_SECONDS


def test_time_scale_cannot_stretch_beyond_the_range(tmp_path):
    path = csv(tmp_path, "1,0,10,1,0\n2,100000,10,1,0\n")
    with pytest.raises(ValueError, match="time_scale=1e-06 stretches"):
        trace_file.load(path, time_scale=1e-6)


@pytest.mark.parametrize(
    ("column", "value"),
    [("duration", 1e308), ("submit_time", 1e17), ("priority", 1e30), ("priority", 2.0**63)],
)
def test_hand_built_frames_are_checked_too(column, value):
    trace = pd.DataFrame({"job_id": [0], "submit_time": [0.0], "duration": [1.0], "num_gpus": [1]})
    trace[column] = [value]
    with pytest.raises(ValueError, match=r"job 0: .*2\*\*(32|53)"):
        Simulation(trace, ClusterSpec.homogeneous(1, 8, "V100"), FifoPolicy())


# ------------------------------------------------------------------- temporal Parquet columns
BASE = pd.Timestamp("2024-03-01 12:00:00")


def parquet(tmp_path, submit, duration, name="t.parquet"):
    table = pa.table(
        {"job_id": [1, 2, 3], "submit_time": submit, "duration": duration, "num_gpus": [1, 1, 1]}
    )
    pq.write_table(table, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_timestamp_submit_times_are_seconds_after_the_first(tmp_path, tz):
    stamps = pa.array([BASE + pd.Timedelta(seconds=s) for s in (10, 0, 25.5)], pa.timestamp("us"))
    if tz is not None:
        stamps = pa.array(
            [BASE.tz_localize(tz) + pd.Timedelta(seconds=s) for s in (10, 0, 25.5)],
            pa.timestamp("us", tz=tz),
        )
    trace = trace_file.load(parquet(tmp_path, stamps, [1.0, 2.0, 3.0]), rebase=False)
    assert trace.jobs["submit_time"].tolist() == [10.0, 0.0, 25.5]
    assert trace.report["converted_submit_time_timestamps_to_seconds_after_first"] == 3


def test_timedelta_durations_are_seconds(tmp_path):
    spans = pa.array([pd.Timedelta(seconds=s) for s in (5, 7.5, 3600)], pa.duration("us"))
    trace = trace_file.load(parquet(tmp_path, [0.0, 1.0, 2.0], spans))
    assert trace.jobs["duration"].tolist() == [5.0, 7.5, 3600.0]
    assert trace.report == {"converted_duration_timedeltas_to_seconds": 3}


def test_timestamp_durations_are_refused(tmp_path):
    stamps = pa.array([BASE] * 3, pa.timestamp("us"))
    with pytest.raises(TraceError, match=r"t.parquet: column duration: .*datetime64"):
        trace_file.load(parquet(tmp_path, [0.0, 1.0, 2.0], stamps))


# ------------------------------------------------------------ trace columns named like results
def test_trace_columns_named_like_results_are_renamed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "job_id,submit_time,duration,num_gpus,status,jct,start_time,nodes,trace_status\n"
        "1,0,10,1,Pass,99,5,n1,x\n2,1,10,1,Failed,98,6,n2,y\n"
    )
    trace = trace_file.load(path)
    cols = trace.jobs.columns
    assert {"trace_trace_status", "trace_jct", "trace_start_time", "trace_nodes"} <= set(cols)
    assert not {"status", "jct", "start_time", "nodes"} & set(cols)
    assert trace.report["renamed_status_to_trace_trace_status"] == 2
    assert trace.report["renamed_jct_to_trace_jct"] == 2
    sim = Simulation(trace.jobs, ClusterSpec.homogeneous(1, 8, "V100"), FifoPolicy()).run()
    jobs = metrics.job_frame(sim)
    assert jobs["trace_trace_status"].tolist() == ["Pass", "Failed"]
    assert jobs["trace_status"].tolist() == ["x", "y"]
    assert jobs["trace_jct"].tolist() == [99, 98] and jobs["jct"].tolist() == [10.0, 10.0]
    assert jobs["status"].tolist() == ["finished", "finished"]


def test_a_frame_built_by_hand_keeps_its_columns_with_a_warning():
    trace = pd.DataFrame(
        {"job_id": [0], "submit_time": [0.0], "duration": [4.0], "num_gpus": [1], "jct": [7]}
    )
    sim = Simulation(trace, ClusterSpec.homogeneous(1, 8, "V100"), FifoPolicy()).run()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        jobs = metrics.job_frame(sim)
    assert any("trace_NAME" in str(w.message) for w in seen)
    assert jobs["trace_jct"].tolist() == [7] and jobs["jct"].tolist() == [4.0]


# ------------------------------------------------------------------------ compressed CSV files
def test_garbage_csv_gz_names_the_file(tmp_path):
    for name, raw in (("a.csv.gz", np.random.default_rng(0).bytes(300)), ("b.csv.gz", b"\x1f\x8b")):
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(TraceError, match=f"{path}: cannot read"):
            trace_file.load(path)


def test_valid_small_csv_gz_files_always_load(tmp_path):
    # the row-length check used to count fields in the compressed bytes
    path = tmp_path / "t.csv.gz"
    for i in range(200):
        rows = "".join(f"{k},{k * i},{10 + i},1,0\n" for k in range(3))
        path.write_bytes(gzip.compress((HEADER + rows).encode(), mtime=0))
        assert len(trace_file.load(path).jobs) == 3, i
    path.write_bytes(gzip.compress((HEADER + "1,0,10,1,0\n2,0\n").encode()))
    with pytest.raises(TraceError, match="row 2 .line 3.: expected 5 fields, saw 2"):
        trace_file.load(path)
