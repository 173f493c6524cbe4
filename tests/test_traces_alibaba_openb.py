"""Alibaba openb pod-list loader and the shipped node inventories."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import TRACES
from hydra.utils import instantiate
from omegaconf import OmegaConf

from traces import alibaba_openb as openb
from traces import inventories
from traces.canonical import TraceError

SHARED = TRACES
OPENB = SHARED / "alibaba-openb-gpu-v2023"
PAI = SHARED / "alibaba-pai-gpu-v2020-machines"
CONFIGS = Path(__file__).parents[1] / "configs" / "cluster"
HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n"
)
ROWS = (
    "openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0\n"
    "openb-pod-0017,88000,327680,8,1000,G2,Burstable,Succeeded,9437497,10769854,9437497\n"
    "openb-pod-0061,11908,47104,1,1000,,BE,Pending,10001278,10001403,\n"
    "openb-pod-0021,8000,30517,1,440,G2|P100|T4|V100M16|V100M32,LS,Running,9671707,12902960,"
    "9671708\n"
)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pods.csv"
    p.write_text(text)
    return p


def test_bundled_sample_defaults():
    trace = openb.load()
    assert len(trace.jobs) == 1842
    assert trace.report == {"dropped_pending": 158, "kept_censored_at_trace_end": 20}
    jobs = trace.jobs.set_index("job_id")
    pod = jobs.loc["openb-pod-0021"]
    assert pod["num_gpus"] == 1 and pod["gpu_milli"] == 440
    assert pod["gpu_type"] == "G2|P100|T4|V100M16|V100M32"
    assert pod["num_cpus"] == 8.0 and pod["memory_gb"] == 30517 / 1024
    assert pod["duration"] == 12902960 - 9671708 and pod["priority"] == 2
    assert pod["qos"] == "LS" and pod["pod_phase"] == "Running"
    big = jobs.loc["openb-pod-0017"]
    assert (big["num_gpus"], big["gpu_type"], big["priority"]) == (8, "G2", 1)
    assert jobs["priority"].value_counts().to_dict() == {0: 1021, 2: 796, 1: 25}
    assert (jobs.loc[jobs["num_gpus"] == 0, "gpu_milli"] == 0).all()
    assert "openb-pod-0061" not in jobs.index  # pending


def test_pending_keep_uses_lifetime():
    trace = openb.load(pending="keep", rebase=False)
    assert len(trace.jobs) == 2000
    assert trace.report == {"repaired_pending_duration": 158, "kept_censored_at_trace_end": 20}
    pod = trace.jobs.set_index("job_id").loc["openb-pod-0061"]
    assert (pod["submit_time"], pod["duration"]) == (10001278.0, 125.0)


def test_censored_and_dense_window_modes():
    assert openb.load(censored="drop").report == {
        "dropped_pending": 158,
        "dropped_censored_at_trace_end": 20,
    }
    dropped = openb.load(dense_window="drop")
    assert len(dropped.jobs) == 1811
    assert dropped.report["filtered_before_dense_window"] == 31
    clipped = openb.load(dense_window="clip", rebase=False)
    assert len(clipped.jobs) == 1842
    assert clipped.report["repaired_clipped_to_dense_window"] == 31
    pod = clipped.jobs.set_index("job_id").loc["openb-pod-0000"]
    assert pod["submit_time"] == openb.DENSE_WINDOW_START
    assert pod["duration"] == 12537496 - openb.DENSE_WINDOW_START
    assert clipped.jobs["submit_time"].min() == openb.DENSE_WINDOW_START
    window = openb.load(start=9.96e6)
    assert len(window.jobs) == 1811 and window.report["filtered_window"] == 31
    assert openb.load(trace_end=12_000_000).report["kept_censored_at_trace_end"] == 23


def test_small_file_with_dense_clip_drops_finished_pods(tmp_path):
    rows = ROWS + "openb-pod-0005,1000,1024,0,0,,BE,Succeeded,5000,6000,5000\n"
    trace = openb.load(str(_write(tmp_path, HEADER + rows)), dense_window="clip")
    assert trace.report == {
        "dropped_pending": 1,
        "kept_censored_at_trace_end": 1,
        "filtered_before_dense_window": 1,
        "repaired_clipped_to_dense_window": 3,
    }
    assert sorted(trace.jobs["job_id"]) == ["openb-pod-0000", "openb-pod-0017", "openb-pod-0021"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (",BE,Pending", ",XX,Pending", "row 3 (line 4), column qos: unknown QoS class"),
        (
            "9437497,10769854",
            "9437497,9437000",
            "row 2 (line 3), column deletion_time: deletion before creation_time",
        ),
        (
            "10769854,9437497",
            "10769854,9437000",
            "row 2 (line 3), column scheduled_time: scheduled before creation_time",
        ),
        ("88000,327680", "88k,327680", "row 2 (line 3), column cpu_milli: cannot parse"),
        ("openb-pod-0017,", ",", "row 2 (line 3), column name: missing pod name"),
        (",8,1000,G2", ",-8,1000,G2", "row 2 (line 3), column num_gpu: expected a GPU count"),
        (",8,1000,G2", ",8,500,G2", "row 2 (line 3), column gpu_milli: a GPU share below"),
        ("12537496,0\n", "12537496,0,7\n", "line 2: expected 11 fields, saw more"),
        ("0,12537496,0", "0,nan,0", "row 1 (line 2), column deletion_time: missing value"),
        (
            "0,12537496,0",
            "0,12537496,inf",
            "row 1 (line 2), column scheduled_time: expected a finite number",
        ),
    ],
)
def test_broken_rows(tmp_path, old, new, expected):
    p = _write(tmp_path, HEADER + ROWS.replace(old, new, 1))
    with pytest.raises(TraceError) as err:
        openb.load(str(p))
    assert str(err.value).startswith(f"{p}: {expected}"), str(err.value)


def test_duplicate_pod_names(tmp_path):
    p = _write(tmp_path, HEADER + ROWS + ROWS.splitlines(keepends=True)[0])
    with pytest.raises(
        TraceError,
        match=r"row 5 \(line 6\), column job_id: duplicate job_id "
        r"'openb-pod-0000' \(same as row 1 \(line 2\)\)",
    ):
        openb.load(str(p))


def test_wrong_columns_and_empty(tmp_path):
    p = _write(tmp_path, "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-01,1,1,1,a\n")
    with pytest.raises(TraceError, match=r"missing column\(s\) \['name', 'cpu_milli'"):
        openb.load(str(p))
    with pytest.raises(TraceError, match="file is empty"):
        openb.load(str(_write(tmp_path, "")))
    with pytest.raises(ValueError, match="pending must be one of"):
        openb.load(pending="maybe")


def test_untimed_variant(tmp_path):
    text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,1024,2,1000\np1,500,512,1,250\n"
    p = _write(tmp_path, text)
    with pytest.raises(TraceError, match="no time columns"):
        openb.load(str(p))
    trace = openb.load(str(p), untimed="batch", untimed_duration=50.0)
    assert trace.jobs["submit_time"].tolist() == [0.0, 0.0]
    assert trace.jobs["duration"].tolist() == [50.0, 50.0]
    assert trace.report == {"repaired_untimed_batch": 2}
    assert (trace.jobs["priority"] == 0).all()


def test_full_default_file():
    path = OPENB / "openb_pod_list_default.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    trace = openb.load(str(path))
    assert len(trace.jobs) == 8152 - 897
    assert trace.report == {"dropped_pending": 897, "kept_censored_at_trace_end": 34}
    assert trace.jobs["num_gpus"].value_counts().to_dict()[8] == 44
    multi = openb.load(str(OPENB / "openb_pod_list_multigpu20.csv"), untimed="batch")
    assert len(multi.jobs) == 8324


def test_sample_is_verbatim_prefix():
    path = OPENB / "openb_pod_list_gpuspec33.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    sample = openb.SAMPLE.read_bytes()
    assert path.read_bytes()[: len(sample)] == sample
    assert sample.count(b"\n") == 2001


# ------------------------------------------------------------------------------ inventories
def test_openb_inventory():
    spec = inventories.alibaba_openb()
    assert spec.num_nodes == 1213 and spec.total_gpus == 6212
    counts = pd.Series(spec.gpus).groupby(pd.Series(spec.gpu_models)).sum().to_dict()
    assert counts == {
        "G2": 4392,
        "T4": 842,
        "G3": 312,
        "P100": 265,
        "V100M32": 204,
        "V100": 195,
        "A10": 2,
    }
    assert spec.cpus[0] == 64.0 and spec.memory_gb[0] == 256.0


def test_pai_inventory():
    spec = inventories.alibaba_pai2020(nodes_per_rack=16)
    assert spec.num_nodes == 1897 and spec.total_gpus == 6742
    assert int((spec.gpus == 0).sum()) == 83
    assert spec.racks.max() == (1897 - 1) // 16


def test_cluster_configs():
    for name, nodes in (("alibaba_openb", 1213), ("alibaba_pai2020", 1897)):
        assert instantiate(OmegaConf.load(CONFIGS / f"{name}.yaml")).num_nodes == nodes
    cfg = OmegaConf.load(CONFIGS / "node_list.yaml")
    assert OmegaConf.is_missing(cfg, "path")
    cfg.path = str(inventories.OPENB_NODES)
    assert instantiate(cfg).total_gpus == 6212


def test_shipped_inventories_match_conversion(tmp_path):
    gpu_nodes = OPENB / "openb_node_list_gpu_node.csv"
    machines = PAI / "pai_machine_spec.csv"
    if not (gpu_nodes.is_file() and machines.is_file()):
        pytest.skip(f"{gpu_nodes} or {machines} not present")
    inventories.convert_openb_nodes(gpu_nodes, tmp_path / "a.csv")
    inventories.convert_pai_machines(machines, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_text() == inventories.OPENB_NODES.read_text()
    assert (tmp_path / "b.csv").read_text() == inventories.PAI2020_NODES.read_text()
    header = (PAI / "pai_machine_spec.header").read_text().strip().split(",")
    assert tuple(header) == inventories.PAI_MACHINE_COLUMNS


def test_inventory_conversion_errors(tmp_path):
    p = tmp_path / "nodes.csv"
    p.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,1024,two,P100\n")
    with pytest.raises(TraceError, match=r"row 1 \(line 2\), column gpu: cannot parse"):
        inventories.convert_openb_nodes(p)
