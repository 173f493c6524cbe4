"""Failure injection: exact logs, no-op identity, lost work against theory, the failure trace."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_trace, simulate
from hydra.utils import instantiate
from omegaconf import OmegaConf

from policies.fgd import FgdPolicy
from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from simulator.core import extensions
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.limits import time_limit
from simulator.models.failures import (
    HOUR,
    NoFailures,
    RandomFailures,
    TraceFailures,
    expected_lost_per_kill,
    weibull_scale,
)
from simulator.output.metrics import job_frame, summary, timeline_frame
from simulator.output.results import load_run
from traces import TraceError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "failures.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def random_trace(n: int, seed: int, max_gpus: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return make_trace(
        list(
            zip(
                range(n),
                np.round(np.cumsum(rng.exponential(30.0, n))),
                np.round(rng.exponential(600.0, n)) + 1.0,
                rng.choice([0, 1, 2, 4, max_gpus], n).tolist(),
                strict=True,
            )
        )
    )


# ---------------------------------------------------------------------------------- exact log
def test_one_failure_from_a_trace_file_has_an_exact_event_log(tmp_path):
    # 2 nodes x 4 GPUs, FIFO. Jobs 1 and 2 start at 0 on node-0 and node-1. node-1 (given by
    # name) fails at 25: job 2 keeps its checkpoint at 20 s, pays 5 s overhead again (lost
    # 5 + 5 = 10 s) and waits: node-0 is busy, node-1 is down. Job 3 arrives at 30 and queues
    # behind it. Job 1 ends at 60: job 2 restarts on node-0 and needs 100 - 20 + 5 = 85 s (ends
    # at 145). node-1 is back at 70: job 3 runs 70..90. The row for node 0 (by index) at 200
    # comes after the last job and is not applied.
    path = write(tmp_path, "node,down_time,up_time,reason\nnode-1,25,70,xid79\n0,200,210,late\n")
    injector = TraceFailures(path)
    cluster = ClusterSpec.homogeneous(2, 4, "H100")
    trace = make_trace([(1, 0, 60, 4), (2, 0, 100, 4), (3, 30, 20, 4)])
    sim = simulate(
        trace,
        cluster,
        FifoPolicy(),
        checkpoint_interval=10,
        restart_overhead=5,
        processes=injector.processes(),
    )
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 2, "arrive"),
        (0, 1, "start"),
        (0, 2, "start"),
        (25, 2, "killed"),
        (30, 3, "arrive"),
        (60, 1, "finish"),
        (60, 2, "start"),
        (70, 3, "start"),
        (90, 3, "finish"),
        (145, 2, "finish"),
    ]
    assert [(t, j, list(p.nodes)) for t, j, p in sim.placement_log] == [
        (0, 0, [0]),
        (0, 1, [1]),
        (60, 1, [0]),
        (70, 2, [1]),
    ]
    table = injector.tables(sim)["failures"]
    assert table.to_dict("records") == [
        {
            "time": 25.0,
            "node": 1,
            "node_name": "node-1",
            "event": "down",
            "jobs_killed": 1,
            "lost_gpu_seconds": 40.0,
        },
        {
            "time": 70.0,
            "node": 1,
            "node_name": "node-1",
            "event": "up",
            "jobs_killed": 0,
            "lost_gpu_seconds": 0.0,
        },
    ]
    assert list(sim.lost_seconds) == [0.0, 10.0, 0.0]
    s = {**summary(sim), **injector.summary(sim)}
    assert s["failures"] == s["node_failures"] == 1 and s["repairs"] == 1
    assert s["jobs_killed"] == s["restarts"] == 1
    assert s["failure_lost_gpu_hours"] == s["lost_gpu_hours"] == pytest.approx(40 / HOUR)
    # goodput: useful 4x60 + 4x100 + 4x20 over allocated 4x60 + 4x(25 + 85) + 4x20
    assert s["goodput"] == pytest.approx(720 / 760)
    assert s["failure_model"] == f"trace({path})"


def test_a_failed_gang_stops_on_every_node_and_waits_for_the_repair(tmp_path):
    # One 8-GPU gang over both nodes; node 0 is down 10..50: the gang is killed (no checkpoint
    # interval: it keeps all 10 s) and can only restart when both nodes are up again.
    path = write(tmp_path, "node,down_time,up_time\n0,10,50\n")
    cluster = ClusterSpec.homogeneous(2, 4, "H100", nodes_per_rack=1)
    sim = simulate(
        make_trace([(1, 0, 100, 8)]),
        cluster,
        GangPolicy(),
        processes=TraceFailures(path).processes(),
    )
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 1, "start"),
        (10, 1, "killed"),
        (50, 1, "start"),
        (140, 1, "finish"),
    ]


def test_a_node_that_is_never_repaired_leaves_jobs_unfinished(tmp_path):
    path = write(tmp_path, "node,down_time,up_time\nnode-0,5,\n")
    sim = Simulation(
        make_trace([(1, 0, 100, 1), (2, 10, 5, 1)]),
        ClusterSpec.homogeneous(1, 1, "H100"),
        FifoPolicy(),
        record_events=True,
        check_invariants=True,
        processes=TraceFailures(path).processes(),
    ).run()
    assert list(job_frame(sim)["status"]) == ["unfinished", "unfinished"]
    assert sim.events[-2:] == [(5, 1, "killed"), (10, 2, "arrive")]


def test_max_retries_ends_a_job_failed_with_the_injector(tmp_path):
    rows = "".join(f"node-0,{10 * k + 5},{10 * k + 6}\n" for k in range(5))
    path = write(tmp_path, "node,down_time,up_time\n" + rows)
    injector = TraceFailures(path)
    sim = simulate(
        make_trace([(1, 0, 100, 1)]),
        ClusterSpec.homogeneous(1, 1, "H100"),
        FifoPolicy(),
        max_retries=1,
        processes=injector.processes(),
    )
    assert [e for _, _, e in sim.events] == ["arrive", "start", "killed", "start", "failed"]
    s = {**summary(sim), **injector.summary(sim)}
    assert s["jobs_failed"] == 1 and s["jobs_killed"] == 2 and s["failures"] == 2
    assert list(injector.tables(sim)["failures"]["event"]) == ["down", "up", "down"]


def test_summary_and_table_reach_the_outputs_through_the_extension_protocol(tmp_path):
    injector = RandomFailures(mtbf_hours=2.0, repair="exponential", repair_hours=0.25, seed=3)
    trace = random_trace(200, seed=1)
    sim = simulate(
        trace,
        ClusterSpec.homogeneous(4, 8, "A100-80GB"),
        GangPolicy(),
        checkpoint_interval=300,
        restart_overhead=30,
        processes=extensions.processes([injector]),
    )
    jobs, s, tables = job_frame(sim), summary(sim), {}
    extensions.collect_outputs([injector], sim, jobs, s, tables)
    failures = tables["failures"]
    assert s["failures"] == s["node_failures"] == (failures["event"] == "down").sum() > 0
    assert s["jobs_killed"] == failures["jobs_killed"].sum() == s["restarts"]
    assert failures["lost_gpu_seconds"].sum() == pytest.approx(s["lost_gpu_seconds"])
    assert s["lost_gpu_hours"] == pytest.approx(s["lost_gpu_seconds"] / 3600)
    assert failures["time"].is_monotonic_increasing
    # every failure is followed by the repair of that node before its next failure
    for _, rows in failures.groupby("node"):
        ev = rows["event"].tolist()
        assert ev[::2] == ["down"] * len(ev[::2]) and ev[1::2] == ["up"] * len(ev[1::2])


# ---------------------------------------------------------------------------------- identity
def frames(sim: Simulation) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    s = summary(sim)
    s.pop("wall_seconds")
    return job_frame(sim), timeline_frame(sim), s


@pytest.mark.parametrize("policy", [FifoPolicy, GangPolicy])
def test_failures_none_gives_identical_results(policy):
    cfg = OmegaConf.load(ROOT / "configs" / "failures" / "none.yaml")
    none = instantiate(cfg, _convert_="all")
    assert isinstance(none, NoFailures) and none.processes() == []
    trace, cluster = random_trace(300, seed=2), ClusterSpec.homogeneous(4, 8, "V100")
    kw = {"checkpoint_interval": 100.0, "restart_overhead": 10.0, "check_invariants": True}
    base = Simulation(trace, cluster, policy(), **kw).run()
    with_ext = Simulation(
        trace, cluster, policy(), processes=extensions.processes([none]), **kw
    ).run()
    extra_summary, extra_tables = {}, {}
    extensions.collect_outputs([none], with_ext, job_frame(with_ext), extra_summary, extra_tables)
    assert extra_summary == {} and extra_tables == {}
    a, b = frames(base), frames(with_ext)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2] == b[2]


def test_a_model_that_never_fires_leaves_a_randomised_policy_bit_identical():
    # The injector draws from its own generator, never from sim.rng, and stops once the work is
    # done: a failure model whose first failure comes after the last job changes nothing, even
    # for a policy that breaks ties with the run's RNG.
    trace, cluster = random_trace(150, seed=4), ClusterSpec.homogeneous(4, 8, "V100")
    injector = RandomFailures(mtbf_hours=1e9)
    base = Simulation(trace, cluster, FgdPolicy(scoring="random"), seed=7).run()
    other = Simulation(
        trace, cluster, FgdPolicy(scoring="random"), seed=7, processes=injector.processes()
    ).run()
    a, b = frames(base), frames(other)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2] == b[2]
    assert injector.summary(other)["failures"] == 0 and len(injector.tables(other)["failures"]) == 0


# ---------------------------------------------------------------------------------- theory
@pytest.mark.parametrize(
    ("distribution", "shape", "overhead", "kills", "expected"),
    [("exponential", 1.0, 10.0, 20_000, 1780.0), ("weibull", 0.7, 2.0, 10_000, 1681.5)],
)
def test_long_run_lost_work_matches_the_analytic_expectation(
    distribution, shape, overhead, kills, expected
):
    # 64 one-GPU nodes, each running one job that never ends; failures with MTBF 10 h per
    # node, repairs 30 min; the killed job restarts on its node the instant it is repaired, so
    # the time T from a restart to the next kill is a fresh up-time draw. Checkpoints every
    # C = 1 h of progress, restart overhead R. A kill loses T mod C + R, whose mean is
    # E[T] - C sum_k S(kC) + R (expected_lost_per_kill): for exponential failures
    # MTBF - C / (exp(C / MTBF) - 1) + R = 1780.0 s with R = 10 s (C/2 + R = 1810 s is its
    # first-order form; the 30 s gap is 4 standard errors here, so the test tells them apart);
    # for Weibull failures of shape 0.7 (early failures dominate) 1681.5 s with R = 2 s.
    # Each kill is one independent sample (a renewal at every restart): the mean of N kills
    # has standard error s / sqrt(N), about C / sqrt(12 N) = 7.4 s for N = 20,000 and 10.4 s
    # for N = 10,000; we allow 4 standard errors (a false alarm about once in 16,000 runs;
    # the seed is fixed anyway) plus the neglected term: a kill within R of a restart
    # (probability P(T < R): 2.8e-4 and 1.3e-3 here) loses at most C + R more, i.e. under 1.1 s
    # and 4.5 s on the mean. The horizon ends the run (the jobs never finish), so no kill is cut
    # short by a completion.
    mtbf, c, nodes = 10 * HOUR, HOUR, 64
    injector = RandomFailures(
        mtbf_hours=10, distribution=distribution, shape=shape, repair_hours=0.5, seed=11
    )
    trace = make_trace([(k, 0.0, 1e15, 1) for k in range(nodes)])
    horizon = kills / nodes * (mtbf + 0.5 * HOUR)
    with time_limit(120):
        sim = Simulation(
            trace,
            ClusterSpec.homogeneous(nodes, 1, "H100"),
            FifoPolicy(),
            until=horizon,
            checkpoint_interval=c,
            restart_overhead=overhead,
            processes=injector.processes(),
        ).run()
    table = injector.tables(sim)["failures"]
    down = table[table["event"] == "down"]
    assert (down["jobs_killed"] == 1).all()  # each failure hits exactly the job on its node
    lost = down["lost_gpu_seconds"].to_numpy()
    n = len(lost)
    assert 0.9 * kills < n < 1.1 * kills
    assert expected_lost_per_kill(mtbf, c, overhead, shape) == pytest.approx(expected, abs=0.1)
    se = lost.std(ddof=1) / math.sqrt(n)
    early = -math.expm1(-((overhead / weibull_scale(mtbf, shape)) ** shape))
    assert abs(lost.mean() - expected) <= 4 * se + early * (c + overhead), (lost.mean(), se)
    # lost work in the core summary is the same quantity, and the failure rate is right:
    # failures per node-hour up ~ 1 / MTBF (renewal count: sd ~ cv(T) sqrt(n), 4 sd allowed)
    assert lost.sum() == pytest.approx(summary(sim)["lost_gpu_seconds"])
    up_hours = nodes * horizon / HOUR - (table["event"] == "up").sum() * 0.5
    cv = math.sqrt(math.gamma(1 + 2 / shape) / math.gamma(1 + 1 / shape) ** 2 - 1)
    assert n / up_hours == pytest.approx(1 / 10, rel=4 * cv / math.sqrt(n))


def test_expected_lost_per_kill_limits():
    assert expected_lost_per_kill(1e12, 100.0, 7.0) == pytest.approx(57.0)
    assert expected_lost_per_kill(50.0, 0.0, 3.0) == 3.0
    # failures much more frequent than checkpoints: the whole up-time is lost
    assert expected_lost_per_kill(10.0, 1e6, 0.0) == pytest.approx(10.0)
    assert expected_lost_per_kill(10.0, 1e6, 0.0, shape=0.5) == pytest.approx(10.0)
    # the survival-sum form agrees with the closed exponential form
    assert expected_lost_per_kill(3600.0, 600.0, 1.0, shape=1 + 1e-9) == pytest.approx(
        expected_lost_per_kill(3600.0, 600.0, 1.0), rel=1e-6
    )
    # wear-out failures (shape 4) almost never hit early: the loss is nearly uniform, C/2
    assert expected_lost_per_kill(36000.0, 600.0, 0.0, shape=4.0) == pytest.approx(300.0, rel=1e-3)


# ---------------------------------------------------------------------------------- the model
def up_and_repair_times(model: RandomFailures, cluster: ClusterSpec, events: int):
    """Up-times and repair times of every node from the first ``events`` events."""
    since = np.zeros(cluster.num_nodes)
    ups, repairs = [], []
    sched = model.schedule(cluster, seed=0)
    for _ in range(events):
        t, node, down = next(sched)
        (ups if down else repairs).append((node, t - since[node]))
        since[node] = t
    return ups, repairs


@pytest.mark.parametrize(
    ("distribution", "shape", "level", "gpus"),
    [
        ("exponential", 1.0, "node", 8),
        ("weibull", 0.7, "node", 8),
        ("weibull", 1.5, "gpu", 4),
        ("exponential", 1.0, "gpu", 8),
    ],
)
def test_up_times_have_the_configured_mean(distribution, shape, level, gpus):
    model = RandomFailures(
        mtbf_hours=100.0,
        distribution=distribution,
        shape=shape,
        repair="lognormal",
        repair_hours=2.0,
        repair_sigma=0.8,
        level=level,
        seed=5,
    )
    cluster = ClusterSpec.homogeneous(16, gpus, "V100")
    ups, repairs = up_and_repair_times(model, cluster, 40_000)
    up = np.array([d for _, d in ups])
    rep = np.array([d for _, d in repairs])
    # a node fails at the first failure of its G GPUs: min of G Weibulls = Weibull with scale
    # scale * G^(-1/k), so the node's mean up-time is MTBF * G^(-1/k)
    mean = 100.0 * HOUR * (gpus ** (-1.0 / shape) if level == "gpu" else 1.0)
    assert up.mean() == pytest.approx(mean, abs=4 * up.std() / math.sqrt(len(up)))
    assert rep.mean() == pytest.approx(2.0 * HOUR, abs=4 * rep.std() / math.sqrt(len(rep)))
    assert np.median(rep) == pytest.approx(2.0 * HOUR * math.exp(-(0.8**2) / 2), rel=0.05)
    if distribution == "weibull":  # shape from the coefficient of variation
        k = shape
        cv = math.sqrt(math.gamma(1 + 2 / k) / math.gamma(1 + 1 / k) ** 2 - 1)
        assert up.std() / up.mean() == pytest.approx(cv, rel=0.05)


def test_schedule_is_deterministic_ordered_and_alternating():
    model = RandomFailures(mtbf_hours=1.0, repair="exponential", repair_hours=0.5, seed=9)
    cluster = ClusterSpec.homogeneous(5, 2, "T4")
    a = [next(s) for s in [model.schedule(cluster, 0)] for _ in range(500)]
    b = [next(s) for s in [model.schedule(cluster, 123)] for _ in range(500)]
    assert a == b  # an explicit seed wins over the run's seed
    times = [t for t, _, _ in a]
    assert times == sorted(times)
    for node in range(5):
        ev = [down for _, n, down in a if n == node]
        assert ev == [k % 2 == 0 for k in range(len(ev))]
    derived = RandomFailures(mtbf_hours=1.0)
    assert next(derived.schedule(cluster, 0)) != next(derived.schedule(cluster, 1))
    assert next(derived.schedule(cluster, 1)) == next(derived.schedule(cluster, 1))


def test_fixed_zero_repair_and_gpu_level_without_gpus():
    model = RandomFailures(mtbf_hours=1.0, repair="fixed", repair_hours=0.0, level="gpu", seed=1)
    cluster = ClusterSpec.from_groups(
        [
            {"count": 2, "num_gpus": 0, "gpu_type": ""},
            {"count": 1, "num_gpus": 8, "gpu_type": "B200"},
        ]
    )
    assert np.isinf(model.node_scales(cluster)[:2]).all()
    events = [next(s) for s in [model.schedule(cluster, 0)] for _ in range(10)]
    assert {n for _, n, _ in events} == {2}  # CPU-only nodes have no GPU to fail
    assert all(events[k][0] == events[k + 1][0] for k in range(0, 10, 2))  # back at once
    assert weibull_scale(10.0, 1.0) == pytest.approx(10.0)


def test_a_repaired_node_takes_the_job_back_with_its_progress(tmp_path):
    # no checkpoint interval: the job keeps its 30 s of work, owes 1 s of overhead again
    path = write(tmp_path, "node,down_time,up_time\n0,30,30.5\n")
    sim = simulate(
        make_trace([(1, 0, 100, 2)]),
        ClusterSpec.homogeneous(1, 2, "H100"),
        GangPolicy(),
        restart_overhead=1,
        processes=TraceFailures(path).processes(),
    )
    assert sim.events[2:] == [(30, 1, "killed"), (30.5, 1, "start"), (101.5, 1, "finish")]


def test_injector_stops_when_the_policy_will_never_start_anything():
    class Idle:
        def schedule(self, view):
            return iter(())

    with time_limit(30):
        sim = Simulation(
            make_trace([(1, 0, 10, 1)]),
            ClusterSpec.homogeneous(2, 1, "H100"),
            Idle(),
            processes=RandomFailures(mtbf_hours=0.01).processes(),
        ).run()
    assert list(job_frame(sim)["status"]) == ["unfinished"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mtbf_hours": 0}, "mtbf_hours must be a finite number > 0, got 0"),
        ({"mtbf_hours": math.nan}, "mtbf_hours"),
        ({"mtbf_hours": "10"}, "mtbf_hours"),
        ({"mtbf_hours": 1, "distribution": "gamma"}, "distribution must be one of"),
        ({"mtbf_hours": 1, "shape": 2.0}, "shape=2.0 needs distribution=weibull"),
        ({"mtbf_hours": 1, "distribution": "weibull", "shape": -1}, "shape"),
        ({"mtbf_hours": 1, "repair": "lognormal", "repair_hours": 0}, "repair_hours"),
        ({"mtbf_hours": 1, "repair_hours": math.inf}, "repair_hours"),
        ({"mtbf_hours": 1, "level": "rack"}, "level must be one of"),
        ({"mtbf_hours": 1, "seed": -1}, "seed"),
    ],
)
def test_bad_model_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RandomFailures(**kwargs)


def test_every_failures_config_builds_a_working_injector(tmp_path):
    path = write(tmp_path, "node,down_time,up_time\n0,1,2\n")
    configs = sorted((ROOT / "configs" / "failures").glob("*.yaml"))
    assert {p.stem for p in configs} >= {"none", "exponential", "weibull", "gpu", "trace"}
    trace, cluster = random_trace(50, seed=3), ClusterSpec.homogeneous(2, 8, "H100")
    for cfg_path in configs:
        cfg = OmegaConf.load(cfg_path)
        if "path" in cfg.keys():
            cfg.path = str(path)
        if "mtbf_hours" in cfg.keys():
            cfg.mtbf_hours = 0.5
        injector = instantiate(cfg, _convert_="all")
        sim = simulate(
            trace, cluster, GangPolicy(), max_retries=3, processes=extensions.processes([injector])
        )
        out: dict = {}
        extensions.collect_outputs([injector], sim, job_frame(sim), out, {})
        assert cfg_path.stem == "none" or out["failures"] > 0, cfg_path.stem


# ---------------------------------------------------------------------------------- file errors
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("node,down_time\n0,1\n", r"missing column\(s\) \['up_time'\]"),
        ("node,down_time,up_time\n", "no failures in the file"),
        ("", "file is empty"),
        ("node,down_time,up_time\n0,abc,5\n", "row 1 \\(line 2\\), column down_time: cannot parse"),
        (
            "node,down_time,up_time\n0,1,5\n0,-1,5\n",
            "row 2 \\(line 3\\), column down_time: expected a time >= 0",
        ),
        ("node,down_time,up_time\n0,,5\n", "row 1 \\(line 2\\), column down_time: missing"),
        ("node,down_time,up_time\n0,5,5\n", "column up_time: expected a repair time later"),
        ("node,down_time,up_time\n0,5,inf\n", "column up_time: expected a finite number"),
        ("node,down_time,up_time\n,5,6\n", "row 1 \\(line 2\\), column node: missing node"),
        ("node,down_time,up_time\n0,1,2,3\n", "line 2: expected 3 fields"),
    ],
)
def test_bad_failure_trace_files_name_file_row_and_column(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TraceError, match=message) as err:
        TraceFailures(path)
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "node,down_time,up_time\nnode-7,1,2\n",
            r"row 1 \(line 2\), column node: unknown node 'node-7' \(not a node name of the "
            r"cluster, nor an index 0..1\)",
        ),
        ("node,down_time,up_time\n2,1,2\n", "unknown node '2'"),
        ("node,down_time,up_time\n-1,1,2\n", "unknown node '-1'"),
        (
            "node,down_time,up_time\nnode-1,1,10\n1,5,20\n",
            r"row 2 \(line 3\), column down_time: node 1 fails again at 5 s while down since row 1",
        ),
        ("node,down_time,up_time\n0,1,\n0,100,200\n", "node 0 fails again at 100 s"),
    ],
)
def test_failure_trace_nodes_are_checked_against_the_cluster(tmp_path, text, message):
    injector = TraceFailures(write(tmp_path, text))
    cluster = ClusterSpec.homogeneous(2, 1, "H100")
    with pytest.raises(TraceError, match=message):
        injector.prepare(make_trace([(1, 0, 1, 1)]), cluster)
    with pytest.raises(TraceError, match=message):  # the run checks them too
        Simulation(
            make_trace([(1, 0, 1, 1)]), cluster, FifoPolicy(), processes=injector.processes()
        ).run()


def test_failure_trace_accepts_names_indices_and_touching_intervals(tmp_path):
    path = write(tmp_path, "node,down_time,up_time\n1,10,20\nnode-1,20,30\n  0 ,5,6\n")
    injector = TraceFailures(path)
    cluster = ClusterSpec.homogeneous(2, 1, "H100")
    assert list(injector.nodes(cluster)) == [1, 1, 0]
    assert list(injector.schedule(cluster, 0)) == [
        (5.0, 0, True),
        (6.0, 0, False),
        (10.0, 1, True),
        (20.0, 1, False),
        (20.0, 1, True),
        (30.0, 1, False),
    ]


def test_failure_trace_needs_a_path():
    with pytest.raises(ValueError, match="failures.path="):
        TraceFailures("???")
    with pytest.raises(TraceError, match="file not found"):
        TraceFailures("/nonexistent/failures.csv")


# ---------------------------------------------------------------------------------- engine defect
def test_kill_during_restart_overhead_keeps_the_last_checkpoint():
    # Checkpoint every 10 s, overhead 5 s. Killed at 25: keeps 20, restarts at 25 owing 5 s of
    # overhead. Killed again at 27, still in its overhead: the checkpoint at 20 is intact, so it
    # restarts at 27 owing the 5 s overhead again + 80 s of work: ends at 112 (the engine: 122).
    def twice(sim):
        yield sim.env.timeout(25)
        sim.fail_node(0)
        sim.repair_node(0)
        yield sim.env.timeout(2)
        sim.fail_node(0)
        sim.repair_node(0)

    sim = simulate(
        make_trace([(1, 0, 100, 1)]),
        ClusterSpec.homogeneous(1, 1, "H100"),
        FifoPolicy(),
        checkpoint_interval=10,
        restart_overhead=5,
        processes=(twice,),
    )
    assert sim.events[-1] == (112, 1, "finish")
    assert sim.lost_seconds[0] == pytest.approx((5 + 5) + (2 + 5))


# ---------------------------------------------------------------------------------- command line
def test_failures_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "simulator",
        "+policy=gang",
        "failures=exponential",
        "failures.mtbf_hours=50",
        "trace.max_jobs=300",
        "sim.checkpoint_interval=600",
        "sim.restart_overhead=60",
        "sim.max_retries=5",
        f"hydra.run.dir={out}",
        "sim.progress=false",
        "print_summary=false",
    ]
    res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    run = load_run(out)
    failures = run.table("failures")
    s = run.summary
    assert s["failures"] == s["node_failures"] == (failures["event"] == "down").sum() > 0
    assert s["jobs_killed"] == failures["jobs_killed"].sum() == run.jobs["restarts"].sum()
    assert s["lost_gpu_hours"] == pytest.approx(s["lost_gpu_seconds"] / 3600)
    assert s["failure_model"] == "exponential(MTBF 50 h per node), repair fixed(2 h)"
    assert list(failures.columns) == [
        "time",
        "node",
        "node_name",
        "event",
        "jobs_killed",
        "lost_gpu_seconds",
    ]
