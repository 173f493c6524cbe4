"""Helios cluster_log.csv loader, on rows built to the published schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from traces import helios
from traces.canonical import TraceError

HEADER = (
    "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,duration,queue\n"
)
ROWS = (  # the three example rows of the HeliosData README, then built edge cases
    "1425511,uXBbc,vcJkd,1,1,1,COMPLETED,2020-06-09 18:41:01,2020-06-09 18:41:01,"
    "2020-06-10 04:55:09,36848,0\n"
    "1425512,uVMrF,vchbv,4,16,1,FAILED,2020-06-09 18:41:27,2020-06-09 18:41:27,"
    "2020-06-09 18:45:36,249,0\n"
    "1425513,uzqls,vcpDC,1,1,1,CANCELLED,2020-06-09 18:41:28,2020-06-09 18:41:28,"
    "2020-06-17 14:15:21,675233,0\n"
    "1425514,uzqls,vcpDC,0,8,1,COMPLETED,2020-06-09 18:42:00,2020-06-09 18:42:30,"
    "2020-06-09 18:52:30,,30\n"
    "1425515,uzqls,vcpDC,8,32,1,CANCELLED,2020-06-09 18:43:00,2020-06-09 18:43:00,"
    "2020-06-09 18:43:00,0,0\n"
    "1425516,uzqls,vcpDC,2,8,1,CANCELLED,2020-06-09 18:44:00,,,,\n"
    "1425517,uXBbc,vcJkd,16,64,2,TIMEOUT,2020-06-09 18:45:00,2020-06-09 19:45:00,,,3600\n"
)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cluster_log.csv"
    p.write_text(text)
    return p


def test_derivation_and_special_rows(tmp_path):
    trace = helios.load(str(_write(tmp_path, HEADER + ROWS)))
    assert trace.report == {
        "dropped_never_started": 1,
        "dropped_unfinished": 1,
        "repaired_duration_from_times": 1,
        "dropped_zero_duration": 1,
    }
    jobs = trace.jobs
    assert jobs["job_id"].tolist() == [1425511, 1425512, 1425513, 1425514]
    assert jobs["submit_time"].tolist() == [0.0, 26.0, 27.0, 59.0]
    assert jobs["duration"].tolist() == [36848.0, 249.0, 675233.0, 600.0]
    assert jobs["num_gpus"].tolist() == [1, 4, 1, 0]
    assert jobs["gpu_milli"].tolist() == [1000, 1000, 1000, 0]
    assert jobs["num_cpus"].tolist() == [1.0, 16.0, 1.0, 8.0]
    assert jobs["queue"].tolist() == ["vcJkd", "vchbv", "vcpDC", "vcpDC"]
    assert jobs["state"].tolist() == ["COMPLETED", "FAILED", "CANCELLED", "COMPLETED"]
    assert jobs["trace_wait_time"].tolist() == [0.0, 0.0, 0.0, 30.0]
    assert jobs["user"].iloc[0] == "uXBbc" and jobs["requested_nodes"].tolist() == [1, 1, 1, 1]


def test_states_and_options(tmp_path):
    p = str(_write(tmp_path, HEADER + ROWS))
    trace = helios.load(p, states=["COMPLETED"])
    assert trace.jobs["job_id"].tolist() == [1425511, 1425514]
    assert trace.report == {"filtered_state": 5, "repaired_duration_from_times": 1}
    assert helios.load(p, states="FAILED").jobs["job_id"].tolist() == [1425512]
    repaired = helios.load(p, zero_duration="repair", min_gpus=1, queues=["vcpDC"])
    assert repaired.jobs["job_id"].tolist() == [1425513, 1425515]
    assert repaired.report["filtered_min_gpus"] == 1 and repaired.report["filtered_queue"] == 2
    window = helios.load(p, start="2020-06-09 18:41:27", end="2020-06-09 18:42:00")
    assert window.jobs["job_id"].tolist() == [1425512, 1425513]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("2020-06-09 18:45:36,249", "2020-06-09 18:45:36,-249", "column duration: negative"),
        ("4,16,1,FAILED", "four,16,1,FAILED", "column gpu_num: cannot parse"),
        ("4,16,1,FAILED", "-4,16,1,FAILED", "column gpu_num: expected a GPU count"),
        (
            "FAILED,2020-06-09 18:41:27",
            "FAILED,2020-06-31 18:41:27",
            "column submit_time: cannot parse",
        ),
        ("FAILED,2020-06-09 18:41:27", "FAILED,", "column submit_time: missing date-time"),
        ("4,16,1,FAILED", "4,inf,1,FAILED", "column cpu_num: expected a finite number"),
    ],
)
def test_broken_rows(tmp_path, old, new, expected):
    p = _write(tmp_path, HEADER + ROWS.replace(old, new, 1))
    with pytest.raises(TraceError) as err:
        helios.load(str(p))
    assert str(err.value).startswith(f"{p}: row 2 (line 3), {expected}"), str(err.value)


def test_broken_files(tmp_path):
    with pytest.raises(TraceError, match=r"missing column\(s\) \['job_id', 'gpu_num'"):
        helios.load(str(_write(tmp_path, "timestamp,duration\n2017-10-01,1\n")))
    with pytest.raises(TraceError, match="file is empty"):
        helios.load(str(_write(tmp_path, "")))
    with pytest.raises(TraceError, match="duplicate job_id 1425511"):
        helios.load(str(_write(tmp_path, HEADER + ROWS + ROWS.splitlines(keepends=True)[0])))
    with pytest.raises(ValueError, match="needs a path"):
        helios.load()
