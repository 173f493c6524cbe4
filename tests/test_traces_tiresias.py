"""Tiresias (NSDI'19) simulator traces: job-trace loader, cluster spec files, end to end."""

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
from traces import formats, tiresias
from traces.canonical import TraceError

SHARED = TRACES / "tiresias-samples"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
HEADER = "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n"
ROWS = "0,1,0,606,vgg19,164,30\n1,8,30,133,vgg11,147,23\n2,2,53,157,inception4,127,26\n"
SPEC = "num_switch,num_node_p_switch,num_gpu_p_node,num_cpu_p_node,mem_p_node\n"


def _write(tmp_path: Path, text: str, name: str = "jobs.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bundled_sample():
    trace = tiresias.load()
    jobs = trace.jobs
    assert len(jobs) == 60 and trace.report == {}
    assert jobs["job_id"].tolist() == list(range(60))
    assert jobs.iloc[0][
        ["num_gpus", "submit_time", "duration", "model_name", "iterations"]
    ].tolist() == [
        1,
        0.0,
        164.0,
        "vgg19",
        606,
    ]
    # SOURCE.md: num_gpu 1:30, 2:10, 4:10, 8:10; submit 0..1779 s; duration 121..1800 s, median 125
    assert jobs["num_gpus"].value_counts().to_dict() == {1: 30, 2: 10, 4: 10, 8: 10}
    assert jobs["submit_time"].max() == 1779.0
    assert (jobs["duration"].min(), jobs["duration"].median(), jobs["duration"].max()) == (
        121.0,
        125.0,
        1800.0,
    )
    assert "interval" not in jobs and formats.detect(tiresias.SAMPLE) == "tiresias"


def test_interval_column_is_the_submit_gap():
    # why the loader can drop it: interval = next submit_time - this one (all but the last row)
    raw = pd.read_csv(tiresias.SAMPLE)
    gaps = np.diff(raw["submit_time"].to_numpy())
    assert (gaps == raw["interval"].to_numpy()[:-1]).all()


def test_bundled_files_are_verbatim():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    assert tiresias.SAMPLE.read_bytes() == (SHARED / "60_job.csv").read_bytes()
    assert tiresias.CLUSTER_SPEC.read_bytes() == (SHARED / "cluster_spec.csv").read_bytes()


def test_upstream_tf_job_lists_a_job_twice():
    path = SHARED / "tf_job.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with pytest.raises(TraceError, match=r"row 2 \(line 3\), column job_id: duplicate job_id 10"):
        tiresias.load(path)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("1,8,30,133,vgg11,147,23", None),
        ("1,8,abc,133,vgg11,147,23", "column submit_time: cannot parse as a number"),
        ("1,8,-30,133,vgg11,147,23", "column submit_time: expected >= 0 s"),
        ("1,1.5,30,133,vgg11,147,23", "column num_gpu: expected a whole number"),
        ("1,-8,30,133,vgg11,147,23", "column num_gpu: expected a GPU count >= 0"),
        ("1,8,30,133,vgg11,-147,23", "column duration: negative duration"),
        ("1,8,30,133,vgg11,inf,23", "column duration: expected a finite number"),
        ("1,8,30,,vgg11,147,23", "column iterations: missing value"),
        ("1,8,30,1e300,vgg11,147,23", "column iterations: expected 0 <= n < 2**53"),
        (",8,30,133,vgg11,147,23", "column job_id: missing job id"),
        ("0,8,30,133,vgg11,147,23", "column job_id: duplicate job_id 0"),
    ],
)
def test_broken_rows_name_row_line_column(tmp_path, bad, expected):
    rows = ROWS.splitlines()
    rows[1] = bad
    p = _write(tmp_path, HEADER + "\n".join(rows) + "\n")
    if expected is None:
        assert len(tiresias.load(p).jobs) == 3
        return
    with pytest.raises(TraceError) as err:
        tiresias.load(p)
    assert str(err.value).startswith(f"{p}: row 2 (line 3), {expected}"), str(err.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "file is empty"),
        ("job_id,num_gpus,submit_time,duration\n1,1,0,5\n", r"missing column\(s\) \['num_gpu'\]"),
        (HEADER, "no jobs left"),
        (HEADER + "0,1,0\n", r"row 1 \(line 2\): expected 7 fields, saw 3"),
    ],
)
def test_broken_files(tmp_path, text, words):
    p = _write(tmp_path, text)
    with pytest.raises(TraceError, match=words) as err:
        tiresias.load(p)
    assert str(err.value).startswith(str(p))


def test_garbage_file(tmp_path):
    p = tmp_path / "jobs.csv"
    p.write_bytes(np.random.default_rng(2).bytes(2048))
    with pytest.raises(TraceError) as err:
        tiresias.load(p)
    assert str(err.value).startswith(str(p))


def test_minimal_columns_and_options(tmp_path):
    p = _write(tmp_path, "job_id,num_gpu,submit_time,duration\na,1,10,5\nb,2,20,0\nc,4,40,7\n")
    t = tiresias.load(p)
    assert t.jobs["job_id"].tolist() == ["a", "c"] and t.report == {"dropped_zero_duration": 1}
    assert t.jobs["submit_time"].tolist() == [0.0, 30.0]
    t = tiresias.load(p, zero_duration="repair", min_duration=2.0, time_scale=2.0, min_gpus=2)
    assert t.jobs["duration"].tolist() == [2.0, 7.0] and t.jobs["submit_time"].tolist() == [0, 10]
    assert t.report == {"repaired_zero_duration": 1, "filtered_min_gpus": 1}


# ---------------------------------------------------------------------------------- cluster
def test_bundled_cluster_spec():
    spec = tiresias.cluster()
    assert (spec.name, spec.num_nodes, spec.total_gpus) == ("tiresias", 16, 64)
    assert set(spec.gpu_models) == {"P100"} and (spec.racks == 0).all()
    assert (spec.cpus == 128).all() and (spec.memory_gb == 254).all()
    built = instantiate(OmegaConf.load(CONFIGS / "cluster" / "tiresias.yaml"))
    assert built.num_nodes == 16 and built.total_gpus == 64


@pytest.mark.parametrize(
    ("name", "nodes", "gpus", "racks"),
    [("n1g4", 1, 4, 1), ("n32g4", 32, 128, 1), ("n160g8", 160, 1280, 5), ("n256g8", 256, 2048, 8)],
)
def test_upstream_cluster_specs(name, nodes, gpus, racks):
    path = SHARED / f"{name}.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    spec = tiresias.cluster(path, gpu_type="V100")
    assert (spec.name, spec.num_nodes, spec.total_gpus) == (name, nodes, gpus)
    assert (
        len(np.unique(spec.racks)) == racks
        and np.bincount(spec.racks).tolist() == [nodes // racks] * racks
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (SPEC + "1,16,4,128,254\n2,8,4,128,254\n", "expected exactly one data row, found 2"),
        (
            SPEC.replace("mem_p_node", "mem") + "1,16,4,128,254\n",
            r"missing column\(s\) \['mem_p_node'",
        ),
        (
            SPEC + "1,0,4,128,254\n",
            r"row 1 \(line 2\), column num_node_p_switch: expected a value >= 1",
        ),
        (SPEC + "1,16,2.5,128,254\n", r"row 1 \(line 2\), column num_gpu_p_node: expected a whole"),
        (
            SPEC + "1,16,4,-1,254\n",
            r"row 1 \(line 2\), column num_cpu_p_node: expected a value >= 0",
        ),
        (SPEC, "expected exactly one data row, found 0"),
        ("", "file is empty"),
    ],
)
def test_broken_cluster_specs(tmp_path, text, words):
    p = _write(tmp_path, text, "spec.csv")
    with pytest.raises(TraceError, match=words) as err:
        tiresias.cluster(p)
    assert str(err.value).startswith(str(p))


def test_end_to_end_gang_run_on_the_tiresias_cluster():
    cfg = OmegaConf.load(CONFIGS / "trace" / "tiresias.yaml")
    jobs = instantiate(cfg, _convert_="all").jobs
    sim = simulate(jobs, tiresias.cluster(), GangPolicy())
    assert (sim.jobs.status == Status.FINISHED).all() and sim.jobs.n == 60
    # 60 jobs of at most 8 GPUs on 64 GPUs, offered load ~15 GPUs: nobody waits, so every job
    # ends its recorded duration after its submission
    np.testing.assert_allclose(sim.jobs.end - sim.jobs.submit, sim.jobs.duration)
