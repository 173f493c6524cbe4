"""Exact event logs of tiny scenarios, same-time ordering, and engine mechanics."""

import numpy as np
import pytest
from conftest import make_trace, simulate

from policies.base import Start
from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import PolicyError, Simulation
from simulator.core.placement import Placement
from simulator.output.metrics import job_frame


def test_fifo_head_of_line_blocking(small_cluster):
    # 2 nodes x 8 GPUs. Job 3 (16 GPUs) blocks job 4 (2 GPUs) under FIFO.
    trace = make_trace([(1, 0, 10, 8), (2, 0, 5, 4), (3, 1, 3, 16), (4, 2, 1, 2)])
    sim = simulate(trace, small_cluster, FifoPolicy())
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 2, "arrive"),
        (0, 1, "start"),
        (0, 2, "start"),
        (1, 3, "arrive"),
        (2, 4, "arrive"),
        (5, 2, "finish"),
        (10, 1, "finish"),
        (10, 3, "start"),
        (13, 3, "finish"),
        (13, 4, "start"),
        (14, 4, "finish"),
    ]


def test_gang_lets_small_job_overtake_blocked_gang(small_cluster):
    trace = make_trace([(1, 0, 10, 8), (2, 0, 5, 4), (3, 1, 3, 16), (4, 2, 1, 2)])
    sim = simulate(trace, small_cluster, GangPolicy(starvation_timeout=None))
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 2, "arrive"),
        (0, 1, "start"),
        (0, 2, "start"),
        (1, 3, "arrive"),
        (2, 4, "arrive"),
        (2, 4, "start"),
        (3, 4, "finish"),
        (5, 2, "finish"),
        (10, 1, "finish"),
        (10, 3, "start"),
        (13, 3, "finish"),
    ]
    f = sim.jobs
    # the 16-GPU gang spans both nodes, all-or-nothing
    placed = {j: p for _, j, p in sim.placement_log}
    assert list(f.nodes_used[2]) == [0, 1] and len(placed[2].gpus) == 16


def test_gang_starvation_guard_stops_overtaking(small_cluster):
    # Job 2 (16 GPUs) waits behind job 1; after 4 s of waiting it may not be overtaken,
    # so job 3 (arriving at t=6, 1 GPU) waits until job 2 has run.
    trace = make_trace([(1, 0, 10, 1), (2, 1, 5, 16), (3, 6, 1, 1), (4, 2, 1, 1)])
    sim = simulate(trace, small_cluster, GangPolicy(starvation_timeout=4))
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 1, "start"),
        (1, 2, "arrive"),
        (2, 4, "arrive"),
        (2, 4, "start"),
        (3, 4, "finish"),
        (6, 3, "arrive"),
        (10, 1, "finish"),
        (10, 2, "start"),
        (15, 2, "finish"),
        (15, 3, "start"),
        (16, 3, "finish"),
    ]


def test_same_instant_completion_then_arrival_then_pass():
    # One node with 4 GPUs. Job 1 ends at t=5 exactly when job 2 (4 GPUs) arrives:
    # the release happens first, so the pass at t=5 starts job 2 at once.
    cluster = ClusterSpec.homogeneous(1, 4, "H100")
    trace = make_trace([(1, 0, 5, 4), (2, 5, 2, 4), (3, 5, 1, 1)])
    for policy in (FifoPolicy(), GangPolicy()):
        sim = simulate(trace, cluster, policy)
        assert sim.events == [
            (0, 1, "arrive"),
            (0, 1, "start"),
            (5, 1, "finish"),
            (5, 2, "arrive"),
            (5, 3, "arrive"),
            (5, 2, "start"),
            (7, 2, "finish"),
            (7, 3, "start"),
            (8, 3, "finish"),
        ]


def test_one_pass_per_instant_and_timeline_rows():
    cluster = ClusterSpec.homogeneous(1, 2, "H100")
    trace = make_trace([(1, 0, 5, 1), (2, 0, 5, 1), (3, 0, 5, 1), (4, 5, 1, 1)])
    sim = simulate(trace, cluster, FifoPolicy())
    # instants with events: 0, 5, 6, 10 -> one timeline row each; the policy is consulted
    # only where the queue is not empty (0 and 5)
    assert sim.passes == 2
    t, alloc, queued, running = (c.tolist() for c in sim.timeline_rows())
    assert t == [0, 5, 6, 10]
    assert alloc == [2, 2, 1, 0] and queued == [1, 0, 0, 0] and running == [2, 2, 1, 0]


def test_fractional_gpus_share_one_gpu():
    cluster = ClusterSpec.homogeneous(1, 2, "T4")
    trace = make_trace(
        [(1, 0, 10, 1), (2, 0, 10, 1), (3, 0, 10, 1), (4, 0, 10, 1)], gpu_milli=[600, 400, 500, 500]
    )
    sim = simulate(trace, cluster, GangPolicy())
    assert [e for e in sim.events if e[2] == "start"] == [
        (0, 1, "start"),
        (0, 2, "start"),
        (0, 3, "start"),
        (0, 4, "start"),
    ]
    gpus = [int(p.gpus[0]) for _, _, p in sim.placement_log]
    # best fit: 400 goes next to 600 on GPU 0; the two 500s share GPU 1
    assert gpus == [0, 0, 1, 1]


def test_unschedulable_jobs_are_counted_not_dropped(small_cluster):
    trace = make_trace([(1, 0, 1, 32), (2, 0, 1, 1), (3, 0, 1, 1)], gpu_type=["", "H100", ""])
    sim = simulate(trace, small_cluster, GangPolicy())
    status = list(sim.jobs.status)
    assert status == [4, 4, 3]  # unschedulable, unschedulable, finished
    assert (0, 1, "unschedulable") in sim.events and (0, 2, "unschedulable") in sim.events


def test_cpu_and_memory_limits_placement():
    cluster = ClusterSpec.homogeneous(2, 8, "A100", cpus_per_node=10, memory_gb_per_node=100)
    trace = make_trace(
        [(1, 0, 5, 1), (2, 0, 5, 1), (3, 0, 5, 1)], num_cpus=[8, 8, 8], memory_gb=[10, 10, 10]
    )
    sim = simulate(trace, cluster, FifoPolicy())
    assert sim.events[3:] == [
        (0, 1, "start"),
        (0, 2, "start"),
        (5, 1, "finish"),
        (5, 2, "finish"),
        (5, 3, "start"),
        (10, 3, "finish"),
    ]


def test_gpu_type_constraint_is_respected():
    spec = ClusterSpec.from_groups(
        [
            {"count": 1, "num_gpus": 8, "gpu_type": "V100"},
            {"count": 1, "num_gpus": 8, "gpu_type": "H100"},
        ]
    )
    trace = make_trace([(1, 0, 5, 2), (2, 0, 5, 2)], gpu_type=["H100", "A100|V100"])
    sim = simulate(trace, spec, GangPolicy())
    assert [int(nodes[0]) for nodes in sim.jobs.nodes_used] == [1, 0]


def test_preemption_rolls_back_to_checkpoint():
    class PreemptOnce:
        def __init__(self):
            self.done = False

        def setup(self, view):
            self.placer = view.placer()

        def schedule(self, view):
            if view.now == 0:
                j = view.queue.first()
                yield Start(j, self.placer.place(view.jobs, j))
                view.wake_at(25.0)
            elif not self.done and view.running:
                self.done = True
                from policies.base import Preempt

                yield Preempt(0)
            j = view.queue.first()
            if j >= 0 and view.now > 0:
                p = self.placer.place(view.jobs, j)
                if p is not None:
                    yield Start(j, p)

    cluster = ClusterSpec.homogeneous(1, 1, "H100")
    trace = make_trace([(1, 0, 100, 1)])
    sim = simulate(trace, cluster, PreemptOnce(), checkpoint_interval=10, restart_overhead=3)
    # at t=25 the job has 25 s of work; it keeps 20 (last checkpoint), restarts at once and
    # needs 100 - 20 + 3 = 83 s more.
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 1, "start"),
        (25, 1, "preempt"),
        (25, 1, "start"),
        (108, 1, "finish"),
    ]
    assert sim.lost_seconds[0] == pytest.approx(8.0)
    assert sim.jobs.preemptions[0] == 1


def test_rate_change_reschedules_completion():
    class Slow:
        def setup(self, view):
            self.placer = view.placer()

        def schedule(self, view):
            j = view.queue.first()
            yield Start(j, self.placer.place(view.jobs, j))

    cluster = ClusterSpec.homogeneous(1, 1, "H100")
    sim = Simulation(make_trace([(1, 0, 100, 1)]), cluster, Slow(), record_events=True)
    sim.env.process(_halve_at(sim, 40.0))
    sim.run()
    # 40 s at full speed, then 60 s of work at half speed = 120 s more
    assert sim.events[-1] == (160.0, 1, "finish")


def _halve_at(sim, t):
    yield sim.env.timeout(t)
    sim.set_rate(0, 0.5)


def test_policy_placing_on_busy_gpu_is_rejected(small_cluster):
    class Bad:
        def schedule(self, view):
            for j in list(view.queue.jobs()):
                yield Start(
                    j,
                    Placement(np.array([0]), np.array([0]), 1000, np.array([0.0]), np.array([0.0])),
                )

    trace = make_trace([(1, 0, 5, 1), (2, 0, 5, 1)])
    with pytest.raises(PolicyError, match="without room"):
        Simulation(trace, small_cluster, Bad()).run()


def test_horizon_marks_unfinished(small_cluster):
    trace = make_trace([(1, 0, 50, 1), (2, 100, 5, 1)])
    sim = Simulation(trace, small_cluster, FifoPolicy(), until=10.0).run()
    assert list(sim.jobs.status) == [6, 6]


def test_migrate_moves_job_and_charges_overhead():
    from policies.base import Migrate

    class MoveOnce:
        def setup(self, view):
            self.placer = view.placer(scoring="firstfit")
            self.moved = False

        def schedule(self, view):
            j = view.queue.first()
            if j >= 0:
                yield Start(j, self.placer.place(view.jobs, j))
                view.wake_at(10.0)
            elif not self.moved and view.now == 10.0:
                self.moved = True
                target = Placement(
                    np.array([1]), np.array([8, 9]), 1000, np.array([0.0]), np.array([0.0])
                )
                yield Migrate(0, target)

    trace = make_trace([(1, 0, 100, 2)])
    sim = simulate(trace, ClusterSpec.homogeneous(2, 8, "V100"), MoveOnce(), migration_overhead=5)
    assert sim.events == [(0, 1, "arrive"), (0, 1, "start"), (10, 1, "migrate"), (105, 1, "finish")]
    assert list(sim.jobs.nodes_used[0]) == [1] and sim.jobs.migrations[0] == 1
    assert sim.jobs.gpu_seconds[0] == pytest.approx(2 * 105)


def test_reject_is_terminal_and_counted(small_cluster):
    from policies.base import Reject

    class RejectBig:
        def setup(self, view):
            self.placer = view.placer()

        def schedule(self, view):
            for j in view.queue.jobs():
                p = self.placer.place(view.jobs, j)
                if p is None:
                    yield Reject(j, "no room on arrival")
                else:
                    yield Start(j, p)

    trace = make_trace([(1, 0, 10, 16), (2, 1, 5, 4)])
    sim = simulate(trace, small_cluster, RejectBig())
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 1, "start"),
        (1, 2, "arrive"),
        (1, 2, "reject"),
        (10, 1, "finish"),
    ]
    assert sim.reject_reasons == {"no room on arrival": 1}
    assert list(sim.jobs.status) == [3, 7]


def test_per_queue_accounting(small_cluster):
    trace = make_trace([(1, 0, 10, 8), (2, 0, 10, 8), (3, 0, 10, 4)], queue=["a", "b", "a"])
    sim = simulate(trace, small_cluster, FifoPolicy())
    times, alloc, queued = sim.queue_timeline_rows()
    assert times[0] == 0 and list(alloc[0]) == [8, 8] and list(queued[0]) == [1, 0]
    from simulator.output.metrics import queue_summary, queue_timeline_frame

    frame = queue_timeline_frame(sim)
    assert set(frame["queue"]) == {"a", "b"}
    qs = queue_summary(sim)
    assert qs["a"]["jobs"] == 2 and qs["a"]["gpu_seconds"] == pytest.approx(120)
    # a: jobs 1 (0-10) and 3 (waits 10 s, 10-20); span 20 s of the cluster's GPUs
    cap = 20.0 * small_cluster.total_gpus
    assert qs["a"]["gpu_share"] == pytest.approx(120 / cap)
    assert qs["b"]["gpu_share"] == pytest.approx(80 / cap)
    assert qs["a"]["p95_wait"] == pytest.approx(9.5) and qs["b"]["p95_wait"] == 0.0
    assert qs["a"]["preemptions"] == 0 and qs["a"]["lost_gpu_seconds"] == 0.0


def test_editing_the_job_frame_leaves_the_trace_alone():
    # job_frame shares the trace columns when pandas copies on write; an in-place edit of the
    # returned frame must not reach the simulation's own copy of the trace
    cluster = ClusterSpec.homogeneous(1, 2, "H100")
    sim = simulate(make_trace([(1, 0, 5, 1), (2, 0, 7, 1)]), cluster, FifoPolicy())
    f = job_frame(sim)
    f.loc[0, "duration"] = 99.0
    f["num_gpus"] *= 3
    assert sim.jobs.frame["duration"].tolist() == [5, 7]
    assert sim.jobs.frame["num_gpus"].tolist() == [1, 1]
    assert job_frame(sim)["duration"].tolist() == [5, 7]
