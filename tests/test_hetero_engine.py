"""GPU-type speeds in the engine: exact finish times, work conservation, outputs, identity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_trace, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.base import Migrate, Policy, Preempt, Start
from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.models.speed import SpeedModel, speed_model_from_config
from simulator.models.throughput import ThroughputTable
from simulator.output.metrics import job_frame, summary
from traces.errors import TraceError

# steps/s of the whole gang, in the layout of Gavel's simulation_throughputs.json
TABLE = ThroughputTable.from_mapping(
    {
        "k80": {"('J', 1)": {"null": 1.0}, "('Z', 1)": {"null": 0.0}},
        "v100": {"('J', 1)": {"null": 4.0}, "('Z', 1)": {"null": 2.0}},
    },
    "inline",
)


def two_types() -> ClusterSpec:
    """Node 0: one K80; node 1: one V100 (model ids: K80 = 0, V100 = 1)."""
    return ClusterSpec.from_groups(
        [
            {"count": 1, "num_gpus": 1, "gpu_type": "K80"},
            {"count": 1, "num_gpus": 1, "gpu_type": "V100"},
        ]
    )


class Script(Policy):
    """Runs job 0 by a script: ``(time, action, node)`` with action start|migrate|preempt."""

    def __init__(self, steps: list[tuple[float, str, int]]) -> None:
        self.steps = sorted(steps)
        self.done = 0

    def setup(self, view) -> None:
        for t, _, _ in self.steps:
            view.wake_at(t)

    def schedule(self, view):
        while self.done < len(self.steps) and self.steps[self.done][0] <= view.now:
            _, action, node = self.steps[self.done]
            self.done += 1
            p = view.placer().place(view.jobs, 0, 1 << node)
            if action == "start" and view.jobs.status[0] == 1:  # queued
                if p is not None:
                    yield Start(0, p)
            elif action == "migrate" and 0 in view.running:
                here = (
                    int(view.jobs.nodes_used[0][0]) if view.jobs.nodes_used[0] is not None else -1
                )
                if p is not None and node != here:
                    yield Migrate(0, p)
            elif action == "preempt" and 0 in view.running:
                yield Preempt(0)


def one_job(duration: float, job_type: str = "J") -> object:
    return make_trace([(0, 0.0, duration, 1)], job_type=[job_type])


def test_k80_to_v100_finishes_when_the_table_says():
    # 1000 s on a V100 = 4000 steps. 400 s on the K80 (1 step/s) do 400 steps (100 s of V100
    # work); the other 3600 steps take 900 s on the V100: it ends at 400 + 900 = 1300 s.
    sim = simulate(
        one_job(1000.0),
        two_types(),
        Script([(0.0, "start", 0), (400.0, "migrate", 1)]),
        speed=SpeedModel("V100", TABLE),
    )
    assert [e for e in sim.events if e[1] == 0] == [
        (0, 0, "arrive"),
        (0, 0, "start"),
        (400, 0, "migrate"),
        (1300, 0, "finish"),
    ]
    assert sim.jobs.type_seconds[0].tolist() == [400.0, 900.0]
    f = job_frame(sim)
    assert f["gpu_seconds_K80"].tolist() == [400.0] and f["gpu_seconds_V100"].tolist() == [900.0]
    s = summary(sim)
    assert s["gpu_type_utilization"] == {"K80": 400.0 / 1300.0, "V100": 900.0 / 1300.0}


def test_k80_to_v100_on_gavels_table():
    # Gavel's simulation_throughputs.json: ResNet-50 (batch size 64), 1 GPU.
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared/traces/gavel-philly-derived"
    path = path / "simulation_throughputs.json"
    if not path.exists():
        pytest.skip("shared Gavel traces not present")
    model = SpeedModel("V100", path)
    job = "ResNet-50 (batch size 64)"
    k80, v100 = model.table.throughput(job, "k80"), model.table.throughput(job, "v100")
    sim = simulate(
        one_job(3600.0, job),
        two_types(),
        Script([(0.0, "start", 0), (1800.0, "migrate", 1)]),
        speed=model,
    )
    steps = 3600.0 * v100
    expect = 1800.0 + (steps - 1800.0 * k80) / v100
    assert sim.jobs.end[0] == pytest.approx(expect, rel=1e-12)


def test_zero_throughput_keeps_a_job_off_that_type():
    # 'Z' has 0.0 steps/s on the K80: FIFO must place it on the V100 only (and wait for it).
    trace = make_trace([(0, 0.0, 100.0, 1), (1, 0.0, 10.0, 1)], job_type=["J", "Z"])
    sim = simulate(trace, two_types(), FifoPolicy(), speed=SpeedModel("V100", TABLE))
    nodes = {j: int(sim.jobs.nodes_used[j][0]) for j in (0, 1)}
    assert nodes[1] == 1
    # job 0 (J) took a GPU first; if it took the V100, Z waited 100 s
    assert sim.jobs.end[1] == (10.0 if nodes[0] == 0 else 110.0)
    if nodes[0] == 0:
        assert sim.jobs.end[0] == 400.0  # 100 s of V100 work at a quarter speed


def test_only_zero_types_is_unschedulable():
    spec = ClusterSpec.from_groups([{"count": 1, "num_gpus": 1, "gpu_type": "K80"}])
    sim = simulate(one_job(10.0, "Z"), spec, FifoPolicy(), speed=SpeedModel("V100", TABLE))
    assert job_frame(sim)["status"].tolist() == ["unschedulable"]


def test_speedup_columns_then_default():
    spec = ClusterSpec.from_groups(
        [
            {"count": 1, "num_gpus": 1, "gpu_type": "A100-80GB"},
            {"count": 1, "num_gpus": 1, "gpu_type": "V100"},
        ]
    )
    trace = make_trace([(0, 0.0, 100.0, 1), (1, 0.0, 100.0, 1)])
    trace["speedup_A100-80GB"] = [2.0, np.nan]
    model = SpeedModel("V100", compute_fraction=0.0)
    m = model.matrix(trace, ["A100-80GB", "V100"])
    assert m[0].tolist() == [2.0, 1.0]
    assert m[1, 0] == pytest.approx(2039.0 / 900.0)  # the bandwidth ratio (c = 0)
    assert m[1, 1] == 1.0
    sim = simulate(trace, spec, FifoPolicy(), speed=model)
    on_a100 = [j for j in (0, 1) if int(sim.jobs.nodes_used[j][0]) == 0][0]
    assert sim.jobs.end[on_a100] == pytest.approx(100.0 / m[on_a100, 0])


def test_table_errors_name_the_problem():
    spec = ["K80", "H100"]
    with pytest.raises(TraceError, match="no worker type 'h100'"):
        SpeedModel("V100", TABLE).matrix(one_job(1.0), spec)
    bad = ThroughputTable.from_mapping({"v100": {"('J', 1)": {"null": 0.0}}}, "bad.json")
    with pytest.raises(TraceError, match="0 steps/s on the reference"):
        SpeedModel("V100", bad).matrix(one_job(1.0), ["V100"])
    with pytest.raises(ValueError, match="no speed on GPU model K80"):
        SpeedModel("V100").matrix(one_job(1.0, "unknown"), ["K80", "V100"])
    with pytest.raises(ValueError, match="speed_reference is null"):
        speed_model_from_config({"throughputs": "x.json"})
    assert speed_model_from_config({"speed_reference": None}) is None
    with pytest.raises(ValueError, match="compute_fraction"):
        SpeedModel("V100", compute_fraction=1.5)


def test_rate_factor_composes_with_type_speed():
    # a rate factor (what a fabric sets) of 0.5 on a K80 (speed 0.25): 0.125 s of work per s
    def slow(sim):
        yield sim.env.timeout(100.0)
        sim.set_rate(0, 0.5)

    sim = simulate(
        one_job(100.0),
        two_types(),
        Script([(0.0, "start", 0)]),
        speed=SpeedModel("V100", TABLE),
        processes=(slow,),
    )
    # 100 s at 0.25 = 25 s of work; the other 75 s at 0.125 take 600 s
    assert sim.jobs.end[0] == pytest.approx(700.0)


def _run(trace, spec, policy, speed):
    return Simulation(trace, spec, policy, speed=speed, record_events=True).run()


def test_speeds_of_one_are_the_homogeneous_run():
    rng = np.random.default_rng(3)
    rows = [
        (i, float(rng.integers(0, 50)), float(rng.integers(1, 40)), int(rng.integers(1, 5)))
        for i in range(40)
    ]
    trace = make_trace(rows)
    spec = ClusterSpec.homogeneous(2, 8, "V100")
    off = _run(trace, spec, FifoPolicy(), None)
    on = _run(trace, spec, FifoPolicy(), SpeedModel("V100"))
    assert off.events == on.events
    a, b = job_frame(off), job_frame(on)
    assert (
        "gpu_seconds_V100" not in a and b["gpu_seconds_V100"].tolist() == a["gpu_seconds"].tolist()
    )
    assert a.equals(b.drop(columns=["gpu_seconds_V100"]))


_STEP = st.tuples(
    st.floats(1.0, 500.0), st.sampled_from(["migrate", "preempt", "start"]), st.integers(0, 1)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STEP, max_size=8), st.floats(10.0, 2000.0), st.integers(0, 1))
def test_work_is_conserved_across_preemption_and_migration(steps, duration, first):
    # replay the script by hand: work done = sum of speed x time on each type; the run ends
    # when it reaches the duration (no checkpoint loss, no overheads)
    speed = {0: 0.25, 1: 1.0}
    script = [(0.0, "start", first)] + [(round(t, 3), a, n) for t, a, n in steps]
    policy = Script(script)
    sim = simulate(one_job(duration), two_types(), policy, speed=SpeedModel("V100", TABLE))
    t, work, where = 0.0, 0.0, None
    secs = [0.0, 0.0]
    end = None
    for time, action, node in sorted(script) + [(math.inf, "end", 0)]:
        if where is not None:
            left = (duration - work) / speed[where]
            if t + left <= time:
                end = t + left
                secs[where] += left
                break
            work += (time - t) * speed[where]
            secs[where] += time - t
        t = time
        if action == "start" and where is None:
            where = node
        elif action == "migrate" and where is not None and node != where:
            where = node
        elif action == "preempt" and where is not None:
            where = None
    if end is None:  # left preempted by the script: never finishes
        assert math.isnan(sim.jobs.end[0])
        assert sim.jobs.type_seconds[0] == pytest.approx(secs, rel=1e-9, abs=1e-6)
        return
    assert sim.jobs.end[0] == pytest.approx(end, rel=1e-9, abs=1e-6)
    assert sim.jobs.type_seconds[0] == pytest.approx(secs, rel=1e-9, abs=1e-6)
    assert sim.jobs.work[0] == duration


def _composed(*overrides: str):
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        return compose("config", overrides=["+policy=fifo", *overrides])


def test_speeds_off_keep_the_config_key_and_outputs(tmp_path):
    # the speed options are left out of config_key while off (summary.json as before them)
    import json

    from omegaconf import OmegaConf

    from simulator.app import config_key, run_config

    cfg = _composed()
    bare = OmegaConf.to_container(cfg)
    for key in ("speed_reference", "throughputs", "compute_fraction", "speed_worker_types"):
        del bare["sim"][key]
    assert config_key(cfg) == config_key(OmegaConf.create(bare))
    assert config_key(cfg) != config_key(_composed("sim.speed_reference=V100"))
    off = run_config(_composed("sim.progress=false"), tmp_path / "off")
    on = run_config(_composed("sim.progress=false", "sim.speed_reference=V100"), tmp_path / "on")
    assert "gpu_type_utilization" not in off and set(on["gpu_type_utilization"]) == {"V100"}
    assert on["avg_jct"] == off["avg_jct"] and on["makespan"] == off["makespan"]
    import pandas as pd

    a, b = (
        pd.read_parquet(tmp_path / "off/jobs.parquet"),
        pd.read_parquet(tmp_path / "on/jobs.parquet"),
    )
    assert "gpu_seconds_V100" not in a
    assert b["gpu_seconds_V100"].tolist() == a["gpu_seconds"].tolist()
    assert json.loads((tmp_path / "off/summary.json").read_text())["jobs_total"] == len(a)
