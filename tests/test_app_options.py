"""Small entry-point checks: on/off options, unknown GPU models, unwritable directories,
plain job ids in messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "+policy=gang",
            "trace.max_jobs=20",
            "sim.progress=false",
            *args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "override",
    [
        "plots=maybe",
        "skip_existing=maybe",
        "print_summary=2",
        "sim.progress=maybe",
        "sim.record_events=maybe",
        "sim.check_invariants=maybe",
        "sim.reference_passes=maybe",
    ],
)
def test_on_off_options_must_be_booleans(tmp_path, override):
    res = cli(tmp_path, override, f"hydra.run.dir={tmp_path / 'run'}")
    key = override.split("=")[0]
    assert res.returncode == 2, res.stderr[-2000:]  # a usage error
    assert f"error: {key} must be true or false, got" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_flag_that_does_not_exist_is_refused_by_name(tmp_path):
    res = cli(tmp_path, "sim.compiled=maybe", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode == 2 and "sim.compiled" in res.stderr


def test_unknown_cluster_gpu_model_warns(tmp_path):
    res = cli(tmp_path, "cluster.gpu_type=Z100", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout + res.stderr
    assert "GPU model(s) Z100 not in the GPU table" in out and "V100" in out
    known = cli(tmp_path, "cluster.gpu_type=H100", f"hydra.run.dir={tmp_path / 'h100'}")
    assert known.returncode == 0 and "not in the GPU table" not in known.stdout + known.stderr


def test_an_existing_directory_that_cannot_be_written_gives_one_line(tmp_path):
    # /proc/1 exists and nobody (not even root) can create files in it
    res = cli(tmp_path, "hydra.run.dir=/proc/1")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: cannot write into the output directory /proc/1: ")
    assert "Traceback" not in res.stderr


def test_messages_show_plain_job_ids():
    trace = pd.DataFrame(
        {
            "job_id": [0, 1],
            "submit_time": [0.0, 1.0],
            "duration": [1.0, 1.0],
            "num_gpus": [1, 2],
            "gpu_milli": [1000, 500],
        }
    )
    with pytest.raises(ValueError, match=r"^job 1: a GPU share") as err:
        Simulation(trace, ClusterSpec.homogeneous(1, 8, "V100"), FifoPolicy())
    assert "np." not in str(err.value)


def test_node_list_errors_show_plain_values(tmp_path):
    path = tmp_path / "nodes.csv"
    path.write_text("num_gpus,gpu_type\n-1,V100\n")
    with pytest.raises(ValueError, match="column num_gpus: expected an integer >= 0, got -1$"):
        ClusterSpec.from_node_list(path)
