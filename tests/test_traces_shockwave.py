"""The Shockwave trace loader: the real 120-job file, the batch-size schedules, broken lines."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from traces.errors import TraceError
from traces.shockwave import accordion_schedule, batch_schedule, gns_schedule, load

FOLDER = Path(__file__).resolve().parents[2] / "shared" / "traces" / "shockwave-tacc32"
TRACE = FOLDER / "tacc32_120jobs.trace"


@pytest.fixture
def real():
    if not TRACE.exists():
        pytest.skip("shared Shockwave trace not present")
    return load(TRACE).jobs


def test_real_trace_adapted_durations_match_source_md(real):
    # SOURCE.md: D sums to 471,542 s (the static column to 496,241 s); 635,795 GPU-seconds
    assert len(real) == 120
    assert round(real["duration"].sum()) == 471542
    assert round((real["duration"] * real["num_gpus"]).sum()) == 635795
    assert real["static_duration"].sum() == 496241
    assert real["num_gpus"].value_counts().to_dict() == {1: 92, 2: 20, 4: 8}
    assert real["mode"].value_counts().to_dict() == {"accordion": 59, "gns": 57, "static": 4}
    assert real["submit_time"].iloc[0] == 0 and real["submit_time"].iloc[-1] == 5011
    assert real["job_id"].tolist()[:3] == ["0", "1", "2"] or real["job_id"].tolist()[:3] == [
        0,
        1,
        2,
    ]


def test_static_durations_without_adaptation():
    if not TRACE.exists():
        pytest.skip("shared Shockwave trace not present")
    jobs = load(TRACE, adaptation=False).jobs
    assert jobs["duration"].sum() == 496241


def test_gns_first_segment_reaches_the_last_epoch_later_ones_stop_short():
    # ResNet-18, B=32, 1 GPU: x2 from epoch 21, x4 from 31, x8 from 51 (SOURCE.md); capped 256
    s = gns_schedule("ResNet-18", 32, 1, 60)
    assert s[:21] == [32] * 21 and s[21:31] == [64] * 10 and s[31:51] == [128] * 20
    assert s[51:59] == [256] * 8 and s[59] == 32  # the last epoch is left out by later loops
    one = gns_schedule("ResNet-18", 128, 1, 20)  # a single segment includes the last epoch
    assert one[:11] == [128] * 11 and one[11:] == [256] * 9
    assert gns_schedule("ResNet-18", 32, 1, 21) == [32] * 21  # needs more than 21 epochs
    assert gns_schedule("Transformer", 128, 1, 50) == [128] * 50


def test_accordion_schedule():
    s = accordion_schedule("LM", 10, 40)
    # critical regime: epochs 0-9; the first 30 % (epochs <= 12) keep B
    assert s[:13] == [10] * 13 and s[13:] == [80] * 27
    assert accordion_schedule("Transformer", 64, 5) == [64] * 5
    assert batch_schedule("static", "LM", 10, 1, 3) == [10] * 3
    with pytest.raises(ValueError, match="unknown adaptation mode"):
        batch_schedule("elastic", "LM", 10, 1, 3)


def _write(tmp_path, line: str) -> Path:
    if not FOLDER.exists():
        pytest.skip("shared Shockwave throughputs not present")
    p = tmp_path / "t.trace"
    p.write_text(line + "\n")
    return p


def test_broken_lines_name_file_and_line(tmp_path):
    tput = FOLDER / "tacc_throughputs.json"
    p = _write(tmp_path, "LM (batch size 10)\tcmd\tdir\t--steps\t1\t100")
    with pytest.raises(TraceError, match=r"t.trace: line 1: expected 12 tab-separated fields"):
        load(p, tput)
    good = "\t".join(
        ["LM (batch size 10)", "c", "d", "-s", "1", "1000", "1", "gns", "1", "-1", "10", "0"]
    )
    p = _write(tmp_path, good.replace("\t1000\t", "\tmany\t"))
    with pytest.raises(TraceError, match="line 1"):
        load(p, tput)
    p = _write(tmp_path, good.replace("LM (batch size 10)", "GPT (batch size 1)"))
    with pytest.raises(TraceError, match="not '<model> \\(batch size B\\)'"):
        load(p, tput)
    p = _write(tmp_path, good)
    jobs = load(p, tput).jobs
    epochs = math.ceil(1000 / math.ceil(59675 / 10))
    assert jobs["num_epochs"].tolist() == [epochs]


def test_experiment_config_is_the_authors_setup():
    from hydra import compose, initialize_config_dir

    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose("config", overrides=["+policy=gavel_ftf", "+experiment=shockwave_tacc32"])
    assert cfg.policy.round_length == 120.0
    assert cfg.sim.speed_reference == "V100"
    assert (cfg.cluster.num_nodes, cfg.cluster.gpus_per_node) == (32, 1)
    assert cfg.trace._target_ == "traces.shockwave.load"
    import yaml

    sweep = yaml.safe_load((configs / "experiment" / "shockwave_tacc32.yaml").read_text())
    sweep = sweep["hydra"]["sweeper"]["params"]
    assert sweep["+policy"] == "gavel_maxmin,gavel_ftf,gavel_maxsum"
    assert sweep["policy.round_length"] == 120.0


def test_experiment_run_summary_carries_gavel_name(tmp_path):
    if not TRACE.exists():
        pytest.skip("shared Shockwave trace not present")
    from hydra import compose, initialize_config_dir

    from simulator.app import run_config

    configs = Path(__file__).resolve().parents[1] / "configs"
    over = [
        "+policy=gavel_maxsum",
        "+experiment=shockwave_tacc32",
        f"trace.path={TRACE}",
        f"sim.throughputs={FOLDER / 'tacc_throughputs.json'}",
        "trace.max_jobs=6",
        "sim.progress=false",
    ]
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose("config", overrides=over)
    summary = run_config(cfg, tmp_path / "run")
    assert summary["policy"] == "max_sum_throughput_perf"
    assert summary["jobs_finished"] == 6 and summary["avg_jct"] > 0 and summary["makespan"] > 0
    assert set(summary["gpu_type_utilization"]) == {"V100"}
