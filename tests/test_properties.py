"""Property-based tests: every policy config, on random small traces, clusters and failures.

For each ``configs/policy/*.yaml`` (discovered when the tests are collected, so a new policy is
covered as soon as its YAML exists), hypothesis draws small heterogeneous clusters, traces with
ties, GPU shares, GPU-model, CPU and memory constraints, queues and priorities, checkpointing,
restart and migration overheads; a second test adds random node failures with a retry limit.
Every run checks the engine's invariants after every event (``check_invariants=True``: no GPU,
milli-GPU, CPU or memory over-allocated, gangs whole, books balanced) and then that:

* every job ends in exactly one terminal state, with exactly one terminal event in the log and
  none after it (no run leaves a job ``unfinished``: there is no horizon);
* start >= submit, end >= start, and the cluster is empty at the end;
* the run is deterministic: a second run with fresh policy and injector objects gives the same
  event log, placements and per-job results.

Examples are few and small (derandomized, so the tests are reproducible) to keep the file
under a minute; a run that takes more than 20 s fails as a hang.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import check_outcome
from hydra.utils import instantiate
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.core.jobs import STATUS_NAMES, Status
from simulator.limits import time_limit
from simulator.models.failures import RandomFailures
from simulator.output.metrics import job_frame

ROOT = Path(__file__).resolve().parents[1]
POLICY_CONFIGS = sorted((ROOT / "configs" / "policy").glob("*.yaml"))
TERMINAL_EVENTS = {"finish", "failed", "unschedulable", "reject"}
STOP_EVENTS = {"finish", "failed", "killed", "preempt", "migrate"}
"""Events that end a job's current allocation (a migration starts a new one at once)."""
MODELS = ("V100", "A100-80GB")
GPU_TYPES = ("", "", "", "V100", "A100-80GB", "V100|A100-80GB", "H100")


def test_policy_configs_are_discovered():
    names = {p.stem for p in POLICY_CONFIGS}
    assert {"fifo", "gang"} <= names, names


@st.composite
def clusters(draw) -> ClusterSpec:
    groups = [
        {
            "count": draw(st.integers(1, 3)),
            "num_gpus": draw(st.integers(0 if k else 1, 4)),
            "gpu_type": MODELS[k],
            "num_cpus": draw(st.sampled_from([0.0, 8.0, 32.0])),
            "memory_gb": draw(st.sampled_from([0.0, 64.0])),
        }
        for k in range(draw(st.integers(1, 2)))
    ]
    for g in groups:
        if g["num_gpus"] == 0:
            g["gpu_type"] = ""
    return ClusterSpec.from_groups(groups, nodes_per_rack=draw(st.integers(1, 3)))


@st.composite
def traces(draw, max_gpus: int) -> pd.DataFrame:
    rows = []
    for k in range(draw(st.integers(1, 10))):
        gpus = draw(st.integers(0, max_gpus + 1))
        milli = draw(st.sampled_from([250, 500, 1000])) if gpus == 1 else 1000 if gpus else 0
        rows.append(
            {
                "job_id": k,
                "submit_time": float(draw(st.integers(0, 40))),
                "duration": draw(st.sampled_from([1.0, 2.5, 10.0, 30.0, 60.0])),
                "num_gpus": gpus,
                "gpu_milli": milli,
                "gpu_type": draw(st.sampled_from(GPU_TYPES)),
                "num_cpus": float(draw(st.sampled_from([0, 0, 2, 16]))),
                "memory_gb": float(draw(st.sampled_from([0, 0, 8, 48]))),
                "queue": draw(st.sampled_from(["a", "b"])),
                "priority": draw(st.integers(0, 2)),
            }
        )
    return pd.DataFrame(rows)


@st.composite
def scenarios(draw, failures: bool) -> dict:
    cluster = draw(clusters())
    return {
        "cluster": cluster,
        "trace": draw(traces(max_gpus=cluster.total_gpus)),
        "seed": draw(st.integers(0, 3)),
        "checkpoint_interval": draw(st.sampled_from([0.0, 5.0, 20.0])),
        "restart_overhead": draw(st.sampled_from([0.0, 1.0, 3.0])),
        "migration_overhead": draw(st.sampled_from([0.0, 2.0])),
        # failures every ~20 s to ~6 min per node; a retry limit so that no job can be killed
        # for ever (with overheads longer than the time between failures it would never end)
        "failures": (
            {
                "mtbf_hours": draw(st.sampled_from([0.005, 0.02, 0.1])),
                "repair": draw(st.sampled_from(["fixed", "exponential"])),
                "repair_hours": draw(st.sampled_from([0.001, 0.005])),
                "seed": draw(st.integers(0, 5)),
            }
            if failures
            else None
        ),
        "max_retries": draw(st.integers(0, 3)) if failures else None,
    }


def run(policy_path: Path, s: dict) -> tuple[Simulation, list[tuple[float, float, int]]]:
    """The run, and the down intervals ``(from, to, node)`` of its nodes."""
    policy = instantiate(OmegaConf.load(policy_path), _convert_="all")
    injector = RandomFailures(**s["failures"]) if s["failures"] else None
    with time_limit(20):
        sim = Simulation(
            s["trace"],
            s["cluster"],
            policy,
            seed=s["seed"],
            record_events=True,
            check_invariants=True,
            checkpoint_interval=s["checkpoint_interval"],
            restart_overhead=s["restart_overhead"],
            migration_overhead=s["migration_overhead"],
            max_retries=s["max_retries"],
            processes=injector.processes() if injector else (),
        ).run()
    down: list[tuple[float, float, int]] = []
    if injector is not None:
        log = injector.log(sim)
        since: dict[int, float] = {}
        for t, node, event in zip(log.time, log.node, log.event, strict=True):
            if event == "down":
                since[node] = t
            else:
                down.append((since.pop(node), t, node))
        down += [(t, math.inf, node) for node, t in since.items()]
    return sim, down


def allocations(sim: Simulation) -> list[tuple[float, float, int, object]]:
    """Every ``(start, end, job, placement)`` held, rebuilt from the event and placement logs."""
    index = {job_id: j for j, job_id in enumerate(sim.jobs.job_ids.tolist())}
    starts: dict[int, list] = {}
    for t, j, p in sim.placement_log:
        starts.setdefault(j, []).append((t, p))
    out, held = [], {}
    cursor = dict.fromkeys(starts, 0)
    for t, job, event in sim.events:
        j = index[job]
        if event in STOP_EVENTS:
            start, p = held.pop(j)
            out.append((start, t, j, p))
        if event in ("start", "migrate"):
            held[j] = starts[j][cursor[j]]
            cursor[j] += 1
            assert held[j][0] == t
    assert not held and all(cursor[j] == len(s) for j, s in starts.items())
    return out


def check_allocations(sim: Simulation, down: list[tuple[float, float, int]]) -> None:
    """Replay the logs: no resource over-allocated at any instant, no job on a node that is down.

    Independent of the engine's own ``verify``: usage is summed from the placements in the logs
    over half-open intervals ``[start, end)`` (a release at t happens before a start at t).
    """
    spec, jobs = sim.spec, sim.jobs
    held = allocations(sim)
    g = max(spec.max_gpus_per_node, 1)
    for t in sorted({a[0] for a in held}):
        milli = np.zeros(spec.num_nodes * g, dtype=np.int64)
        cpus, mem = np.zeros(spec.num_nodes), np.zeros(spec.num_nodes)
        for start, end, j, p in held:
            if start <= t < end:
                assert len(p.gpus) == jobs.num_gpus[j] and len(set(p.gpus.tolist())) == len(p.gpus)
                np.add.at(milli, p.gpus, p.milli)
                np.add.at(cpus, p.nodes, p.cpus)
                np.add.at(mem, p.nodes, p.mem)
        assert (milli <= 1000).all(), f"t={t}: a GPU holds {milli.max()} milli-GPU"
        slots = np.arange(g)[None, :] < spec.gpus[:, None]
        assert milli[~slots.reshape(-1)].sum() == 0, f"t={t}: a GPU slot that does not exist"
        assert (cpus <= spec.cpus + 1e-6).all() and (mem <= spec.memory_gb + 1e-6).all()
    for start, end, j, p in held:
        for lo, hi, node in down:
            assert not (node in p.nodes and start < hi and lo < end), (j, node, start, end)


def check_terminal_events(sim: Simulation) -> None:
    jobs = sim.jobs
    status = {jobs.job_ids[j]: STATUS_NAMES[int(jobs.status[j])] for j in range(jobs.n)}
    assert Status.UNFINISHED not in jobs.status, status
    ended: dict = {}
    for _, job, event in sim.events:
        assert job not in ended, f"job {job}: {event!r} after its terminal {ended.get(job)!r}"
        if event in TERMINAL_EVENTS:
            ended[job] = event
    expected = {
        "finished": "finish",
        "failed": "failed",
        "unschedulable": "unschedulable",
        "rejected": "reject",
    }
    assert ended == {job: expected[s] for job, s in status.items()}


def placements(sim: Simulation) -> list:
    return [(t, j, p.nodes.tolist(), p.gpus.tolist(), p.milli) for t, j, p in sim.placement_log]


def check_policy(policy_path: Path, failures: bool, shrink: bool = True) -> None:
    """Run the property check on ``max_examples`` scenarios (no shrinking for known defects)."""
    phases = list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate]

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(s=scenarios(failures=failures))
    def holds(s: dict) -> None:
        first, down = run(policy_path, s)
        check_outcome(first)
        check_terminal_events(first)
        check_allocations(first, down)
        second, _ = run(policy_path, s)
        assert second.events == first.events
        assert placements(second) == placements(first)
        pd.testing.assert_frame_equal(job_frame(second), job_frame(first))
        np.testing.assert_array_equal(second.lost_seconds, first.lost_seconds)

    holds()


@pytest.mark.parametrize("policy_path", POLICY_CONFIGS, ids=[p.stem for p in POLICY_CONFIGS])
def test_policy_keeps_invariants_terminates_and_is_deterministic(policy_path):
    check_policy(policy_path, failures=False)


FAILURE_DEFECTS: dict[str, str] = {}
"""Policy name -> reason, for policies that break the properties once nodes fail (xfail strict).

Empty now. This test found two such defects while it was written, both fixed since by the policy
owners: backfill started a job on a node that was down (its what-if state ignored the node's
state), and fair, priority, sjf, srtf and tiresias never restarted a job killed by a failure
(their keyed queues only admitted new arrivals); see docs/KNOWN_ISSUES.md.
"""


WITH_FAILURE_DEFECTS = [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=FAILURE_DEFECTS[p.stem]))
    if p.stem in FAILURE_DEFECTS
    else p
    for p in POLICY_CONFIGS
]


@pytest.mark.parametrize("policy_path", WITH_FAILURE_DEFECTS, ids=[p.stem for p in POLICY_CONFIGS])
def test_policy_keeps_invariants_under_node_failures(policy_path):
    check_policy(policy_path, failures=True, shrink=policy_path.stem not in FAILURE_DEFECTS)


@pytest.mark.parametrize("policy_path", WITH_FAILURE_DEFECTS, ids=[p.stem for p in POLICY_CONFIGS])
def test_killed_job_restarts_when_its_node_is_repaired(policy_path):
    # the smallest case behind the defects above: one 1-GPU node, one 30 s job, the node is
    # down from 5 to 6 s; the job (no checkpoint interval: it keeps its 5 s) ends at 31 s
    def outage(sim):
        yield sim.env.timeout(5)
        sim.fail_node(0)
        yield sim.env.timeout(1)
        sim.repair_node(0)

    trace = pd.DataFrame({"job_id": [0], "submit_time": [0.0], "duration": [30.0], "num_gpus": [1]})
    policy = instantiate(OmegaConf.load(policy_path), _convert_="all")
    with time_limit(20):
        sim = Simulation(
            trace,
            ClusterSpec.homogeneous(1, 1, "V100"),
            policy,
            record_events=True,
            check_invariants=True,
            processes=(outage,),
        ).run()
    assert sim.events[2:] == [(5, 0, "killed"), (6, 0, "start"), (31, 0, "finish")]
