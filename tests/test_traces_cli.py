"""Format registry and detection, traces.convert and traces.describe command lines."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from traces import azure_llm, formats, philly
from traces.alibaba_openb import SAMPLE as OPENB_SAMPLE
from traces.canonical import TraceError
from traces.convert import main as convert_main
from traces.describe import format_summary, summarize
from traces.describe import main as describe_main


def test_every_format_has_a_loader():
    for name in formats.FORMATS:
        assert callable(formats.loader(name))
    with pytest.raises(ValueError, match="unknown trace format 'nope'; known formats: file"):
        formats.loader("nope")


@pytest.mark.parametrize(
    ("path", "expected"),
    [(philly.SAMPLE, "philly"), (OPENB_SAMPLE, "alibaba_openb"), (azure_llm.SAMPLE, "azure_llm")],
)
def test_detect_bundled_samples(path, expected):
    assert formats.detect(path) == expected


def test_detect_by_name_and_header(tmp_path):
    cases = {
        "a.parquet": "file",
        "a.swf": "swf",
        "b.trace": "gavel",
        "c.csv": "file",
        "d.csv": "helios",
        "pai_job_table.csv": "alibaba_pai2020",
    }
    headers = {
        "c.csv": "job_id,submit_time,duration,num_gpus\n",
        "d.csv": "job_id,user,vc,gpu_num,cpu_num\n",
    }
    for name, expected in cases.items():
        p = tmp_path / name
        p.write_text(headers.get(name, "x\n"))
        assert formats.detect(p) == expected, name
    (tmp_path / "unknown.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="cannot tell the trace format"):
        formats.detect(tmp_path / "unknown.csv")
    with pytest.raises(TraceError, match="file not found"):
        formats.detect(tmp_path / "missing.csv")


def test_convert_roundtrip(tmp_path, capsys):
    out = tmp_path / "p.parquet"
    code = convert_main(
        [
            str(philly.SAMPLE),
            str(out),
            "--max-jobs",
            "500",
            "--queues",
            "6214e9,11cb48",
            "-o",
            "zero_duration=repair",
        ]
    )
    assert code == 0
    assert "500 jobs" in capsys.readouterr().out
    back = formats.load("file", str(out))
    direct = philly.load(max_jobs=500, queues=["6214e9", "11cb48"], zero_duration="repair")
    pd.testing.assert_frame_equal(back.jobs, direct.jobs, check_dtype=False)
    csv_out = tmp_path / "p.csv"
    assert (
        convert_main(
            [str(OPENB_SAMPLE), str(csv_out), "--format", "alibaba_openb", "-o", "pending=keep"]
        )
        == 0
    )
    assert len(formats.load("auto", str(csv_out)).jobs) == 2000


def test_convert_errors(tmp_path, capsys):
    assert convert_main([str(philly.SAMPLE), str(tmp_path / "x.txt")]) == 2
    assert "must end in .parquet or .csv" in capsys.readouterr().err
    assert convert_main([str(philly.SAMPLE), str(tmp_path / "x.csv"), "-o", "pending"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert convert_main([str(philly.SAMPLE), str(tmp_path / "x.csv"), "-o", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert_main(["--format", "nope", "in.csv", "out.csv"])


def test_describe_numbers():
    trace = philly.load()
    s = summarize(trace)
    jobs = trace.jobs
    assert s["jobs"] == 2998 and s["first_submit"] == 0.0
    assert s["gpu_histogram"] == {1: 2755, 2: 62, 4: 52, 8: 116, 16: 2, 32: 11}
    gpu_seconds = float((jobs["num_gpus"] * jobs["duration"]).sum())
    assert s["gpu_seconds"] == pytest.approx(gpu_seconds)
    assert s["offered_load"] == pytest.approx(gpu_seconds / jobs["submit_time"].max())
    assert s["report"] == {"dropped_duplicate_rows": 2}
    text = format_summary(s)
    assert "jobs          2998" in text and "offered load" in text


def test_describe_fractional_gpus_and_single_job():
    s = summarize(formats.load("alibaba_openb"))
    assert s["fractional_gpu_jobs"] > 0 and s["cpu_only_jobs"] > 0
    one = summarize(philly.load(max_jobs=1))
    assert math.isnan(one["offered_load"])
    assert "nan" in format_summary(one)


def test_describe_main(capsys):
    assert describe_main([str(azure_llm.SAMPLE), "--max-jobs", "10"]) == 0
    assert "kinds         infer 10" in capsys.readouterr().out
    assert describe_main(["/nonexistent/trace.csv"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_converted_parquet_keeps_report_and_source(tmp_path):
    out = tmp_path / "s.parquet"
    assert convert_main([str(philly.SAMPLE), str(out), "--max-jobs", "100"]) == 0
    back = formats.load("file", str(out), max_jobs=40)
    assert back.report == {"dropped_duplicate_rows": 2, "truncated_max_jobs": 2898 + 60}
    assert back.source.endswith("(from " + str(philly.SAMPLE) + ")")
    assert back.jobs.attrs == {}
