"""Philly (Pollux philly.csv) loader: bundled sample, full file, broken rows, options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TRACES

from traces import philly
from traces.canonical import TraceError

SHARED = TRACES
FULL = SHARED / "philly-pollux" / "philly.csv"
HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
ROWS = (
    "2017-10-09 07:01:55,66.0,1,66.0,11cb48\n"
    "2017-10-09 06:13:03,2951.0,1,2951.0,6214e9\n"
    "2017-09-29 07:58:32,860662.0,8,6885296.0,6c71a0\n"
)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "philly.csv"
    p.write_text(text)
    return p


def test_bundled_sample():
    trace = philly.load()
    jobs = trace.jobs
    assert len(jobs) == 2998
    assert trace.report == {"dropped_duplicate_rows": 2}
    assert trace.source.endswith("philly_sample.csv")
    assert jobs["submit_time"].min() == 0.0
    assert not jobs["submit_time"].is_monotonic_increasing  # file order kept
    assert jobs["job_id"].iloc[0] == "philly-0" and jobs["job_id"].is_unique
    assert jobs["queue"].value_counts().to_dict()["6214e9"] == 2151
    assert jobs["num_gpus"].value_counts().to_dict() == {
        1: 2755,
        8: 116,
        2: 62,
        4: 52,
        32: 11,
        16: 2,
    }
    assert (jobs["gpu_milli"] == 1000).all() and (jobs["kind"] == "train").all()
    first = pd.Timestamp("2017-10-02 00:01:55", tz="UTC").timestamp()
    assert philly.load(rebase=False).jobs["submit_time"].min() == first


def test_sample_is_the_documented_selection():
    if not FULL.is_file():
        pytest.skip(f"{FULL} not present")
    body = FULL.read_text().splitlines()
    ts = pd.to_datetime(pd.Series([ln.split(",")[0] for ln in body[1:]]))
    idx = np.flatnonzero((ts >= "2017-10-02 00:00:00").to_numpy())
    chosen = np.sort(idx[np.argsort(ts.to_numpy()[idx], kind="stable")][:3000])
    expected = [body[0]] + [body[1 + i] for i in chosen]
    assert philly.SAMPLE.read_text().splitlines() == expected


def test_full_file():
    if not FULL.is_file():
        pytest.skip(f"{FULL} not present")
    trace = philly.load(str(FULL))
    assert len(trace.jobs) == 82247 - 65
    assert trace.report == {"dropped_duplicate_rows": 65}
    assert trace.jobs["queue"].nunique() == 15
    assert trace.jobs["duration"].min() == 1.0


def test_small_file_derivation(tmp_path):
    jobs = philly.load(str(_write(tmp_path, HEADER + ROWS))).jobs
    assert jobs["job_id"].tolist() == ["philly-0", "philly-1", "philly-2"]
    t = pd.to_datetime(["2017-10-09 07:01:55", "2017-10-09 06:13:03", "2017-09-29 07:58:32"])
    expected = (t - t.min()).total_seconds().tolist()
    assert jobs["submit_time"].tolist() == expected
    assert jobs["duration"].tolist() == [66.0, 2951.0, 860662.0]
    assert jobs["num_gpus"].tolist() == [1, 1, 8]
    assert jobs["queue"].tolist() == ["11cb48", "6214e9", "6c71a0"]


def test_duplicates_keep_first_row_id(tmp_path):
    text = HEADER + ROWS + ROWS.splitlines(keepends=True)[1]
    trace = philly.load(str(_write(tmp_path, text)))
    assert trace.jobs["job_id"].tolist() == ["philly-0", "philly-1", "philly-2"]
    assert trace.report == {"dropped_duplicate_rows": 1}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("2017-10-09 06:13:03,2951.0,1,2951.0,6214e9", None),
        ("2017-13-09 06:13:03,2951.0,1,2951.0,6214e9", "column timestamp: cannot parse"),
        ("2017-10-09 06:13:03,abc,1,2951.0,6214e9", "column duration: cannot parse"),
        ("2017-10-09 06:13:03,-4,1,2951.0,6214e9", "column duration: negative duration"),
        ("2017-10-09 06:13:03,nan,1,2951.0,6214e9", "column duration: missing value"),
        ("2017-10-09 06:13:03,inf,1,2951.0,6214e9", "column duration: expected a finite"),
        ("2017-10-09 06:13:03,5,1.5,2951.0,6214e9", "column num_gpus: expected a whole"),
        ("2017-10-09 06:13:03,5,-1,2951.0,6214e9", "column num_gpus: expected a GPU count"),
        (",5,1,5,6214e9", "column timestamp: missing date-time"),
    ],
)
def test_broken_rows_name_row_line_column(tmp_path, bad, expected):
    rows = ROWS.splitlines()
    rows[1] = bad
    p = _write(tmp_path, HEADER + "\n".join(rows) + "\n")
    if expected is None:
        assert len(philly.load(str(p)).jobs) == 3
        return
    with pytest.raises(TraceError) as err:
        philly.load(str(p))
    assert str(err.value).startswith(f"{p}: row 2 (line 3), {expected}"), str(err.value)


def test_truncated_row_is_an_error_not_padding(tmp_path):
    rows = ROWS.splitlines()
    rows[1] = "2017-10-09 06:13:03,5"
    p = _write(tmp_path, HEADER + "\n".join(rows) + "\n")
    with pytest.raises(TraceError, match=r"row 2 \(line 3\): expected 5 fields, saw 2"):
        philly.load(str(p))


def test_zero_duration_rules(tmp_path):
    p = _write(tmp_path, HEADER + ROWS.replace("2951.0,1,", "0,1,"))
    dropped = philly.load(str(p))
    assert len(dropped.jobs) == 2 and dropped.report == {"dropped_zero_duration": 1}
    repaired = philly.load(str(p), zero_duration="repair", min_duration=2.5)
    assert repaired.jobs["duration"].tolist()[1] == 2.5
    assert repaired.report == {"repaired_zero_duration": 1}
    with pytest.raises(TraceError, match=r"row 2 \(line 3\), column duration: zero duration"):
        philly.load(str(p), zero_duration="error")
    with pytest.raises(ValueError, match="zero_duration must be one of"):
        philly.load(str(p), zero_duration="ignore")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "file is empty"),
        ("job_id,submit_time,duration,num_gpus\n1,0,1,1\n", "missing column(s)"),
        (HEADER, "no jobs left"),
    ],
)
def test_broken_files(tmp_path, text, words):
    p = _write(tmp_path, text)
    with pytest.raises(TraceError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        philly.load(str(p))
    assert str(err.value).startswith(str(p))


def test_options_on_sample():
    t = philly.load(start="2017-10-03 00:00:00")
    assert t.report == {"dropped_duplicate_rows": 2, "filtered_window": 1351}
    assert len(t.jobs) == 2998 - 1351
    t = philly.load(end="2017-10-03")
    assert len(t.jobs) == 1351 and t.report["filtered_window"] == 1647
    t = philly.load(max_jobs=1000)
    assert len(t.jobs) == 1000 and t.report["truncated_max_jobs"] == 1998
    t = philly.load(queues=["6214e9", "11cb48"])
    assert len(t.jobs) == 2151 + 567
    t = philly.load(min_gpus=8)
    assert len(t.jobs) == 116 + 2 + 11 and t.report["filtered_min_gpus"] == 2998 - 129
    t = philly.load(sample_frac=0.1, seed=3)
    assert len(t.jobs) == 300 and t.report["sampled_out"] == 2698
    base = philly.load().jobs["submit_time"].to_numpy()
    fast = philly.load(time_scale=4.0).jobs["submit_time"].to_numpy()
    np.testing.assert_allclose(fast, base / 4.0)
