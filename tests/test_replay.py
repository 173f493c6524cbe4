"""The compiled replay (simulator.replay) is the SimPy loop, event for event.

Every scenario runs twice, ``compiled=True`` and ``compiled=False``, and everything a user can
see must be identical: the job table, the timeline, the summary, the final cluster state, the
stop log and the policy's own state.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from simulator import metrics, replay
from simulator.cluster import ClusterSpec
from simulator.engine import Simulation
from simulator.interrupts import GracefulStop
from simulator.jobs import Status
from traces.synthetic import generate


def random_cluster(rng: np.random.Generator) -> ClusterSpec:
    """Mixed nodes: 1-8 GPUs, two GPU models, some CPU-only, CPU/memory modelled or not."""
    n = int(rng.integers(2, 9))
    gpus = rng.choice([0, 1, 2, 4, 8], size=n, p=[0.1, 0.1, 0.2, 0.2, 0.4]).astype(np.int64)
    gpus[0] = 8
    models = tuple("" if g == 0 else str(rng.choice(["A100", "H100"])) for g in gpus)
    modelled = rng.random() < 0.5
    cpus = rng.choice([16.0, 32.0, 64.0], size=n) if modelled else np.full(n, np.inf)
    mem = rng.choice([64.0, 256.0], size=n) if modelled else np.full(n, np.inf)
    racks = (np.arange(n) // int(rng.integers(1, 4))).astype(np.int64)
    return ClusterSpec(
        tuple(f"n{i}" for i in range(n)), gpus, models, cpus.astype(float), mem, racks
    )


def random_trace(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Ties in submit times and durations, fractions, CPU-only jobs, big gangs, types."""
    gaps = rng.choice([0.0, 1.0, 5.0, 17.5], size=n, p=[0.3, 0.3, 0.3, 0.1])
    gpus = rng.choice([0, 1, 1, 1, 2, 3, 4, 8, 12, 16, 40], size=n)
    milli = np.where((gpus == 1) & (rng.random(n) < 0.3), rng.choice([250, 500, 700], size=n), 1000)
    return pd.DataFrame(
        {
            "job_id": np.arange(n),
            "submit_time": np.cumsum(gaps),
            "duration": rng.choice([10.0, 10.0, 30.0, 45.5, 200.0, 1000.0], size=n),
            "num_gpus": gpus,
            "gpu_milli": milli,
            "gpu_type": rng.choice(["", "", "", "A100", "H100", "B200"], size=n),
            "num_cpus": rng.choice([0.0, 0.0, 2.0, 8.0, 24.0], size=n),
            "memory_gb": rng.choice([0.0, 0.0, 16.0, 100.0], size=n),
        }
    ).assign(queue=[f"q{i % 70}" for i in range(n)] if rng.random() < 0.4 else "a")


def run(trace, cluster, policy, compiled, **kw) -> Simulation:
    sim = Simulation(trace, cluster, policy, compiled=compiled, **kw).run()
    assert sim.engine == ("compiled" if compiled else "simpy")
    return sim


def assert_same(a: Simulation, b: Simulation) -> None:
    if not a.running:  # after `until`, _finalise marks running jobs unfinished: no books then
        a.verify()
    pd.testing.assert_frame_equal(metrics.job_frame(a), metrics.job_frame(b))
    pd.testing.assert_frame_equal(metrics.timeline_frame(a), metrics.timeline_frame(b))
    pd.testing.assert_frame_equal(metrics.queue_timeline_frame(a), metrics.queue_timeline_frame(b))
    sa, sb = metrics.summary(a), metrics.summary(b)
    for s in (sa, sb):
        s.pop("wall_seconds", None)
        s.pop("engine", None)
    assert json.dumps(sa, sort_keys=True, default=str) == json.dumps(
        sb, sort_keys=True, default=str
    )
    for name in ("gpu_free", "free_full", "cpu_free", "mem_free", "buckets"):
        np.testing.assert_array_equal(getattr(a.state, name), getattr(b.state, name))
    for name in ("free_gpu_total", "allocated_milli", "version"):
        assert getattr(a.state, name) == getattr(b.state, name), name
    assert a.passes == b.passes
    assert list(a.stops) == list(b.stops)
    assert a.running == b.running
    assert len(a.queue) == len(b.queue) and a.queue.jobs() == b.queue.jobs()
    assert a.env.now == b.env.now
    assert a._alloc_q == b._alloc_q and a._queued_q == b._queued_q
    assert a._unstarted == b._unstarted
    for j in a.running:
        pa_, pb = a.jobs.placements[j], b.jobs.placements[j]
        for x, y in zip(pa_[:5], pb[:5], strict=True):
            np.testing.assert_array_equal(x, y)
    for x, y in zip(a.jobs.nodes_used, b.jobs.nodes_used, strict=True):
        assert (x is None and y is None) or np.array_equal(x, y)


def policies(rng: np.random.Generator):
    scoring = str(rng.choice(["bestfit", "spread", "firstfit"]))
    split, indexed = bool(rng.random() < 0.3), bool(rng.random() < 0.7)
    if rng.random() < 0.4:
        return lambda: FifoPolicy(scoring=scoring, allow_split=split, indexed=indexed)
    timeout = rng.choice([None, 0.0, 30.0, 600.0])
    return lambda: GangPolicy(
        scoring=scoring, allow_split=split, indexed=indexed, starvation_timeout=timeout
    )


@pytest.mark.parametrize("seed", range(60))
def test_random_scenarios_match_the_simpy_loop(seed):
    rng = np.random.default_rng(seed)
    cluster = random_cluster(rng)
    trace = random_trace(rng, int(rng.integers(1, 300)))
    make = policies(rng)
    kw = {}
    if rng.random() < 0.3:
        kw["until"] = float(rng.choice([1.0, 100.0, 400.0]))
    if rng.random() < 0.3:
        kw["timeline_interval"] = float(rng.choice([5.0, 60.0]))
    compiled_pol, simpy_pol = make(), make()
    a = run(trace, cluster, compiled_pol, True, **kw)
    b = run(trace, cluster, simpy_pol, False, **kw)
    assert_same(a, b)
    if isinstance(compiled_pol, GangPolicy):
        assert (compiled_pol._head, compiled_pol._head_since) == (
            simpy_pol._head,
            simpy_pol._head_since,
        )


@pytest.mark.parametrize("policy", [FifoPolicy, GangPolicy])
def test_benchmark_workload_matches(policy):
    """The benchmark's workload (heavy-tailed gangs, deep queue at load 1.3) on 32 x 8 GPUs."""
    trace = generate(5_000, cluster_gpus=32 * 8, load=1.3, seed=4)
    cluster = ClusterSpec.homogeneous(32, 8, "H100", nodes_per_rack=8)
    a = run(trace, cluster, policy(), True)
    b = run(trace, cluster, policy(), False)
    assert_same(a, b)
    assert a.passes > 4_000 and (a.jobs.status == Status.FINISHED).all()


def test_chunks_and_timeline_growth_do_not_change_the_run(monkeypatch):
    """Tiny chunks (resumed state) and a timeline buffer that must grow many times."""
    rng = np.random.default_rng(5)
    trace, cluster = random_trace(rng, 250), random_cluster(rng)
    whole = run(trace, cluster, GangPolicy(starvation_timeout=30.0), True)
    monkeypatch.setattr(replay, "CHUNK_EVENTS", 3)
    monkeypatch.setattr(replay, "_initial_rows", lambda n: 1)
    chunked = run(trace, cluster, GangPolicy(starvation_timeout=30.0), True)
    assert_same(whole, chunked)
    assert_same(chunked, run(trace, cluster, GangPolicy(starvation_timeout=30.0), False))


def test_interrupt_before_the_first_event_matches():
    trace = generate(200, cluster_gpus=16, load=0.9, seed=1)
    cluster = ClusterSpec.homogeneous(2, 8, "A100")
    sims = []
    for compiled in (True, False):
        with GracefulStop() as stop:
            stop.requested = True
            sim = Simulation(trace, cluster, GangPolicy(), compiled=compiled)
            sim.run(stop)
        assert sim.interrupted
        sims.append(sim)
    assert_same(*sims)
    assert (sims[0].jobs.status == Status.UNFINISHED).all()


def test_interrupt_between_chunks(monkeypatch):
    """A signal seen between chunks stops the run there: partial, consistent results."""
    monkeypatch.setattr(replay, "CHUNK_EVENTS", 50)
    trace = generate(500, cluster_gpus=16, load=1.2, seed=2)
    cluster = ClusterSpec.homogeneous(2, 8, "A100")
    calls = []
    real = replay._replay

    def one_chunk_then_stop(*args):
        calls.append(1)
        stop.requested = True
        return real(*args)

    monkeypatch.setattr(replay, "_replay", one_chunk_then_stop)
    with GracefulStop() as stop:
        sim = Simulation(trace, cluster, GangPolicy(), compiled=True).run(stop)
    assert len(calls) == 1 and sim.interrupted
    frame = metrics.job_frame(sim)
    assert 0 < (frame["status"] == "finished").sum() < len(frame)
    assert set(frame["status"]) <= {"finished", "unfinished"}
    assert sim.env.now > 0 and len(sim.timeline_rows()[0]) > 0


@pytest.mark.parametrize(
    "change",
    [
        "record_events",
        "check_invariants",
        "compiled_off",
        "subclass",
        "dormant",
        "72_gpu_node",
        "instance_schedule",
        "simulation_subclass",
    ],
)
def test_runs_that_need_python_use_the_simpy_loop(change):
    trace = generate(50, cluster_gpus=16, load=0.9, seed=3)
    cluster = ClusterSpec.homogeneous(2, 8, "A100")
    kw = {}
    policy = GangPolicy()
    if change in ("record_events", "check_invariants"):
        kw[change] = True
    elif change == "compiled_off":
        kw["compiled"] = False
    elif change == "subclass":

        class Mine(GangPolicy):
            def schedule(self, view):
                yield from super().schedule(view)

        policy = Mine()
    elif change == "dormant":
        trace.loc[3, "submit_time"] = math.inf
    elif change == "72_gpu_node":  # GPU slots of a node no longer fit one 64-bit mask
        cluster = ClusterSpec.homogeneous(1, 72, "B200")
    elif change == "instance_schedule":
        policy.schedule = lambda view: GangPolicy.schedule(policy, view)
    sim_class = Simulation
    if change == "simulation_subclass":

        class Traced(Simulation):
            def _start(self, j, p):
                super()._start(j, p)

        sim_class = Traced
    sim = sim_class(trace, cluster, policy, **kw).run()
    assert sim.engine == "simpy"


@pytest.mark.parametrize("queues", [2, 70])  # with and without per-queue timeline rows
def test_queues_use_the_compiled_loop(queues):
    trace = generate(200, cluster_gpus=16, load=1.1, seed=3)
    trace["queue"] = [f"q{i % queues}" for i in range(len(trace))]
    cluster = ClusterSpec.homogeneous(2, 8, "A100")
    a = run(trace, cluster, FifoPolicy(), True)
    b = run(trace, cluster, FifoPolicy(), False)
    assert_same(a, b)
    assert len(metrics.queue_timeline_frame(a)) == (len(a.timeline_rows()[0]) * queues) * (
        queues <= 64
    )


def test_too_many_node_entries_fall_back_to_the_simpy_loop(monkeypatch):
    trace = generate(300, cluster_gpus=32, load=1.0, seed=6)
    cluster = ClusterSpec.homogeneous(4, 8, "A100", nodes_per_rack=2)
    reference = run(trace, cluster, GangPolicy(), False)
    monkeypatch.setattr(replay, "_max_entries", lambda n: 10)
    sim = Simulation(trace, cluster, GangPolicy()).run()
    assert sim.engine == "simpy"
    assert_same(sim, reference)


def test_progress_bar_follows_the_compiled_loop(monkeypatch, capsys):
    monkeypatch.setattr(replay, "CHUNK_EVENTS", 64)
    trace = generate(3_000, cluster_gpus=32, load=0.9, seed=7)
    cluster = ClusterSpec.homogeneous(4, 8, "A100")
    sim = Simulation(trace, cluster, FifoPolicy(), progress=True).run()
    assert sim.engine == "compiled"
    assert sim._bar.n == len(trace)
    assert "3000/3000" in capsys.readouterr().err


def test_benchmark_rows_run_both_loops_with_identical_files(tmp_path):
    from experiments.bench import run_simulator, write_trace

    trace = write_trace(tmp_path, 2_000, 16)
    fast = run_simulator(trace, 16, "gang", tmp_path / "fast")
    slow = run_simulator(trace, 16, "gang", tmp_path / "slow", ("sim.compiled=false",))
    assert (fast["summary"]["engine"], slow["summary"]["engine"]) == ("compiled", "simpy")
    for name in ("jobs.parquet", "timeline.parquet"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "slow" / name).read_bytes()


@pytest.mark.parametrize("until", [50, 50.0, None])
def test_edge_runs_match(until):
    """Nothing sampled before `until` with two queues; an integer `until`; a NaN duration."""
    trace = pd.DataFrame(
        {
            "job_id": [1, 2, 3],
            "submit_time": [100.0, 101.0, 102.0],
            "duration": [math.nan, 10.0, 5.0],
            "num_gpus": [8, 8, 2],
            "queue": ["a", "b", "a"],
        }
    )
    cluster = ClusterSpec.homogeneous(1, 8, "A100")
    for policy in (FifoPolicy, GangPolicy):
        a = run(trace, cluster, policy(), True, until=until)
        b = run(trace, cluster, policy(), False, until=until)
        assert_same(a, b)
        assert type(a.env.now) is type(b.env.now)


def test_a_shared_gpu_share_on_several_gpus_is_refused():
    trace = pd.DataFrame(
        {
            "job_id": ["x"],
            "submit_time": [0.0],
            "duration": [1.0],
            "num_gpus": [2],
            "gpu_milli": [500],
        }
    )
    with pytest.raises(ValueError, match=r"job 'x'.*gpu_milli=500.*num_gpus == 1, got 2"):
        Simulation(trace, ClusterSpec.homogeneous(1, 8, "A100"), FifoPolicy())
