"""AcmeTrace (NSDI'24) loader: converted Kalos file, official job logs, states, Kalos preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TRACES, simulate
from hydra.utils import instantiate
from omegaconf import OmegaConf

from policies.gang import GangPolicy
from simulator.core.jobs import Status
from traces import acmetrace, formats
from traces.canonical import TraceError

SHARED = TRACES / "acmetrace"
DATA = Path(__file__).resolve().parents[1] / "traces" / "data"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KALOS_ROWS = DATA / "acmetrace_kalos_readme_rows.csv"
SEREN_ROWS = DATA / "acmetrace_seren_readme_rows.csv"

CONVERTED_HEADER = ",".join(acmetrace.CONVERTED_COLUMNS) + "\n"
CONVERTED_ROWS = (
    "0,0.0,208,0.5,0.25,8,0,8.0,15.0,15.0,10.0,500\n"
    "1,313.0,156,0.5,0.25,8,0,8.0,15.0,15.0,10.0,500\n"
    "3,58324.0,136,0.5,0.75,16,0,8.0,15.0,15.0,10.0,1000\n"
)
JOB_HEADER = (
    "job_id,user,node_num,gpu_num,cpu_num,mem_per_pod_GB,shared_mem_per_pod,type,state,"
    "submit_time,start_time,end_time,fail_time,stop_time,duration,queue,gpu_time\n"
)


def _job(job_id, state, submit="11:00:00", start="11:00:10", end="11:01:10", gpus=8, nodes=1):
    def t(x):
        return f"2023-05-17 {x}+00:00" if x else ""

    return (
        f"{job_id},u1,{nodes},{gpus},{16 * gpus},1000,100.0,Pretrain,{state},{t(submit)},"
        f"{t(start)},{t(end)},,,70,10.0,560.0\n"
    )


def _write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------------------------- converted
def test_bundled_sample():
    trace = acmetrace.load()
    jobs = trace.jobs
    assert len(jobs) == 200 and trace.report == {}
    # SOURCE.md row 0: 8 nodes x 8 GPUs, num_iteration 208 (duration ~104 s), arrives at 0
    first = jobs.iloc[0]
    assert (first["submit_time"], first["duration"], first["num_gpus"]) == (0.0, 104.0, 64)
    assert (first["num_cpus"], first["memory_gb"], first["requested_nodes"]) == (960.0, 8000.0, 8)
    assert first["type"] == "SFT_or_Other" and (jobs["state"] == "COMPLETED").all()
    assert jobs["duration"].iloc[:3].tolist() == [104.0, 78.0, 2252.0]
    assert (jobs["kind"] == "train").all() and (jobs["gpu_type"] == "").all()
    assert formats.detect(acmetrace.SAMPLE) == "acmetrace"


def test_sample_is_verbatim_prefix():
    path = SHARED / "converted_kalos_trace.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    sample = acmetrace.SAMPLE.read_bytes()
    assert path.read_bytes()[: len(sample)] == sample and sample.count(b"\n") == 201


def test_full_converted_file_and_the_cluster_summary():
    path = SHARED / "converted_kalos_trace.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    jobs = acmetrace.load(path).jobs
    assert len(jobs) == 319 and jobs["submit_time"].max() == 7_779_474.0  # 90.0 days
    hist = jobs["num_gpus"].value_counts()
    assert (hist[512], hist[256], hist[1024], hist[2], hist[1]) == (73, 52, 38, 41, 29)
    assert (jobs["type"] == "Pretrain").sum() == 183
    # the longest job and the largest gang are those of the official Kalos summary
    kalos = acmetrace.cluster_summary(SHARED / "cluster_summary.csv").loc["Kalos"]
    assert jobs["duration"].max() == kalos["max_run_time_gpu"] == 625_740.0
    assert jobs["num_gpus"].max() == kalos["max_gpu"] == 1024
    # every job fits the Kalos nodes of configs/cluster/acme_kalos.yaml, node by node
    per_node = jobs["num_gpus"] / jobs["requested_nodes"]
    assert (per_node <= 8).all()
    assert (jobs["num_cpus"] / jobs["requested_nodes"] <= 128).all()
    assert (jobs["memory_gb"] / jobs["requested_nodes"] <= 2048).all()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("1,313.0,156,", "1,abc,156,", "column arrival_time: cannot parse as a number, got 'abc'"),
        ("1,313.0,156,", "1,-5,156,", "column submit_time: expected a submit time >= 0 s"),
        ("1,313.0,156,", "1,313.0,15.5,", "column num_iteration: expected a whole number"),
        ("1,313.0,156,", "1,313.0,-2,", "column num_iteration: expected >= 0"),
        ("1,313.0,156,0.5,0.25,8,", "1,313.0,156,0.5,0.25,0,", "column gpu_workers: expected 1"),
        (
            "0.25,8,0,8.0,15.0,15.0,10.0,500\n3",
            "0.25,3,0,0.5,15.0,15.0,10.0,500\n3",
            "column gpu_per",
        ),
        ("15.0,15.0,10.0,500\n3", "15.0,15.0,-1,500\n3", "column tensorsizes: expected a value"),
        ("8.0,15.0,15.0,10.0,500\n3", "8.0,,15.0,10.0,500\n3", "column cpu_per_gpu_worker: miss"),
        ("1,313.0", "0,313.0", "column job_id: duplicate job_id 0 (same as row 1 (line 2))"),
    ],
)
def test_converted_broken_rows(tmp_path, old, new, expected):
    text = CONVERTED_HEADER + CONVERTED_ROWS
    assert old in text
    p = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(TraceError) as err:
        acmetrace.load(p)
    assert str(err.value).startswith(f"{p}: row 2 (line 3), {expected}"), str(err.value)


def test_converted_zero_iterations_and_iteration_length(tmp_path):
    p = _write(tmp_path, CONVERTED_HEADER + CONVERTED_ROWS.replace("313.0,156,", "313.0,0,"))
    t = acmetrace.load(p)
    assert len(t.jobs) == 2 and t.report == {"dropped_zero_duration": 1}
    t = acmetrace.load(p, iteration_s=2.0, zero_duration="repair", min_duration=3.0)
    assert t.jobs["duration"].tolist() == [416.0, 3.0, 272.0]


# ---------------------------------------------------------------------------------- job logs
def test_readme_rows_kalos_duration_excludes_queueing():
    # The Kalos example rows of the AcmeTrace README have duration = end - submit (18 = 10 s
    # queue + 8 s run; 82 = 12 + 70); the loader's duration is end - start.
    t = acmetrace.load(KALOS_ROWS, rebase=False)
    jobs = t.jobs
    raw = pd.read_csv(KALOS_ROWS)
    assert jobs["duration"].tolist() == [8.0, 70.0]
    assert (jobs["duration"] == raw["duration"] - raw["queue"]).all()
    assert jobs["trace_wait_time"].tolist() == [10.0, 12.0]
    assert jobs["submit_time"].iloc[0] == pd.Timestamp("2023-05-17 11:00:58Z").timestamp()
    assert jobs["num_gpus"].tolist() == [64, 64] and jobs["num_cpus"].tolist() == [960.0, 960.0]
    assert jobs["memory_gb"].tolist() == [8000.0, 8000.0]  # 1000 GB per pod x 8 nodes
    assert jobs["state"].tolist() == ["FAILED", "CANCELLED"]
    assert t.report == {"kept_failed": 1, "kept_cancelled": 1}


def test_readme_rows_seren_time_zone_and_duration():
    t = acmetrace.load(SEREN_ROWS, rebase=False)
    jobs = t.jobs
    assert jobs["job_id"].tolist() == [5778432, 5778469]
    assert jobs["duration"].tolist() == [117.0, 2693.0]  # Seren: duration = end - start
    # 2023-03-01 00:18:22 in China (+08:00) is 2023-02-28 16:18:22 UTC
    assert jobs["submit_time"].iloc[0] == pd.Timestamp("2023-02-28 16:18:22Z").timestamp()
    assert (jobs["memory_gb"] == 0).all() and jobs["num_cpus"].tolist() == [128.0, 128.0]
    assert t.report == {"kept_failed": 1}


def test_state_rules(tmp_path):
    text = JOB_HEADER + "".join(
        [
            _job("a", "COMPLETED"),
            _job("b", "FAILED"),
            _job("c", "TIMEOUT"),
            _job("d", "NODE_FAIL"),
            _job("e", "CANCELLED"),
            _job("f", "CANCELLED", start=""),  # cancelled while pending
            _job("g", "RUNNING", end=""),  # still running when the log was cut
            _job("h", "PENDING", start="", end=""),
            _job("i", "COMPLETED", start="11:00:10", end="11:00:10"),  # zero run time
        ]
    )
    p = _write(tmp_path, text)
    t = acmetrace.load(p)
    assert t.jobs["job_id"].tolist() == ["a", "b", "c", "d", "e"]
    assert t.report == {
        "dropped_unfinished": 2,
        "dropped_never_started": 1,
        "dropped_zero_duration": 1,
        "kept_failed": 3,
        "kept_cancelled": 1,
    }
    t = acmetrace.load(p, failed="drop", cancelled="drop")
    assert t.jobs["job_id"].tolist() == ["a"]
    assert t.report == {
        "dropped_failed": 3,
        "dropped_cancelled": 2,
        "dropped_unfinished": 2,
        "dropped_zero_duration": 1,
    }
    with pytest.raises(ValueError, match="failed must be one of"):
        acmetrace.load(p, failed="ignore")
    with pytest.raises(ValueError, match="layout must be one of"):
        acmetrace.load(p, layout="json")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (_job("x", "REQUEUED"), "column state: unknown job state"),
        (_job("x", "COMPLETED", submit="25:00:00"), "column submit_time: cannot parse"),
        (_job("x", "COMPLETED", submit=""), "column submit_time: missing date-time"),
        (_job("x", "COMPLETED", end="10:00:00"), "column end_time: end_time is before start"),
        (_job("x", "COMPLETED", gpus=-8), "column gpu_num: expected a GPU count"),
        (_job("x", "COMPLETED").replace(",u1,1,", ",u1,1.5,"), "column node_num: expected a whole"),
        (_job("x", "COMPLETED").replace(",1000,", ",-1,"), "column mem_per_pod_GB: expected >= 0"),
        (_job("a", "COMPLETED"), "column job_id: duplicate job_id 'a'"),
    ],
)
def test_job_trace_broken_rows(tmp_path, row, expected):
    p = _write(tmp_path, JOB_HEADER + _job("a", "COMPLETED") + row + _job("z", "FAILED"))
    with pytest.raises(TraceError) as err:
        acmetrace.load(p)
    assert str(err.value).startswith(f"{p}: row 2 (line 3), {expected}"), str(err.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "file is empty"),
        ("a,b,c\n1,2,3\n", "cannot tell the AcmeTrace layout"),
        (JOB_HEADER.replace("start_time,", "begin,"), r"missing column\(s\) \['start_time'\]"),
        ("job_id,arrival_time,num_iteration\n0,0,10\n", r"missing column\(s\) \['gpu_workers'"),
        (CONVERTED_HEADER, "no jobs left"),
    ],
)
def test_broken_files(tmp_path, text, words):
    p = _write(tmp_path, text)
    with pytest.raises(TraceError, match=words) as err:
        acmetrace.load(p)
    assert str(err.value).startswith(str(p))


def test_garbage_file(tmp_path):
    p = tmp_path / "trace.csv"
    p.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(TraceError) as err:
        acmetrace.load(p)
    assert str(err.value).startswith(str(p))


def test_forced_layout_and_wrong_type(tmp_path):
    p = _write(tmp_path, CONVERTED_HEADER + CONVERTED_ROWS)
    with pytest.raises(TraceError, match=r"missing column\(s\) \['node_num'"):
        acmetrace.load(p, layout="job_trace")
    q = _write(
        tmp_path, CONVERTED_HEADER + CONVERTED_ROWS.replace(",8,0,8.0", ",true,0,8.0"), "b.csv"
    )
    with pytest.raises(TraceError, match=r"row 1 \(line 2\), column gpu_workers: cannot parse"):
        acmetrace.load(q)


# ---------------------------------------------------------------------------------- cluster
def test_cluster_summary_rows():
    s = acmetrace.cluster_summary()
    assert list(s.index) == ["Seren", "Kalos", "Philly", "Helios", "PAI"]
    kalos = s.loc["Kalos"]
    assert (kalos["job_num"], kalos["gpu_job_num"], kalos["cpu_job_num"]) == (62413, 19907, 42506)
    assert kalos["fail_rate_gpu"] == 0.397 and kalos["med_que_time_gpu"] == 17.0
    assert np.isnan(s.loc["Philly", "avg_run_time_cpu"])


def test_kalos_preset_and_an_end_to_end_gang_run():
    spec = instantiate(OmegaConf.load(CONFIGS / "cluster" / "acme_kalos.yaml"))
    assert (spec.num_nodes, spec.total_gpus) == (302, 2416)
    assert set(spec.gpu_models) == {"A100-80GB"}
    assert (spec.cpus == 128).all() and (spec.memory_gb == 2048).all()
    cfg = OmegaConf.load(CONFIGS / "trace" / "acmetrace.yaml")
    cfg.max_jobs = 60
    jobs = instantiate(cfg, _convert_="all").jobs
    sim = simulate(jobs, spec, GangPolicy())
    assert (sim.jobs.status == Status.FINISHED).all() and sim.jobs.n == 60
    # gangs of up to 1,024 GPUs on a nearly idle cluster: each runs for its recorded duration
    np.testing.assert_allclose(sim.jobs.end - sim.jobs.start, sim.jobs.duration)
