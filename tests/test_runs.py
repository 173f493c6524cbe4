"""Whole runs: determinism, invariants on a real trace, results files, README commands."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import check_outcome

from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output.results import load_run, load_runs
from traces.philly import load as load_philly

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("policy", [FifoPolicy, GangPolicy])
def test_bundled_trace_keeps_invariants(policy):
    trace = load_philly().jobs
    sim = Simulation(
        trace, ClusterSpec.homogeneous(16, 8, "V100", 80, 512, 4), policy(), check_invariants=True
    ).run()
    check_outcome(sim)
    fin = sim.jobs.status == 3
    # nothing slows a job down yet: end = start + duration exactly
    np.testing.assert_allclose(sim.jobs.end[fin], sim.jobs.start[fin] + sim.jobs.duration[fin])
    assert fin.all()


def test_main_run_writes_results_and_is_deterministic(tmp_path):
    outs = []
    for name in ("a", "b"):
        res = run_cli("+policy=gang", f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert "GPU utilization" in res.stdout
        outs.append(tmp_path / name)
    for f in ("jobs.parquet", "timeline.parquet", "summary.json", ".hydra/config.yaml"):
        assert (outs[0] / f).is_file()
    assert (outs[0] / "jobs.parquet").read_bytes() == (outs[1] / "jobs.parquet").read_bytes()
    run = load_run(outs[0])
    summary = json.loads((outs[0] / "summary.json").read_text())
    for key in (
        "jobs_total",
        "jobs_finished",
        "jobs_unschedulable",
        "avg_jct",
        "p50_jct",
        "p95_jct",
        "p99_jct",
        "avg_wait",
        "p99_wait",
        "makespan",
        "gpu_utilization",
        "wall_seconds",
        "policy",
        "seed",
    ):
        assert key in summary
    assert summary["policy"] == "gang" and summary["jobs_total"] == len(run.jobs)
    for col in (
        "job_id",
        "submit_time",
        "start_time",
        "end_time",
        "duration",
        "num_gpus",
        "wait_time",
        "jct",
        "status",
        "nodes",
    ):
        assert col in run.jobs.columns
    assert (run.jobs["status"] == "finished").all()
    assert run.summary["avg_jct"] == pytest.approx(run.jobs["jct"].mean())
    assert set(run.timeline.columns) == {"time", "allocated_gpus", "queue_length", "running_jobs"}
    assert run.timeline["allocated_gpus"].max() <= 256


def test_file_trace_cluster_overrides_and_unschedulable(tmp_path):
    trace = pd.DataFrame(
        {
            "job_id": ["a", "b", "c"],
            "submit_time": [5.0, 0.0, 1.0],
            "duration": [10.0, 20.0, 5.0],
            "num_gpus": [4, 64, 8],
            "team": ["x", "y", "z"],
        }
    )
    path = tmp_path / "my_trace.parquet"
    trace.to_parquet(path)
    res = run_cli(
        "+policy=fifo",
        "trace=file",
        f"trace.path={path}",
        "cluster.num_nodes=2",
        "cluster.gpus_per_node=8",
        f"hydra.run.dir={tmp_path / 'fifo'}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    run = load_run(tmp_path / "fifo")
    jobs = run.jobs.set_index("job_id")
    assert jobs.loc["b", "status"] == "unschedulable" and np.isnan(jobs.loc["b", "start_time"])
    assert list(jobs["team"]) == ["y", "z", "x"]  # extra columns pass through
    assert run.summary["jobs_unschedulable"] == 1 and run.summary["cluster_gpus"] == 16


def test_multirun_and_load_runs(tmp_path):
    res = run_cli(
        "-m",
        "+policy=fifo,gang",
        "seed=0,1",
        "trace.max_jobs=300",
        f"hydra.sweep.dir={tmp_path / 'multi'}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    df = load_runs(tmp_path / "multi")
    assert len(df) == 4 and (df["run_status"] == "ok").all()
    assert sorted(zip(df["policy"], df["seed"], strict=True)) == [
        ("fifo", 0),
        ("fifo", 1),
        ("gang", 0),
        ("gang", 1),
    ]
    assert df["seed"].dtype.kind == "i" and (df["jobs_total"] == 300).all()


def test_load_runs_reports_failed_run(tmp_path):
    res = run_cli(
        "+policy=gang",
        "trace=file",
        f"trace.path={tmp_path / 'missing.csv'}",
        f"hydra.run.dir={tmp_path / 'runs' / 'bad'}",
        cwd=tmp_path,
    )
    assert res.returncode != 0
    assert "missing.csv" in res.stderr
    df = load_runs(tmp_path / "runs")
    assert list(df["run_status"]) == ["failed"]


def test_no_policy_lists_policies(tmp_path):
    res = run_cli(cwd=tmp_path)
    assert res.returncode == 2
    assert "+policy=NAME" in res.stderr and "gang" in res.stderr and "fifo" in res.stderr
    assert "Traceback" not in res.stderr


def test_config_typo_gets_clear_error(tmp_path):
    res = run_cli("+policy=gang", "cluster.num_nodez=3", cwd=tmp_path)
    assert res.returncode != 0 and "num_nodez" in res.stderr


def test_user_policy_class_plugs_in(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from policies.fifo import FifoPolicy\nclass MyPolicy(FifoPolicy):\n    name = 'mine'\n"
    )
    res = run_cli(
        "+policy._target_=mypkg.MyPolicy",
        "trace.max_jobs=50",
        f"hydra.run.dir={tmp_path / 'mine'}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert load_run(tmp_path / "mine").summary["policy"] == "mine"


def test_sigterm_leaves_marked_partial_results(tmp_path):
    import re
    import signal
    import time

    out = tmp_path / "cut"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "+policy=fifo",
            "trace=synthetic",
            "trace.num_jobs=500000",
            "sim.progress=true",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = b""
    deadline = time.monotonic() + 300
    # wait for a progress update with a rate: the run is simulating (kernels compiled)
    while re.search(rb"[0-9]job/s", seen) is None and time.monotonic() < deadline:
        chunk = proc.stderr.read1(4096)
        if not chunk:
            break
        seen += chunk
    assert re.search(rb"[0-9]job/s", seen), seen[-2000:]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    assert proc.returncode == 130
    run = load_run(out)
    assert run.summary["partial"] is True
    status = run.jobs["status"].value_counts()  # categorical: every status, 0 if absent
    assert status.get("finished", 0) > 0 and status.get("unfinished", 0) > 0
    assert set(status[status > 0].index) <= {"finished", "unfinished"}
    assert len(run.jobs) == 500_000


def test_a_run_cut_by_until_spans_to_the_cut_and_stays_below_full_utilization():
    # issue 17: `cluster.num_nodes=1 sim.until=100000` printed GPU utilization 1.058: running
    # jobs' GPU-seconds were counted up to `until`, the span only to the last completion
    from simulator.app import format_summary
    from simulator.output.metrics import summary

    trace = load_philly().jobs
    sim = Simulation(trace, ClusterSpec.homogeneous(1, 8, "V100"), GangPolicy(), until=100_000)
    sim.run()
    s = summary(sim)
    assert s["jobs_unfinished"] > 0
    first = float(trace["submit_time"].min())
    assert s["span"] == pytest.approx(100_000 - first)
    assert s["span"] > s["makespan"]
    assert 0.5 < s["gpu_utilization"] <= 1.0
    assert s["gpu_utilization"] == pytest.approx(sim.jobs.gpu_seconds.sum() / (8 * s["span"]))
    assert sim.jobs.gpu_seconds.sum() / (8 * s["makespan"]) > 1.0  # what was printed before
    text = format_summary({**s, "policy": "gang", "cluster": "1 node"})
    finished, unfinished = s["jobs_finished"], s["jobs_unfinished"]
    assert f"{finished:,} / {unfinished:,} / {len(trace):,}" in text


def test_a_run_that_finishes_spans_its_makespan():
    sim = Simulation(
        pd.DataFrame(
            {
                "job_id": [0, 1],
                "submit_time": [0.0, 5.0],
                "duration": [10.0, 20.0],
                "num_gpus": [8, 8],
            }
        ),
        ClusterSpec.homogeneous(1, 8, "V100"),
        GangPolicy(),
    )
    sim.run()
    from simulator.output.metrics import summary

    s = summary(sim)
    assert s["span"] == s["makespan"] == 30.0
    assert s["gpu_utilization"] == pytest.approx(1.0)
