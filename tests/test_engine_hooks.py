"""Engine hooks used by faults, fabrics and controllers: exact logs on tiny scenarios."""

import math
import os
import signal

import numpy as np
import pytest
from conftest import make_trace, simulate

from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output.metrics import job_frame, summary, timeline_frame


def fail_at(t, node, repair_after=None):
    def process(sim):
        yield sim.env.timeout(t)
        sim.fail_node(node)
        if repair_after is not None:
            yield sim.env.timeout(repair_after)
            sim.repair_node(node)

    return process


def test_node_failure_kills_whole_gang_and_requeues():
    # 2 nodes x 4 GPUs; job 1 is an 8-GPU gang over both nodes. Node 1 fails at t=25 and is
    # repaired at t=40. Checkpoints every 10 s: the gang keeps 20 s of work, pays 5 s restart
    # overhead, restarts at t=40 and needs 100 - 20 + 5 = 85 s more.
    cluster = ClusterSpec.homogeneous(2, 4, "H100", nodes_per_rack=1)
    trace = make_trace([(1, 0, 100, 8), (2, 30, 10, 2)])
    sim = simulate(
        trace,
        cluster,
        GangPolicy(),
        checkpoint_interval=10,
        restart_overhead=5,
        processes=(fail_at(25, 1, repair_after=15),),
    )
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 1, "start"),
        (25, 1, "killed"),
        (30, 2, "arrive"),
        (30, 2, "start"),  # node 0 is still up: job 2 runs there
        (40, 2, "finish"),
        (40, 1, "start"),
        (125, 1, "finish"),
    ]
    jobs = job_frame(sim)
    assert list(jobs["restarts"]) == [1, 0]
    assert sim.lost_seconds[0] == pytest.approx(5 + 5)  # 5 s since checkpoint + 5 s overhead
    s = summary(sim)
    assert s["restarts"] == 1 and s["node_failures"] == 1
    # goodput: useful 8x100 + 2x10 GPU-s over allocated 8x25 + 2x10 + 8x85
    assert s["goodput"] == pytest.approx((800 + 20) / (200 + 20 + 680))
    assert jobs["slowdown"].iloc[0] == pytest.approx((25 + 85) / 100)


def test_failed_node_leaves_the_pool_until_repaired():
    cluster = ClusterSpec.homogeneous(2, 4, "H100")
    trace = make_trace([(1, 0, 10, 4), (2, 1, 10, 4), (3, 2, 10, 4)])
    sim = simulate(trace, cluster, FifoPolicy(), processes=(fail_at(0.5, 1, repair_after=50),))
    starts = [(t, j) for t, j, e in sim.events if e == "start"]
    assert starts == [(0, 1), (10, 2), (20, 3)]  # node 1 is down from 0.5 to 50.5


def test_max_retries_fails_the_job():
    cluster = ClusterSpec.homogeneous(1, 4, "H100")
    trace = make_trace([(1, 0, 100, 4)])

    def flaky(sim):
        for _ in range(3):
            yield sim.env.timeout(10)
            sim.fail_node(0)
            yield sim.env.timeout(1)
            sim.repair_node(0)

    sim = simulate(trace, cluster, FifoPolicy(), max_retries=2, processes=(flaky,))
    assert [e for _, _, e in sim.events] == [
        "arrive",
        "start",
        "killed",
        "start",
        "killed",
        "start",
        "failed",
    ]
    assert summary(sim)["jobs_failed"] == 1


def test_dormant_jobs_are_submitted_and_stopped_by_a_controller():
    cluster = ClusterSpec.homogeneous(1, 8, "H100")
    trace = make_trace([(1, 0, 30, 4), ("replica", math.inf, math.inf, 4)])

    def controller(sim):
        yield sim.env.timeout(5)
        sim.submit(1)
        yield sim.env.timeout(50)
        sim.stop(1)

    sim = simulate(trace, cluster, FifoPolicy(), processes=(controller,))
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 1, "start"),
        (5, "replica", "arrive"),
        (5, "replica", "start"),
        (30, 1, "finish"),
        (55, "replica", "finish"),
    ]


class HalfSpeedWhenShared:
    """Toy fabric: jobs run at half speed while another job is running."""

    def setup(self, sim):
        self.running = set()

    def _rates(self):
        rate = 0.5 if len(self.running) > 1 else 1.0
        return {k: rate for k in self.running}

    def on_start(self, j, placement, now):
        self.running.add(j)
        return self._rates()

    def on_stop(self, j, now):
        self.running.discard(j)
        return self._rates()


def test_fabric_rates_reschedule_completions():
    # job 1 alone for 10 s (10 s of work), then shares with job 2 (half speed) until job 2's
    # 10 s of work take 20 s (t=30); job 1 did 10 + 10 = 20 s by then, 80 s left alone.
    cluster = ClusterSpec.homogeneous(2, 8, "H100")
    trace = make_trace([(1, 0, 100, 8), (2, 10, 10, 8)])
    sim = simulate(trace, cluster, FifoPolicy(), fabric=HalfSpeedWhenShared())
    assert sim.events == [
        (0, 1, "arrive"),
        (0, 1, "start"),
        (10, 2, "arrive"),
        (10, 2, "start"),
        (30, 2, "finish"),
        (110, 1, "finish"),
    ]
    assert list(job_frame(sim)["slowdown"]) == pytest.approx([1.1, 2.0])


def test_interrupt_keeps_partial_results():
    cluster = ClusterSpec.homogeneous(1, 1, "H100")
    trace = make_trace([(1, 0, 10, 1), (2, 0, 10, 1), (3, 0, 10, 1)])

    def ctrl_c(sim):
        yield sim.env.timeout(15)
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered inside this event

    sim = Simulation(trace, cluster, FifoPolicy(), processes=(ctrl_c,)).run()
    assert sim.interrupted and summary(sim)["partial"] is True
    assert sim.env.now == 15
    assert list(job_frame(sim)["status"]) == ["finished", "unfinished", "unfinished"]
    assert np.isnan(job_frame(sim)["end_time"].iloc[1])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


class InterruptedMidPass(FifoPolicy):
    """Ctrl-C arrives while the policy is half-way through its decisions."""

    def schedule(self, view):
        for i, decision in enumerate(super().schedule(view)):
            if i == 1 and view.now == 0:
                os.kill(os.getpid(), signal.SIGINT)  # between the first and second start
            yield decision


def test_signal_inside_an_event_finishes_the_event_first():
    # Python runs the handler at the next bytecode, here inside the policy pass: the pass must
    # still apply every decision and record its timeline row; the run stops after it.
    cluster = ClusterSpec.homogeneous(1, 2, "H100")
    trace = make_trace([(1, 0, 10, 1), (2, 0, 10, 1), (3, 5, 10, 1)])
    sim = simulate(trace, cluster, InterruptedMidPass())
    assert sim.interrupted
    assert sim.events == [(0, 1, "arrive"), (0, 2, "arrive"), (0, 1, "start"), (0, 2, "start")]
    assert sorted(sim.running) == [0, 1]  # the invariant check after the pass passed
    tl = timeline_frame(sim)
    assert list(tl["time"]) == [0.0] and list(tl["allocated_gpus"]) == [2.0]
    assert list(job_frame(sim)["status"]) == ["unfinished"] * 3


def test_second_signal_aborts_at_once():
    cluster = ClusterSpec.homogeneous(1, 1, "H100")
    trace = make_trace([(1, 0, 10, 1), (2, 0, 10, 1)])

    def twice(sim):
        yield sim.env.timeout(1)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        Simulation(trace, cluster, FifoPolicy(), processes=(twice,)).run()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_submitted_dormant_job_is_not_admitted_twice():
    # the arrival scan must not reach a dormant row that a controller already submitted
    cluster = ClusterSpec.homogeneous(1, 4, "H100")
    trace = make_trace(
        [("big", 1.0, 10.0, 4), ("r", math.inf, math.inf, 4), ("spare", math.inf, math.inf, 4)]
    )

    def controller(sim):
        sim.submit(1)
        yield sim.env.timeout(20)
        sim.stop(1)

    sim = simulate(trace, cluster, FifoPolicy(), processes=(controller,))
    assert sim.events == [
        (0, "r", "arrive"),
        (0, "r", "start"),
        (1, "big", "arrive"),
        (20, "r", "finish"),
        (20, "big", "start"),
        (30, "big", "finish"),
    ]
    assert list(job_frame(sim)["status"]) == ["finished", "finished", "dormant"]
    assert summary(sim)["jobs_dormant"] == 1 and summary(sim)["jobs_unfinished"] == 0


def test_queue_push_log_sees_every_entry():
    cluster = ClusterSpec.homogeneous(1, 4, "H100")
    trace = make_trace([(1, 0, 100, 4), (2, 5, 10, 4), ("r", math.inf, math.inf, 4)])
    seen = []

    class Watcher(FifoPolicy):
        def setup(self, view):
            super().setup(view)
            self.cursor = 0

        def schedule(self, view):
            seen.extend(view.queue.pushed_since(self.cursor))
            self.cursor = view.queue.pushes
            yield from super().schedule(view)

    def controller(sim):
        yield sim.env.timeout(2)
        sim.fail_node(0)  # job 1 is requeued
        sim.submit(2)
        yield sim.env.timeout(1)
        sim.repair_node(0)
        yield sim.env.timeout(200)
        sim.stop(2)

    simulate(trace, cluster, Watcher(), processes=(controller,))
    assert seen == [0, 0, 2, 1]  # arrival, requeue after failure, submit, arrival


def test_cluster_state_copy_and_load_free_are_consistent():
    from simulator.core.cluster import ClusterState

    st = ClusterState(ClusterSpec.homogeneous(3, 4, "H100", cpus_per_node=16))
    st.allocate(np.array([1]), np.array([4, 5]), 1000, np.array([4.0]), np.array([0.0]))
    st.allocate(np.array([2]), np.array([8]), 300, np.array([1.0]), np.array([0.0]))
    twin = st.copy()
    for name in ("gpu_free", "free_full", "cpu_free", "buckets"):
        np.testing.assert_array_equal(getattr(twin, name), getattr(st, name))
    assert (twin.free_gpu_total, twin.allocated_milli) == (st.free_gpu_total, st.allocated_milli)
    twin.release(np.array([1]), np.array([4, 5]), 1000, np.array([4.0]), np.array([0.0]))
    assert st.free_full[1] == 2 and twin.free_full[1] == 4  # independent


def test_ended_since_lists_every_stop():
    cluster = ClusterSpec.homogeneous(1, 4, "H100")
    trace = make_trace([(1, 0, 5, 4), (2, 0, 5, 4)])
    sim = simulate(trace, cluster, FifoPolicy())
    ended, mark = sim.view.ended_since(0)
    assert ended == [0, 1] and mark == 2 and sim.view.ended_since(mark) == ([], 2)


def test_placement_from_a_what_if_copy_is_validated():
    from policies.base import Start
    from simulator.core.engine import PolicyError
    from simulator.core.placement import Placer

    class TrustsACopy:
        """Places job 1 on a what-if copy that has forgotten job 0."""

        def setup(self, view):
            self.placer = view.placer()

        def schedule(self, view):
            yield Start(0, self.placer.place(view.jobs, 0))
            scratch = view._sim.state.copy()
            scratch.load_free(
                np.full((1, 4), 1000, np.int32), view.cluster.cpu_free, view.cluster.mem_free
            )
            yield Start(1, Placer(scratch).place(view.jobs, 1))

    cluster = ClusterSpec.homogeneous(1, 4, "H100")
    trace = make_trace([(1, 0, 10, 4), (2, 0, 10, 4)])
    with pytest.raises(PolicyError, match="without room"):
        Simulation(trace, cluster, TrustsACopy()).run()


def test_the_compile_cache_is_keyed_on_every_file_a_pass_calls_into(monkeypatch):
    # the topology pass's kernel calls the gang walk (policies/gang.py) and the core's
    # kernels; editing any file the state's module imports must change the cache key of the
    # loop compiled for that state
    from pathlib import Path

    from numba import typeof

    import policies.topology_pass as tp
    from policies.gang import new_walk
    from simulator.core import jit

    files = {Path(f).name for f in jit._project_files(tp.__name__)}
    assert {"topology_pass.py", "gang.py", "kernels.py", "ops.py"} <= files
    assert not any("site-packages" in f for f in jit._project_files(tp.__name__))
    sig = (typeof(np.zeros(1)), typeof(new_walk(0, False)))
    before = jit._hook_stamps(sig)
    assert len(before) == 1 and len(before[0][1]) == len(jit._project_files("policies.gang"))
    real = jit._file_stamp
    monkeypatch.setattr(
        jit, "_file_stamp", lambda f: "edited" if f.endswith("bits.py") else real(f)
    )
    assert jit._hook_stamps(sig) != before  # bits.py: imported by gang.py, not defining it
