"""Decisions of a rogue policy are refused with a message naming the job and the reason (issue 18).

Items 2, 3 and 7: a placement the placer made and the policy then edited (``_replace``) is
validated like any other; CPU and memory are checked against the job's request (totals within
a tolerance, none negative or NaN, one entry per node); a negative job index is not a Python
index from the end; a migration onto the job's own nodes and GPUs (in any order) is refused; a
pass loop that makes no progress in simulated time stops with an error naming the policy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_trace

from policies.base import Migrate, Preempt, Start
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import PolicyError, Simulation
from simulator.core.placement import Placement

CLUSTER = ClusterSpec.homogeneous(2, 8, "V100", cpus_per_node=32, memory_gb_per_node=64)


class Editing:
    """Starts every queued job on the placer's placement, edited by ``edit(view, j, p)``."""

    def __init__(self, edit) -> None:
        self.edit = edit

    def setup(self, view) -> None:
        self.placer = view.placer()

    def schedule(self, view):
        for j in list(view.queue.jobs()):
            p = self.placer.place(view.jobs, j)
            if p is not None:
                yield Start(*self.edit(view, j, p))


def run(policy, trace: pd.DataFrame, cluster: ClusterSpec = CLUSTER, **kw) -> Simulation:
    return Simulation(trace, cluster, policy, check_invariants=True, record_events=True, **kw).run()


def gangs(n: int, gpus: int = 8, cpus: float = 0.0) -> pd.DataFrame:
    return make_trace([(k, 0.0, 10.0, gpus) for k in range(n)], num_cpus=cpus)


# ---------------------------------------------------------------- item 2: forged placements
def test_placer_placement_edited_onto_busy_gpus_is_refused():
    # the issue's exploit: every 8-GPU job "placed" on node 0's GPUs by editing a placement the
    # placer made; the first fits, the second would double-book node 0
    def onto_node_0(view, j, p):
        return j, p._replace(nodes=np.array([0]), gpus=np.arange(8))

    with pytest.raises(PolicyError, match=r"job 1 gives a placement that uses a GPU without room"):
        run(Editing(onto_node_0), gangs(4))


def test_placer_placement_edited_for_a_migration_is_refused():
    # job 0 runs on node 0 (first fit), job 1 on node 1; moving job 0 onto job 1's GPUs with
    # job 1's own placement object must be refused like any other placement
    class Steal:
        def setup(self, view):
            self.placer = view.placer(scoring="firstfit")

        def schedule(self, view):
            for j in list(view.queue.jobs()):
                yield Start(j, self.placer.place(view.jobs, j))
            view.wake_at(1.0)
            if view.now == 1.0:
                yield Migrate(0, view.jobs.placements[1])

    with pytest.raises(PolicyError, match="job 0 gives a placement that uses a GPU without room"):
        run(Steal(), gangs(2))


def test_placement_with_gpus_of_the_wrong_count_or_share_is_refused():
    def fewer(view, j, p):
        return j, p._replace(gpus=p.gpus[:4])

    def shared(view, j, p):
        return j, p._replace(milli=500)

    with pytest.raises(PolicyError, match=r"job 0 gives 4 GPUs x 1000 milli; the job needs 8 x"):
        run(Editing(fewer), gangs(1))
    with pytest.raises(PolicyError, match=r"job 0 gives 8 GPUs x 500 milli; the job needs 8 x"):
        run(Editing(shared), gangs(1))


# ---------------------------------------------------------------- item 3: CPU and memory
@pytest.mark.parametrize(
    ("cpus", "message"),
    [
        ([0.0], r"job 0 gives 0 CPUs and 0 GB of memory in total; the job asks for 16 CPUs"),
        ([-1000.0], r"job 0 gives a negative or NaN amount: CPUs per node \[-1000.0\]"),
        ([np.nan], r"job 0 gives a negative or NaN amount: CPUs per node \[nan\]"),
        ([15.5], r"job 0 gives 15.5 CPUs .* the job asks for 16 CPUs"),
        ([], r"job 0 gives 1 nodes but 0 CPU and 1 memory entries"),
        ([16.0, 0.0], r"job 0 gives 1 nodes but 2 CPU and 1 memory entries"),
    ],
    ids=["zero", "negative", "nan", "short", "empty", "too-many"],
)
def test_placement_cpus_are_checked_against_the_request(cpus, message):
    def edit(view, j, p):
        return j, p._replace(cpus=np.array(cpus, dtype=float))

    with pytest.raises(PolicyError, match=message):
        run(Editing(edit), gangs(1, cpus=16.0))


def test_placement_memory_is_checked_against_the_request():
    trace = make_trace([(0, 0.0, 10.0, 1)], num_cpus=2.0, memory_gb=8.0)

    def edit(view, j, p):
        return j, p._replace(mem=np.array([0.0]))

    with pytest.raises(PolicyError, match=r"job 0 gives 2 CPUs and 0 GB .* for 2 CPUs and 8 GB"):
        run(Editing(edit), trace)


def test_cpu_split_of_a_multi_node_gang_may_differ_but_must_add_up():
    # a 16-GPU gang asking for 32 CPUs spans both nodes; any split that adds up is accepted
    # (within node capacity), one that does not is refused
    def lopsided(view, j, p):
        return j, p._replace(cpus=np.array([30.0, 2.0]))

    def short(view, j, p):
        return j, p._replace(cpus=np.array([16.0, 0.0]))

    sim = run(Editing(lopsided), gangs(1, gpus=16, cpus=32.0))
    assert sim.events[-1] == (10.0, 0, "finish")
    with pytest.raises(PolicyError, match=r"job 0 gives 16 CPUs .* asks for 32 CPUs"):
        run(Editing(short), gangs(1, gpus=16, cpus=32.0))


def test_placement_on_more_nodes_than_the_job_can_use_is_refused():
    def spread(view, j, p):
        return j, Placement(np.array([0, 1]), p.gpus, p.milli, np.array([1.0, 1.0]), np.zeros(2))

    with pytest.raises(PolicyError, match=r"job 0 spans 2 nodes; the job can use at most 1"):
        run(Editing(spread), make_trace([(0, 0.0, 10.0, 1)], num_cpus=2.0))


# ---------------------------------------------------------------- item 7: decisions
def test_negative_job_index_is_refused_not_taken_from_the_end():
    def from_end(view, j, p):
        return j - view.jobs.n, p

    with pytest.raises(PolicyError, match=r"job index -2 is not a job of this run \(0 <= index"):
        run(Editing(from_end), gangs(2))

    def minus_one(view, j, p):
        return -1, p

    with pytest.raises(PolicyError, match=r"^job index -1 is not a job of this run"):
        run(Editing(minus_one), gangs(2))


@pytest.mark.parametrize("order", ["same", "reversed"])
def test_migration_onto_its_own_gpus_is_refused(order):
    class Stay:
        def setup(self, view):
            self.placer = view.placer()

        def schedule(self, view):
            for j in list(view.queue.jobs()):
                yield Start(j, self.placer.place(view.jobs, j))
            view.wake_at(1.0)
            if view.now == 1.0:
                p = view.jobs.placements[0]
                if order == "reversed":
                    p = p._replace(gpus=p.gpus[::-1].copy())
                yield Migrate(0, p)

    with pytest.raises(PolicyError, match="job 0 would migrate onto the nodes and GPUs it runs on"):
        run(Stay(), make_trace([(0, 0.0, 10.0, 2)]))


def test_migration_with_a_duplicate_gpu_is_a_duplicate_not_a_same_place_error():
    class Dup:
        def setup(self, view):
            self.placer = view.placer()

        def schedule(self, view):
            for j in list(view.queue.jobs()):
                yield Start(j, self.placer.place(view.jobs, j))
            view.wake_at(1.0)
            if view.now == 1.0:
                p = view.jobs.placements[0]
                yield Migrate(0, p._replace(gpus=np.array([p.gpus[0], p.gpus[0]])))

    with pytest.raises(PolicyError, match="job 0 gives a placement that") as e:
        run(Dup(), make_trace([(0, 0.0, 10.0, 2)]))
    assert "migrate onto" not in str(e.value)


def test_wake_up_at_now_on_every_pass_stops_naming_the_policy():
    class Spinner:
        def schedule(self, view):
            view.wake_at(view.now)
            return iter(())

    with pytest.raises(
        PolicyError,
        match=r"policy Spinner ran 10000 scheduling passes at t=0.0 s without changing anything",
    ):
        run(Spinner(), gangs(1))  # the job waits for ever: nothing ever happens


def test_decisions_undoing_each_other_at_one_instant_stop_naming_the_policy():
    # start, preempt, start, ... at t=0 with a wake-up at the current time: every pass changes
    # something, but simulated time never advances
    class Flip:
        def setup(self, view):
            self.placer = view.placer()

        def schedule(self, view):
            view.wake_at(view.now)
            if view.jobs.status[0] == 2:
                yield Preempt(0)
            else:
                yield Start(0, self.placer.place(view.jobs, 0))

    sim = Simulation(gangs(1), CLUSTER, Flip())
    sim.es.c[0].max_instant_passes = 500  # 100,000 by default
    with pytest.raises(PolicyError, match=r"policy Flip ran 500 scheduling passes in a row at t=0"):
        sim.run()


def test_a_burst_of_passes_at_one_instant_below_the_limit_is_fine():
    # a policy that wakes itself at the current time a few times, then lets time go on
    class Few:
        def setup(self, view):
            self.placer = view.placer()
            self.left = 50

        def schedule(self, view):
            if self.left:
                self.left -= 1
                view.wake_at(view.now)
            for j in list(view.queue.jobs()):
                yield Start(j, self.placer.place(view.jobs, j))

    sim = run(Few(), gangs(2))
    assert sim.events[-1] == (10.0, 1, "finish") and sim.passes >= 50
