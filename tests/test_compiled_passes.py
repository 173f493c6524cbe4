"""Every compiled pass makes the same decisions as its Python reference (``schedule``).

Each scenario of ``tests/oracle.py`` (random clusters, traces, policy parameters and run
options) runs twice: with the policy's compiled pass, and with ``reference_passes=True`` (its
Python ``schedule``, the naive reference); every column of every table, the summary and the
event and placement logs must be identical. ``test_oracle.py`` then ties both to the SimPy
loop the compiled core replaced. A policy without a compiled pass is listed as such.
"""

from __future__ import annotations

import pytest
from oracle import POLICIES, digests, scenario

from simulator.core.engine import Simulation

SEEDS = range(40)


def _run(policy: str, seed: int, reference: bool) -> tuple[dict, str]:
    s = scenario(policy, seed)
    try:
        sim = Simulation(
            s["trace"], s["cluster"], s["policy"](), reference_passes=reference, **s["kw"]
        ).run()
    except Exception as e:  # noqa: BLE001 - both must fail alike
        return {"error": f"{type(e).__name__}: {e}"}, "error"
    return digests(sim), sim.engine


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_compiled_pass_equals_python_reference(policy, seed):
    compiled, engine = _run(policy, seed, False)
    if engine == "python":
        pytest.skip(f"{policy} has no compiled pass")
    reference, _ = _run(policy, seed, True)
    differ = sorted(
        k for k in set(compiled) | set(reference) if compiled.get(k) != reference.get(k)
    )
    assert not differ, f"{policy}/{seed}: differs in {differ}"


FAILURE_SEEDS = range(12)


def _run_with_failures(policy: str, seed: int, reference: bool) -> tuple[dict, str, int]:
    # node failures kill running jobs and requeue them behind the policy's back: a compiled
    # pass must take those requeues in exactly as its Python reference does
    from simulator.models.failures import RandomFailures

    s = scenario(policy, seed)
    injector = RandomFailures(mtbf_hours=0.05, repair="exponential", repair_hours=0.02, seed=seed)
    sim = Simulation(
        s["trace"],
        s["cluster"],
        s["policy"](),
        reference_passes=reference,
        processes=tuple(injector.processes()),
        **s["kw"],
    ).run()
    return digests(sim), sim.engine, int(sim.jobs.restarts.sum() + sim.jobs.preemptions.sum())


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", FAILURE_SEEDS)
def test_compiled_pass_equals_python_reference_under_node_failures(policy, seed):
    compiled, engine, _ = _run_with_failures(policy, seed, False)
    if engine == "python":
        pytest.skip(f"{policy} has no compiled pass")
    reference, _, _ = _run_with_failures(policy, seed, True)
    differ = sorted(
        k for k in set(compiled) | set(reference) if compiled.get(k) != reference.get(k)
    )
    assert not differ, f"{policy}/{seed}: differs in {differ}"


@pytest.mark.parametrize("policy", ["priority", "srtf"])
def test_the_scenarios_exercise_preemption_and_requeues(policy):
    # the comparisons above are only worth something if these policies really preempt in a
    # good share of the plain scenarios, and failures really requeue jobs in the others
    def preemptions(seed: int) -> int:
        s = scenario(policy, seed)
        sim = Simulation(s["trace"], s["cluster"], s["policy"](), **s["kw"]).run()
        return int(sim.jobs.preemptions.sum())

    assert sum(preemptions(seed) > 0 for seed in SEEDS) >= len(SEEDS) // 4
    moved = sum(_run_with_failures(policy, seed, False)[2] > 0 for seed in FAILURE_SEEDS)
    assert moved >= len(FAILURE_SEEDS) // 2


@pytest.mark.parametrize("policy", ["priority", "srtf", "tiresias"])
def test_compiled_pass_equals_python_reference_on_a_deep_queue(policy):
    # hundreds waiting, preemptions at most instants: the pass's shortcuts (candidates taken
    # off a heap, outcomes known without a scan) meet the cases small scenarios rarely reach,
    # e.g. a class coming back to the pass with a victim at its head
    import numpy as np

    from policies.priority import PriorityPolicy
    from policies.srtf import SrtfPolicy
    from policies.tiresias import TiresiasPolicy
    from simulator.core.cluster import ClusterSpec
    from traces.synthetic import generate

    trace = generate(1500, 128, load=1.5, seed=0)
    rng = np.random.default_rng(1)
    trace = trace.assign(priority=rng.choice([0, 1, 2, 5], size=len(trace)))
    cluster = ClusterSpec.homogeneous(16, 8, "H100")
    make = {"priority": PriorityPolicy, "srtf": SrtfPolicy, "tiresias": TiresiasPolicy}[policy]
    runs = [
        Simulation(trace, cluster, make(), record_events=True, reference_passes=ref).run()
        for ref in (False, True)
    ]
    assert [r.engine for r in runs] == ["compiled", "python"]
    assert int(runs[0].jobs.preemptions.sum()) > 100
    a, b = (digests(r) for r in runs)
    assert a == b


@pytest.mark.parametrize("estimates", ["duration", "walltime"])
def test_backfill_pass_equals_python_reference_on_a_deep_queue(estimates):
    # hundreds waiting behind a reservation, most passes backfill around it: the compiled
    # EASY pass (no profile, a reservation computed only when a later job fits) must make the
    # profile's decisions, with exact and with wrong (0.5x-3x) run-time estimates
    import numpy as np

    from policies.backfill import BackfillPolicy
    from simulator.core.cluster import ClusterSpec
    from traces.synthetic import generate

    trace = generate(1500, 128, load=1.5, seed=0)
    rng = np.random.default_rng(2)
    trace = trace.assign(walltime=trace["duration"] * rng.uniform(0.5, 3.0, len(trace)))
    cluster = ClusterSpec.homogeneous(16, 8, "H100")
    column = None if estimates == "duration" else estimates
    runs = [
        Simulation(
            trace, cluster, BackfillPolicy(column), record_events=True, reference_passes=ref
        ).run()
        for ref in (False, True)
    ]
    assert [r.engine for r in runs] == ["compiled", "python"]
    waited = runs[0].jobs.start - runs[0].jobs.submit
    assert (waited > 0).mean() > 0.5  # a deep queue indeed
    a, b = (digests(r) for r in runs)
    assert a == b


def _sneaky(sim):
    """A SimPy process that preempts and starts jobs behind the policy's back."""
    from simulator.core.placement import Placer

    placer = Placer(sim.view.cluster)
    while True:
        yield sim.env.timeout(977.0)
        running, queued = list(sim.view.running), sim.view.queue.jobs()
        if not running and not queued and sim.now > 0:
            return
        if running and queued:
            sim.preempt(running[-1])  # make room, then start the oldest waiting job
            p = placer.place(sim.view.jobs, queued[0])
            if p is not None:
                sim.start(queued[0], p)


def _runs_behind_the_back(trace, cluster, make_policy):
    """Compiled and reference runs with :func:`_sneaky`; also the compiled pass's state."""
    runs, states = [], []
    for ref in (False, True):
        policy = make_policy()
        if not ref:
            make = policy.compiled_pass
            policy.compiled_pass = lambda view, make=make: states.append(make(view)) or states[0]
        sim = Simulation(
            trace, cluster, policy, record_events=True, reference_passes=ref, processes=(_sneaky,)
        )
        runs.append(sim.run())
    return runs, states


_FAIR_TREE = [
    {
        "name": "prod",
        "deserved": 64,
        "over_quota_weight": 2,
        "children": [{"name": "a", "deserved": 40}, {"name": "b", "deserved": 10, "limit": 80}],
    },
    {"name": "research", "deserved": 32, "children": [{"name": "c"}, {"name": "d"}]},
]


def _fair_trace(n: int, seed: int):
    import numpy as np

    from traces.synthetic import generate

    trace = generate(n, 128, load=1.5, seed=seed)
    rng = np.random.default_rng(seed + 1)
    queues = rng.choice(["a", "b", "c", "d"], size=len(trace), p=[0.4, 0.3, 0.2, 0.1])
    return trace.assign(queue=queues, cpus=rng.choice([2.0, 8.0, 24.0], size=len(trace)))


@pytest.mark.parametrize("half_life", [None, 3600.0])
def test_fair_pass_equals_python_reference_on_a_deep_queue(half_life):
    # a two-level tree with quotas, a limit and reclaim over a deep queue, DRF sizes from CPU
    # demands: the compiled shares (NumPy's sums), heads and usage kept from the stop log
    # must make the reference's every decision
    from policies.fair import FairPolicy
    from simulator.core.cluster import ClusterSpec

    trace = _fair_trace(1500, 0)
    cluster = ClusterSpec.homogeneous(16, 8, "H100", cpus_per_node=96)
    runs = [
        Simulation(
            trace,
            cluster,
            FairPolicy(_FAIR_TREE, usage_decay_half_life=half_life),
            record_events=True,
            reference_passes=ref,
        ).run()
        for ref in (False, True)
    ]
    assert [r.engine for r in runs] == ["compiled", "python"]
    assert int(runs[0].jobs.preemptions.sum()) > 50  # reclaims happen
    assert digests(runs[0]) == digests(runs[1])


def test_fair_pass_counts_usage_afresh_when_others_start_jobs():
    # a SimPy process starts and preempts jobs behind the policy's back: the usage the
    # compiled pass keeps from its own starts and the stop log must be recounted
    from policies.fair import FairPolicy
    from simulator.core.cluster import ClusterSpec

    trace = _fair_trace(600, 4)
    cluster = ClusterSpec.homogeneous(8, 8, "H100", cpus_per_node=96)

    runs, states = _runs_behind_the_back(trace, cluster, lambda: FairPolicy(_FAIR_TREE))
    assert [r.engine for r in runs] == ["compiled", "python"]
    assert states[0].ucount[3] > 1  # recounts happened (the first pass counts afresh)
    assert digests(runs[0]) == digests(runs[1])


_MIX = [0.35, 0.2, 0.1, 0.15, 0.15, 0.05]


@pytest.mark.parametrize("max_migrations", [4, 2])
def test_consolidate_pass_equals_python_reference_with_many_migrations(max_migrations):
    # small jobs fragment 16 nodes, gangs wait: most consolidation times move jobs, and the
    # compiled pass (what-if states restored node by node, hopeless targets skipped) must
    # choose the reference's plans
    import numpy as np
    import pandas as pd

    from policies.consolidate import ConsolidatePolicy
    from simulator.core.cluster import ClusterSpec

    n = 600
    rng = np.random.default_rng(3)
    trace = pd.DataFrame(
        {
            "job_id": np.arange(n),
            "submit_time": np.sort(rng.uniform(0, n * 40.0, n)),
            "duration": rng.exponential(1500, n) + 10,
            "num_gpus": rng.choice([1, 2, 3, 4, 8, 16], size=n, p=_MIX),
        }
    )
    cluster = ClusterSpec.homogeneous(16, 8, "H100")
    runs = [
        Simulation(
            trace,
            cluster,
            ConsolidatePolicy(interval=60.0, max_migrations=max_migrations),
            record_events=True,
            reference_passes=ref,
        ).run()
        for ref in (False, True)
    ]
    assert [r.engine for r in runs] == ["compiled", "python"]
    assert int(runs[0].jobs.migrations.sum()) > 20
    assert digests(runs[0]) == digests(runs[1])


@pytest.mark.parametrize("tie_break", ["random", "ranking"])
@pytest.mark.parametrize("seed", range(12))
def test_fgd_pass_draws_the_reference_random_numbers(seed, tie_break):
    # random tie-break keys per placement, the run's node ranking (drawn once in setup) and
    # the random score's slot draw come from the run's generator: the compiled pass must draw
    # the same numbers in the same order and break ties alike
    import numpy as np

    from policies.fgd import FgdPolicy

    s = scenario("fgd", seed)
    kind = ["fgd", "random", "dotprod", "gpu_packing", "gpu_clustering", "bestfit"][seed % 6]
    on_no_fit = "reject" if seed % 4 == 3 else "wait"
    runs = [
        Simulation(
            s["trace"],
            s["cluster"],
            FgdPolicy(kind, on_no_fit, tie_break=tie_break),
            reference_passes=ref,
            **s["kw"],
        ).run()
        for ref in (False, True)
    ]
    assert [r.engine for r in runs] == ["compiled", "python"]
    if s["kw"].get("until") is None:  # the run is not cut before anything starts
        assert np.isfinite(runs[0].jobs.start).any()
    assert digests(runs[0]) == digests(runs[1])


def test_tiresias_follows_starts_it_did_not_make():
    # a SimPy process starts queued jobs behind the policy's back: the compiled Tiresias
    # pass must notice (its heap of running jobs is rebuilt) and still equal the reference
    from policies.tiresias import TiresiasPolicy
    from simulator.core.cluster import ClusterSpec
    from traces.synthetic import generate

    trace = generate(600, 64, load=1.4, seed=3)
    cluster = ClusterSpec.homogeneous(8, 8, "H100")

    runs, states = _runs_behind_the_back(
        trace, cluster, lambda: TiresiasPolicy(thresholds=[200.0, 2000.0], promote_knob=2.0)
    )
    assert [r.engine for r in runs] == ["compiled", "python"]
    assert states[0].dcount[3] > 0  # rebuilds happened
    assert digests(runs[0]) == digests(runs[1])
