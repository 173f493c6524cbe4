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
from simulator.core.decisions import Decision, Migrate, Start
from simulator.core.engine import PolicyError, Simulation
from simulator.core.jobs import STATUS_NAMES, Status
from simulator.limits import time_limit
from simulator.models.failures import RandomFailures
from simulator.models.serving import Autoscaler, RequestStream, Service, TableStepTime
from simulator.output.metrics import job_frame

ROOT = Path(__file__).resolve().parents[1]
POLICY_CONFIGS = sorted((ROOT / "configs" / "policy").glob("*.yaml"))
TEST_ARGS = {
    "kai": {"config": str(ROOT / "tests" / "data" / "kai_properties.yaml"), "default_queue": "a"},
}
"""Arguments some policies need for the random scenarios (kai: Queue objects for their queues)."""
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
        # a run cut at a horizon may leave jobs unfinished; no other run may (issue 18 item 4)
        "until": draw(st.sampled_from([None, None, None, 25.0])),
        # the Python reference of a compiled pass is held to the same properties
        "reference_passes": draw(st.booleans()) if failures else False,
    }


def load_policy(policy_path: Path) -> object:
    """The policy of a ``configs/policy`` YAML, with the :data:`TEST_ARGS` it needs here."""
    cfg = OmegaConf.merge(OmegaConf.load(policy_path), TEST_ARGS.get(policy_path.stem, {}))
    return instantiate(cfg, _convert_="all")


def run(
    policy_path: Path, s: dict, wrap=None, processes: tuple = ()
) -> tuple[Simulation, list[tuple[float, float, int]]]:
    """The run, and the down intervals ``(from, to, node)`` of its nodes.

    ``wrap(policy)``: the policy the run uses instead (a rogue wrapper); ``processes``: more
    SimPy processes (a serving controller).
    """
    policy = load_policy(policy_path)
    if wrap is not None:
        policy = wrap(policy)
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
            until=s.get("until"),
            reference_passes=s.get("reference_passes", False),
            processes=(*processes, *(injector.processes() if injector else ())),
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
        if event in STOP_EVENTS and (event != "finish" or j in held):  # (a withdrawn replica)
            start, p = held.pop(j)
            out.append((start, t, j, p))
        if event in ("start", "migrate"):
            held[j] = starts[j][cursor[j]]
            cursor[j] += 1
            assert held[j][0] == t
    if sim.until is not None:  # cut at the horizon: what still runs holds it to the end
        out += [(start, math.inf, j, p) for j, (start, p) in held.items()]
        held = {}
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
    """One terminal event per job, nothing after it; ``unfinished`` only in a run that was cut.

    A job may end ``unfinished`` only when the run stopped at ``sim.until`` (it was then queued
    or running, or not yet submitted); otherwise every job finished, failed for good (more than
    ``max_retries`` kills), was rejected, or could never fit (issue 18 item 4: jobs preempted,
    restarted and killed by a failure were left queued on an idle cluster). A dormant row
    (a spare inference replica) is never submitted and has no events.
    """
    jobs = sim.jobs
    status = {jobs.job_ids[j]: STATUS_NAMES[int(jobs.status[j])] for j in range(jobs.n)}
    cut = sim.until is not None and sim.now >= sim.until
    if not cut:
        assert Status.UNFINISHED not in jobs.status, status
    ended: dict = {}
    for t, job, event in sim.events:
        assert job not in ended, f"job {job}: {event!r} after its terminal {ended.get(job)!r}"
        assert sim.until is None or t <= sim.until, (t, job, event)
        if event in TERMINAL_EVENTS:
            ended[job] = event
    expected = {
        "finished": "finish",
        "failed": "failed",
        "unschedulable": "unschedulable",
        "rejected": "reject",
    }
    assert ended == {job: expected[s] for job, s in status.items() if s in expected}


def check_placements(sim: Simulation) -> None:
    """Every placement the engine accepted gives the job exactly what it asked for.

    One CPU and one memory entry per node, none negative, adding up to the job's request; the
    job's GPU count at its milli-GPU, on distinct GPUs of exactly the listed (distinct) nodes
    (issue 18 items 2 and 3: an edited placement or one with 0 or -1000 CPUs was accepted).
    """
    jobs = sim.jobs
    g = max(sim.spec.max_gpus_per_node, 1)
    for t, j, p in sim.placement_log:
        k, n = len(p.nodes), int(jobs.num_gpus[j])
        nodes = p.nodes.tolist()
        assert k >= 1 and len(set(nodes)) == k and len(p.cpus) == k and len(p.mem) == k, (t, j)
        assert len(p.gpus) == n and len(set(p.gpus.tolist())) == n, (t, j, p)
        if n:
            assert p.milli == jobs.milli[j] and set((p.gpus // g).tolist()) == set(nodes), (t, j)
        assert (p.cpus >= 0).all() and (p.mem >= 0).all(), (t, j, p)
        assert abs(p.cpus.sum() - jobs.cpus[j]) <= 1e-6 * max(1.0, jobs.cpus[j]), (t, j, p)
        assert abs(p.mem.sum() - jobs.mem[j]) <= 1e-6 * max(1.0, jobs.mem[j]), (t, j, p)


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
        check_placements(first)
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


OWN_QUEUE_OBJECTS = {
    "kueue": "admits only workloads of its LocalQueues; tests/test_kueue_policy.py has this case",
}
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
    if policy_path.stem in OWN_QUEUE_OBJECTS:
        pytest.skip(OWN_QUEUE_OBJECTS[policy_path.stem])
    policy = load_policy(policy_path)
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


# ---------------------------------------------------------------- rogue decisions (issue 18)
def _mutate(view, d: Start, how: str) -> Decision:
    """An always-invalid edit of the policy's decision ``d`` (a start the engine must refuse)."""
    j, p = int(d.job), d.placement
    jobs, c = view.jobs, view.cluster
    if how == "index_from_end":
        return Start(j - jobs.n, p)
    if how == "cpus_negative":
        return Start(j, p._replace(cpus=p.cpus - 1000.0))
    if how == "cpus_empty":
        return Start(j, p._replace(cpus=np.zeros(0)))
    if how == "cpus_off":
        return Start(j, p._replace(cpus=p.cpus + np.eye(len(p.cpus))[0]))
    if how == "mem_nan":
        return Start(j, p._replace(mem=np.where(np.arange(len(p.mem)) == 0, np.nan, p.mem)))
    if how == "gpus_short":
        return Start(j, p._replace(gpus=p.gpus[:-1] if len(p.gpus) else np.zeros(1, np.int64)))
    if how == "forge_busy":  # a GPU another job holds (the placer's placement, edited)
        free = np.asarray(c.gpu_free).reshape(-1)
        busy = np.flatnonzero(free < max(int(jobs.milli[j]), 1))
        gpus = p.gpus.copy() if len(p.gpus) else np.zeros(1, np.int64)
        gpus[0] = busy[0] if len(busy) else len(free)  # else: a GPU that does not exist
        return Start(j, p._replace(gpus=gpus))
    if how == "migrate_in_place":  # a running job "moved" onto its own GPUs, reversed
        running = [r for r in view.running if view.jobs.placements[r] is not None]
        if running:
            q = view.jobs.placements[running[0]]
            return Migrate(running[0], q._replace(gpus=q.gpus[::-1].copy()))
        return Start(j - jobs.n, p)
    raise AssertionError(how)


MUTATIONS = (
    "index_from_end",
    "cpus_negative",
    "cpus_empty",
    "cpus_off",
    "mem_nan",
    "gpus_short",
    "forge_busy",
    "migrate_in_place",
)


class Rogue:
    """Runs ``inner``'s Python pass; from pass ``at`` on, edits its first start by ``how``."""

    def __init__(self, inner, at: int, how: str) -> None:
        self.inner, self.at, self.how = inner, at, how
        self.passes = 0
        self.sent: Decision | None = None

    def setup(self, view) -> None:
        self.ids = view.jobs.job_ids.tolist()
        if hasattr(self.inner, "setup"):
            self.inner.setup(view)

    def schedule(self, view):
        self.passes += 1
        for d in self.inner.schedule(view):
            if self.sent is None and self.passes >= self.at and type(d) is Start:
                self.sent = _mutate(view, d, self.how)
                yield self.sent  # the engine raises PolicyError here
                raise AssertionError(f"{self.how}: {self.sent} was accepted")
            yield d


@pytest.mark.parametrize("how", MUTATIONS)
@pytest.mark.parametrize("policy_path", POLICY_CONFIGS, ids=[p.stem for p in POLICY_CONFIGS])
def test_rogue_decisions_are_refused_naming_the_job(policy_path, how):
    # every policy's Python pass (the reference of a compiled one), with and without failures,
    # one decision edited: a negative index, CPUs negative / missing / not adding up, NaN
    # memory, too few GPUs, a GPU another job holds, a migration onto the job's own GPUs
    @settings(
        max_examples=5,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(s=st.booleans().flatmap(scenarios), at=st.integers(1, 4))
    def refused(s: dict, at: int) -> None:
        rogue: list[Rogue] = []

        def wrap(policy):
            rogue.append(Rogue(policy, at, how))
            return rogue[0]

        try:
            sim, _ = run(policy_path, {**s, "reference_passes": True}, wrap=wrap)
        except PolicyError as e:
            sent = rogue[0].sent
            assert sent is not None, e
            j = int(sent[0])
            named = f"job index {j}" if j < 0 else f"job {rogue[0].ids[j]!r}"
            assert named in str(e), (how, str(e))
            return
        assert rogue[0].sent is None  # no start at or after pass `at`: nothing to edit
        check_outcome(sim)
        check_placements(sim)

    refused()


# ---------------------------------------------------------------- serving (issue 18 item 8)
@st.composite
def serving_scenarios(draw, failures: bool) -> tuple[dict, Service]:
    """A small H100 cluster, training jobs (int or string ids) and one autoscaled service."""
    gpn = draw(st.sampled_from([1, 2, 4]))
    cluster = ClusterSpec.homogeneous(
        draw(st.integers(1, 3)), gpn, "H100", cpus_per_node=32.0, nodes_per_rack=2
    )
    s = draw(scenarios(failures))
    trace = s["trace"].assign(gpu_type=s["trace"]["gpu_type"].replace(MODELS, "H100"))
    if draw(st.booleans()):  # string ids: the replica rows are named llm-replica-K
        trace["job_id"] = [f"t{k}" for k in range(len(trace))]
    n = draw(st.integers(1, 6))
    arrivals = sorted(draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)))
    requests = RequestStream(
        [float(t) for t in arrivals],
        draw(st.lists(st.integers(1, 64), min_size=n, max_size=n)),
        draw(st.lists(st.integers(1, 20), min_size=n, max_size=n)),
    )
    scaler = draw(st.sampled_from([None, "slo", "utilization"]))
    service = Service(
        requests=requests,
        step_time=TableStepTime([1], [0.1]),
        tensor_parallel=draw(st.sampled_from([1, gpn])),
        priority=draw(st.sampled_from([0, 100])),
        warm_start=draw(st.booleans()),
        load_delay_s=draw(st.sampled_from([0.0, 2.0])),
        autoscaler=None
        if scaler is None
        else Autoscaler(
            policy=scaler,
            min_replicas=draw(st.integers(0, 1)),
            max_replicas=2,
            interval_s=5.0,
            scale_in_delay_s=5.0,
        ),
    )
    # a horizon: a service whose replicas all failed for good would poll for ever
    s = {**s, "until": draw(st.sampled_from([25.0, 300.0]))}
    return {**s, "cluster": cluster, "trace": service.prepare(trace, cluster)}, service


def check_serving_rows(sim: Simulation) -> None:
    """``jobs.parquet`` has one row per job id, and no row starts before it was submitted."""
    f = job_frame(sim)
    assert f["job_id"].is_unique, f["job_id"][f["job_id"].duplicated()].tolist()
    ran = f["start_time"].notna()
    assert (f.loc[ran, "start_time"] >= f.loc[ran, "submit_time"]).all(), f.loc[ran]
    assert np.isfinite(f.loc[ran, "wait_time"]).all()
    dormant = f["status"] == "dormant"
    assert np.isinf(f.loc[dormant, "submit_time"]).all() and not ran[dormant].any()


@pytest.mark.parametrize("failures", [False, True], ids=["plain", "failures"])
@pytest.mark.parametrize("policy_path", POLICY_CONFIGS, ids=[p.stem for p in POLICY_CONFIGS])
def test_policy_with_serving_keeps_invariants_and_rows_are_consistent(policy_path, failures):
    @settings(
        max_examples=10,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sv=serving_scenarios(failures))
    def holds(sv: tuple[dict, Service]) -> None:
        s, service = sv
        sim, down = run(policy_path, s, processes=tuple(service.processes()))
        check_outcome(sim)
        check_terminal_events(sim)
        check_placements(sim)
        check_allocations(sim, down)
        check_serving_rows(sim)

    holds()


# ---------------------------------------------------------------- lost requeues (issue 18 item 4)
def frequent_failures(seed: int) -> dict:
    """A scenario of the kind that lost jobs: 2-4 nodes failing every 18 s to 6 min each.

    Up to 80 jobs of up to 16 GPUs (fractional shares, GPU models, CPU and memory, priorities,
    durations to 50 min), checkpoints, restart and migration overheads, a retry limit. Plain
    NumPy draws from ``seed``, so the same scenarios can be replayed outside hypothesis.
    """
    r = np.random.default_rng(1000 + seed)
    groups = [
        {
            "count": int(r.integers(1, 3)),
            "num_gpus": int(r.choice([1, 2, 4, 8])),
            "gpu_type": m,
            "num_cpus": float(r.choice([0, 16, 32])),
            "memory_gb": float(r.choice([0, 64, 256])),
        }
        for m in MODELS[: int(r.integers(1, 3))]
    ]
    cluster = ClusterSpec.from_groups(groups, nodes_per_rack=int(r.integers(1, 3)))
    n = int(r.integers(5, 80))
    g = r.choice([0, 1, 1, 1, 2, 4, 8, 16], n)
    milli = np.where(g == 1, r.choice([250, 500, 1000, 1000], n), np.where(g > 0, 1000, 0))
    trace = pd.DataFrame(
        {
            "job_id": np.arange(n),
            "submit_time": np.sort(r.integers(0, 600, n)).astype(float),
            "duration": r.choice([1.0, 5.0, 30.0, 100.0, 600.0, 3000.0], n),
            "num_gpus": g,
            "gpu_milli": milli,
            "gpu_type": r.choice(["", "", *MODELS], n),
            "num_cpus": r.choice([0.0, 2.0, 16.0], n),
            "memory_gb": r.choice([0.0, 8.0, 48.0], n),
            "priority": r.integers(0, 3, n),
            "queue": r.choice(["a", "b"], n),
        }
    )
    failures = {
        "mtbf_hours": float(r.choice([0.005, 0.02, 0.1])),
        "repair_hours": float(r.choice([0.001, 0.005])),
        "repair": str(r.choice(["fixed", "exponential"])),
    }
    return {
        "cluster": cluster,
        "trace": trace,
        "seed": seed,
        "failures": failures,
        "max_retries": int(r.choice([0, 1, 3, 10])),
        "checkpoint_interval": float(r.choice([0.0, 5.0, 20.0])),
        "restart_overhead": float(r.choice([0.0, 1.0, 3.0])),
        "migration_overhead": float(r.choice([0.0, 2.0])),
        "reference_passes": bool(seed % 2),
    }


@pytest.mark.parametrize("policy_path", POLICY_CONFIGS, ids=[p.stem for p in POLICY_CONFIGS])
def test_no_job_is_lost_under_frequent_failures(policy_path):
    # before the fix, srtf lost a job in seeds 4 and 12 and priority in seed 15 of these (15 and
    # 8 of 200): preempted, restarted in the same pass, killed by a failure, never restarted;
    # odd seeds run the Python reference of a compiled pass
    for seed in range(24):
        s = frequent_failures(seed)
        sim, down = run(policy_path, s)
        check_outcome(sim)
        check_terminal_events(sim)
        check_placements(sim)
        check_allocations(sim, down)


class _Queue:
    """Stand-in for the engine's queue: a push log."""

    def __init__(self, log: list[int]) -> None:
        self.log = log

    @property
    def pushes(self) -> int:
        return len(self.log)

    def pushed_since(self, cursor: int) -> list[int]:
        return self.log[cursor:]


def test_keyed_queue_keeps_a_failure_requeue_after_the_policys_own_push():
    # the lost-requeue path: job 0 is preempted by the policy (its push, then kq.push), starts
    # again in the same pass, and is killed by a node failure before the next pass (a second
    # push). The policy's push must cancel only the first entry: the kill's entry requeues it.
    from policies.keyed_queue import KeyedQueue

    class Jobs:
        status = np.array([Status.RUNNING, Status.RUNNING], dtype=np.int8)
        demand_class = np.array([0, 0])

    jobs = Jobs()
    queue = _Queue([0, 1])  # both arrive
    kq = KeyedQueue(jobs)
    jobs.status[:] = Status.QUEUED
    assert kq.sync(queue, key=lambda j: j) == ([0, 1], [])
    jobs.status[:] = Status.RUNNING  # both start
    queue.log.append(0)  # the policy preempts 0 ...
    kq.push(0, key=0)
    jobs.status[0] = Status.RUNNING  # ... which starts again in the same pass
    assert kq.head(0) is None  # the pass walked the heap: both run
    queue.log.append(0)  # a node failure kills it: queued again
    jobs.status[0] = Status.QUEUED
    assert kq.sync(queue, key=lambda j: j) == ([], [0])
    assert kq.head(0) == (0, 0)
