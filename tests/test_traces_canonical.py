"""Canonical table: validate, read_canonical, apply_options, the 'file' loader and the cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces import file as file_fmt
from traces.cache import cache_paths
from traces.canonical import (
    CANONICAL_COLUMNS,
    Trace,
    TraceError,
    apply_options,
    finish,
    read_canonical,
    validate,
)


def _jobs(n: int = 4, **cols) -> pd.DataFrame:
    base = {
        "job_id": [f"j{i}" for i in range(n)],
        "submit_time": [float(10 * i) for i in range(n)],
        "duration": [100.0] * n,
        "num_gpus": [1] * n,
    }
    base.update(cols)
    return pd.DataFrame(base)


# ------------------------------------------------------------------------------ validate
def test_validate_fills_defaults_and_keeps_extras_and_order():
    df = _jobs(3, num_gpus=[2, 0, 1], submit_time=[5.0, 1.0, 3.0], note=["a", "b", "c"])
    out = validate(df, "mem")
    assert list(out.columns) == [*CANONICAL_COLUMNS, "note"]
    assert out["submit_time"].tolist() == [5.0, 1.0, 3.0]  # file order kept, not sorted
    assert out["gpu_milli"].tolist() == [1000, 0, 1000]
    assert out["gpu_type"].tolist() == ["", "", ""]
    assert out["kind"].tolist() == ["train"] * 3
    assert out["queue"].tolist() == ["default"] * 3
    assert out["priority"].tolist() == [0, 0, 0]
    assert out["num_cpus"].tolist() == [0.0] * 3
    assert out["note"].tolist() == ["a", "b", "c"]
    assert out["num_gpus"].dtype == np.int64 and out["gpu_milli"].dtype == np.int64
    assert out["duration"].dtype == np.float64


def test_validate_empty_optional_cells_get_defaults():
    df = _jobs(
        2, gpu_milli=[np.nan, 250], queue=[None, "q1"], kind=[np.nan, "infer"], priority=[np.nan, 3]
    )
    out = validate(df, "mem")
    assert out["gpu_milli"].tolist() == [1000, 250]
    assert out["queue"].tolist() == ["default", "q1"]
    assert out["kind"].tolist() == ["train", "infer"]
    assert out["priority"].tolist() == [0, 3]


@pytest.mark.parametrize(
    ("column", "values", "row", "words"),
    [
        ("submit_time", ["0", "1", "abc", "3"], 3, "cannot parse"),
        ("submit_time", [0.0, np.nan, 1.0, 2.0], 2, "missing value"),
        ("submit_time", [0.0, 1.0, np.inf, 2.0], 3, "finite"),
        ("submit_time", [0.0, -1.0, 1.0, 2.0], 2, ">= 0"),
        ("duration", [1.0, 0.0, 1.0, 1.0], 2, "> 0"),
        ("duration", [1.0, 1.0, 1.0, -5.0], 4, "> 0"),
        ("duration", [1.0, 1.0, -np.inf, 1.0], 3, "finite"),
        ("num_gpus", [1, -1, 1, 1], 2, ">= 0"),
        ("num_gpus", [1.0, 1.5, 1.0, 1.0], 2, "whole number"),
        ("gpu_milli", [1000, 0, 1000, 1000], 2, "1..1000"),
        ("gpu_milli", [1000, 1001, 1000, 1000], 2, "1..1000"),
        ("kind", ["train", "infer", "serve", "train"], 3, "unknown kind"),
        ("num_cpus", [1.0, -2.0, 1.0, 1.0], 2, ">= 0"),
        ("memory_gb", [1.0, 1.0, np.inf, 1.0], 3, "finite"),
    ],
)
def test_validate_names_row_and_column(column, values, row, words):
    df = _jobs(4)
    df[column] = values
    with pytest.raises(TraceError) as err:
        validate(df, "jobs.csv")
    msg = str(err.value)
    assert msg.startswith(f"jobs.csv: row {row}, column {column}: "), msg
    assert words in msg


def test_validate_fractional_gpu_needs_one_gpu():
    df = _jobs(2, num_gpus=[1, 2], gpu_milli=[500, 500])
    with pytest.raises(TraceError, match=r"jobs: row 2, column gpu_milli: .*num_gpus == 1"):
        validate(df, "jobs")


def test_validate_cpu_only_job_needs_zero_milli():
    df = _jobs(2, num_gpus=[0, 1], gpu_milli=[1000, 1000])
    with pytest.raises(TraceError, match=r"jobs: row 1, column gpu_milli: .*CPU-only"):
        validate(df, "jobs")


def test_validate_duplicate_id_names_both_rows():
    df = _jobs(4, job_id=["a", "b", "c", "b"])
    with pytest.raises(
        TraceError,
        match=r"x: row 4, column job_id: duplicate job_id 'b' "
        r"\(same as row 2\)",
    ):
        validate(df, "x")


def test_validate_missing_required_column():
    df = _jobs(2).drop(columns=["duration"])
    with pytest.raises(TraceError, match=r"^t\.csv: missing required column\(s\) \['duration'\]"):
        validate(df, "t.csv")


def test_validate_counts_other_bad_rows():
    df = _jobs(4, duration=[1.0, -1.0, -2.0, -3.0])
    with pytest.raises(TraceError, match="and 2 more rows"):
        validate(df, "x")


def test_validate_rejects_booleans():
    df = _jobs(2, num_gpus=[True, False])
    with pytest.raises(TraceError, match="column num_gpus: expected a number, got a boolean"):
        validate(df, "x")


# ------------------------------------------------------------------------------ read_canonical
CSV = (
    "job_id,submit_time,duration,num_gpus,gpu_milli,gpu_type,queue,extra\n"
    "1,0,10,1,500,V100,a,x\n"
    "2,5,20,2,,,b,y\n"
    "3,7,30,0,,,,z\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_canonical_csv(tmp_path):
    jobs = read_canonical(_write(tmp_path, "t.csv", CSV))
    assert jobs["job_id"].tolist() == [1, 2, 3]
    assert jobs["job_id"].dtype == np.int64
    assert jobs["gpu_milli"].tolist() == [500, 1000, 0]
    assert jobs["gpu_type"].tolist() == ["V100", "", ""]
    assert jobs["queue"].tolist() == ["a", "b", "default"]
    assert jobs["extra"].tolist() == ["x", "y", "z"]


def test_read_canonical_keeps_text_ids_as_written(tmp_path):
    text = "job_id,submit_time,duration,num_gpus\n007,0,1,1\n8,0,1,1\n"
    jobs = read_canonical(_write(tmp_path, "t.csv", text))
    assert jobs["job_id"].tolist() == ["007", "8"]


def test_read_canonical_parquet_roundtrip(tmp_path):
    src = read_canonical(_write(tmp_path, "t.csv", CSV))
    src.to_parquet(tmp_path / "t.parquet", index=False)
    back = read_canonical(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, src, check_dtype=False)
    assert back["num_gpus"].dtype == np.int64


def test_read_canonical_error_gives_line(tmp_path):
    text = CSV.replace("2,5,20,2", "2,5,-20,2")
    with pytest.raises(TraceError, match=r"t\.csv: row 2 \(line 3\), column duration: "):
        read_canonical(_write(tmp_path, "t.csv", text))


def test_read_canonical_blank_lines_keep_line_numbers(tmp_path):
    text = CSV.replace("2,5,20,2,,,b,y\n", "\n2,5,20,2,,,b,y\n").replace("3,7,30", "3,abc,30")
    with pytest.raises(TraceError, match=r"row 3 \(line 5\), column submit_time: cannot parse"):
        read_canonical(_write(tmp_path, "t.csv", text))


def test_read_canonical_truncated_file(tmp_path):
    text = CSV[: CSV.rindex("0,0")]  # last line cut after "3,7,3"
    with pytest.raises(TraceError, match=r"row 3 \(line 4\): expected 8 fields, saw 3"):
        read_canonical(_write(tmp_path, "t.csv", text))


def test_read_canonical_ragged_row(tmp_path):
    text = CSV.replace("2,5,20,2,,,b,y", "2,5,20,2,,,b,y,9,9")
    with pytest.raises(TraceError, match=r"t\.csv: line 3: expected 8 fields, saw 10"):
        read_canonical(_write(tmp_path, "t.csv", text))


def test_read_canonical_wrong_columns(tmp_path):
    p = _write(tmp_path, "t.csv", "timestamp,duration,num_gpus\n2017-10-01 00:00:00,1,1\n")
    with pytest.raises(
        TraceError,
        match=r"missing required column\(s\) \['job_id', "
        r"'submit_time'\]",
    ):
        read_canonical(p)


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("empty.csv", "", "file is empty"),
        ("header.csv", "job_id,submit_time,duration,num_gpus\n", "no jobs"),
        ("t.json", "{}", "unknown file type '.json'"),
        ("bad.parquet", "not parquet", "cannot read as Parquet"),
    ],
)
def test_read_canonical_file_errors(tmp_path, name, text, words):
    p = _write(tmp_path, name, text)
    with pytest.raises(TraceError, match=words) as err:
        read_canonical(p)
    assert str(err.value).startswith(str(p))


def test_read_canonical_missing_file(tmp_path):
    with pytest.raises(TraceError, match="nope.csv: file not found"):
        read_canonical(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------ options
def _table(n: int = 10) -> pd.DataFrame:
    return validate(
        pd.DataFrame(
            {
                "job_id": range(n),
                "submit_time": [100.0 + 10 * i for i in range(n)],
                "duration": [50.0] * n,
                "num_gpus": [1, 2, 4, 8, 0, 1, 2, 4, 8, 1][:n],
                "queue": ["a", "b"] * (n // 2),
            }
        ),
        "t",
    )


def test_options_window_before_rebase():
    report: dict[str, int] = {}
    out = apply_options(_table(), report, start=120, end=160)
    assert out["job_id"].tolist() == [2, 3, 4, 5]
    assert out["submit_time"].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert report == {"filtered_window": 6}


def test_options_no_rebase():
    out = apply_options(_table(), {}, start=120, rebase=False)
    assert out["submit_time"].iloc[0] == 120.0


def test_options_date_string_window():
    t0 = pd.Timestamp("2017-10-02", tz="UTC").timestamp()
    df = _table().assign(submit_time=lambda d: d["submit_time"] + t0 - 100.0)
    report: dict[str, int] = {}
    out = apply_options(df, report, start="2017-10-02 00:00:30", end="2017-10-02 00:01:00")
    assert out["job_id"].tolist() == [3, 4, 5]
    assert report == {"filtered_window": 7}


def test_options_queue_and_gpu_filters():
    report: dict[str, int] = {}
    out = apply_options(_table(), report, queues=["a"], min_gpus=1, max_gpus=4)
    assert out["job_id"].tolist() == [0, 2, 6]
    assert report == {"filtered_queue": 5, "filtered_min_gpus": 1, "filtered_max_gpus": 1}
    assert apply_options(_table(), {}, queues="b")["job_id"].tolist() == [1, 3, 5, 7, 9]


def test_options_sample_is_exact_and_seeded():
    big = validate(
        pd.DataFrame(
            {
                "job_id": range(1000),
                "submit_time": np.arange(1000.0),
                "duration": 1.0,
                "num_gpus": 1,
            }
        ),
        "t",
    )
    r1: dict[str, int] = {}
    a = apply_options(big, r1, sample_frac=0.25, seed=7)
    b = apply_options(big, {}, sample_frac=0.25, seed=7)
    c = apply_options(big, {}, sample_frac=0.25, seed=8)
    assert len(a) == 250 and r1 == {"sampled_out": 750}
    assert a["job_id"].tolist() == b["job_id"].tolist()
    assert a["job_id"].tolist() != c["job_id"].tolist()
    assert a["job_id"].is_monotonic_increasing  # file order kept


def test_options_max_jobs_by_submit_time():
    df = _table().assign(submit_time=[9.0, 1.0, 5.0, 1.0, 7.0, 3.0, 0.5, 8.0, 2.0, 4.0])
    report: dict[str, int] = {}
    out = apply_options(df, report, max_jobs=3)
    assert out["job_id"].tolist() == [1, 3, 6]  # file order, ties kept in file order
    assert out["submit_time"].tolist() == [0.5, 0.5, 0.0]
    assert report == {"truncated_max_jobs": 7}


def test_options_time_scale_divides_gaps():
    out = apply_options(_table(4), {}, time_scale=2.0)
    assert out["submit_time"].tolist() == [0.0, 5.0, 10.0, 15.0]
    assert out["duration"].tolist() == [50.0] * 4
    out = apply_options(_table(4), {}, time_scale=0.5, rebase=False)
    assert out["submit_time"].tolist() == [100.0, 120.0, 140.0, 160.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_frac": 0.0},
        {"sample_frac": 1.5},
        {"max_jobs": 0},
        {"time_scale": 0},
        {"min_gpus": -1},
        {"start": 5, "end": 5},
        {"start": "not a date"},
        {"max_jobs": 2.5},
    ],
)
def test_options_invalid(kwargs):
    with pytest.raises(ValueError):
        apply_options(_table(), {}, **kwargs)


def test_finish_refuses_to_return_nothing():
    with pytest.raises(TraceError, match="no jobs left"):
        finish(Trace(_table(), "t", {}), start=1e9)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 40),
    frac=st.one_of(st.none(), st.floats(0.05, 1.0)),
    max_jobs=st.one_of(st.none(), st.integers(1, 50)),
    lo=st.one_of(st.none(), st.floats(0, 50)),
    seed=st.integers(0, 5),
)
def test_options_count_every_removed_row(n, frac, max_jobs, lo, seed):
    rng = np.random.default_rng(seed)
    df = validate(
        pd.DataFrame(
            {
                "job_id": range(n),
                "submit_time": rng.uniform(0, 100, n),
                "duration": 1.0,
                "num_gpus": rng.integers(0, 9, n),
            }
        ),
        "t",
    )
    report: dict[str, int] = {}
    out = apply_options(
        df, report, start=lo, sample_frac=frac, max_jobs=max_jobs, max_gpus=6, seed=seed
    )
    assert len(out) + sum(report.values()) == n
    if len(out):
        assert out["submit_time"].min() == 0.0


# ------------------------------------------------------------------------------ file loader
def test_file_loader_and_cache(tmp_path):
    src = _write(tmp_path, "t.csv", CSV)
    cache = tmp_path / "cache"
    a = file_fmt.load(str(src), cache_dir=str(cache), max_jobs=2)
    pq, meta = cache_paths(cache, "file", src, {})
    assert pq.is_file() and meta.is_file()
    b = file_fmt.load(str(src), cache_dir=str(cache), max_jobs=2)
    pd.testing.assert_frame_equal(a.jobs, b.jobs, check_dtype=False)
    assert a.report == b.report == {"truncated_max_jobs": 1}
    src.write_text(CSV.replace("1,0,10,1,500", "1,0,11,1,500"))
    os.utime(src, ns=(1, 1))  # new size/mtime -> new cache key
    c = file_fmt.load(str(src), cache_dir=str(cache))
    assert c.jobs["duration"].iloc[0] == 11.0


def test_file_loader_needs_path():
    with pytest.raises(ValueError, match="trace.path"):
        file_fmt.load()
