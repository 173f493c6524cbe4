"""Standard Workload Format loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from traces import swf
from traces.canonical import TraceError

SWF = """; Version: 2.2
; Computer: Test cluster
; UnixStartTime: 1506902400
; TimeZoneString: US/Eastern
; MaxProcs: 128
;
    1      0     10    3600   16   -1 -1   16  7200  -1 1 3 1 -1 1 -1 -1 -1
    2     30      5     600    8   -1 -1    8   900  -1 0 4 1 -1 2 -1 -1 -1

    3     60     -1      -1   -1   -1 -1    4   900  -1 5 4 1 -1 -1 -1 -1 -1
; a comment in the middle
    4     90      0       0    1   -1 -1    1    60  -1 1 5 1 -1 1 -1 -1 -1
    5    120      2     500   -1   -1 -1   12   600  -1 1 5 1 -1 -1 -1 -1 -1
    5    122      2     200   12   -1 -1   12   600  -1 2 5 1 -1 1 -1 -1 -1
    6    130      0     100    0   -1 -1    0    60  -1 5 6 1 -1 1 -1 -1 -1
"""


def _write(tmp_path: Path, text: str = SWF) -> Path:
    p = tmp_path / "log.swf"
    p.write_text(text)
    return p


def test_derivation(tmp_path):
    trace = swf.load(str(_write(tmp_path)), procs_per_gpu=8)
    assert trace.report == {
        "dropped_partial_records": 1,
        "dropped_missing_runtime": 1,
        "dropped_zero_duration": 1,
    }
    jobs = trace.jobs
    assert jobs["job_id"].tolist() == [1, 2, 5, 6]
    assert jobs["submit_time"].tolist() == [0.0, 30.0, 120.0, 130.0]
    assert jobs["duration"].tolist() == [3600.0, 600.0, 500.0, 100.0]
    assert jobs["processors"].tolist() == [16, 8, 12, 0]
    assert jobs["num_gpus"].tolist() == [2, 1, 2, 0]  # ceil(procs / 8)
    assert jobs["queue"].tolist() == ["1", "2", "default", "1"]
    assert jobs["trace_status"].tolist() == [1, 0, 1, 5]
    assert jobs["trace_wait_time"].tolist() == [10.0, 5.0, 2.0, 0.0]


def test_options(tmp_path):
    p = str(_write(tmp_path))
    assert swf.header_values(p)["UnixStartTime"] == "1506902400"
    wall = swf.load(p, wall_clock=True, rebase=False, start="2017-10-02 00:00:30")
    assert wall.jobs["submit_time"].tolist() == [1506902430.0, 1506902520.0, 1506902530.0]
    done = swf.load(p, statuses=[1], zero_duration="repair")
    assert done.jobs["job_id"].tolist() == [1, 4, 5]
    assert done.report == {
        "dropped_partial_records": 1,
        "filtered_status": 3,
        "repaired_zero_duration": 1,
    }
    assert swf.load(p, queues=["1"], max_gpus=8).jobs["job_id"].tolist() == [6]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    2     30", "    2     x30", "row 2 (line 8), column submit_time: cannot parse"),
        ("    2     30", "    2     -1", "row 2 (line 8), column submit_time: expected a submit"),
        (
            "    2     30      5     600",
            "    2     30      5     -60",
            "row 2 (line 8), column run_time: negative duration",
        ),
        ("1 -1 -1 -1\n    2", "1 -1 -1 -1 7\n    2", "line 7: expected 18 fields, saw more"),
        ("-1 2 -1 -1 -1\n", "-1 2 -1 -1 -1 7\n", "line 8: expected 18 fields, saw 19"),
        (
            "1 5 1 -1 1 -1 -1 -1\n",
            "1 5 1 -1 1 -1 -1\n",
            "row 4 (line 12), column think_time: missing value",
        ),
    ],
)
def test_broken_rows(tmp_path, old, new, expected):
    p = _write(tmp_path, SWF.replace(old, new, 1))
    with pytest.raises(TraceError) as err:
        swf.load(str(p))
    assert str(err.value).startswith(f"{p}: {expected}"), str(err.value)


def test_broken_files(tmp_path):
    with pytest.raises(TraceError, match="no job lines"):
        swf.load(str(_write(tmp_path, "; only a header\n")))
    with pytest.raises(TraceError, match="file is empty"):
        swf.load(str(_write(tmp_path, "")))
    with pytest.raises(TraceError, match="UnixStartTime"):
        swf.load(
            str(_write(tmp_path, SWF.replace("; UnixStartTime: 1506902400\n", ""))), wall_clock=True
        )
    with pytest.raises(ValueError, match="procs_per_gpu"):
        swf.load(str(_write(tmp_path)), procs_per_gpu=0)
