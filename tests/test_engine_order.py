"""The same-instant order across the compiled loop and SimPy, as simulator/core/loop.py states it.

At one instant: releases (completions) -> extension events (SimPy processes) -> timers the
policy asked for -> one scheduling pass (arrivals admitted first). Each test below puts two of
these at the same instant and checks what each one sees of the others.
"""

from conftest import make_trace

from policies.base import Policy, Start
from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.core.jobs import STATUS_NAMES


class Recorder(Policy):
    """FIFO in Python that records what every pass sees and asks for wake-ups."""

    name = "recorder"

    def __init__(self, wake: tuple[float, ...] = (), seen_ext: list | None = None) -> None:
        self.wake = wake
        self.seen_ext = seen_ext if seen_ext is not None else []
        self.passes: list[tuple[float, list[int], int]] = []

    def setup(self, view) -> None:
        self.placer = view.placer()
        for t in self.wake:
            view.wake_at(t)

    def schedule(self, view):
        self.passes.append((view.now, view.queue.jobs(), len(self.seen_ext)))
        for j in view.queue.jobs():
            p = self.placer.place(view.jobs, j)
            if p is None:
                return
            yield Start(j, p)


def observer(at: float, log: list):
    """An extension process that records the state at ``at``."""

    def process(sim: Simulation):
        yield sim.env.timeout(at)
        st = sim.jobs.status
        log.append((sim.env.now, [STATUS_NAMES[int(s)] for s in st], sim.passes))

    return process


CLUSTER = ClusterSpec.homogeneous(1, 2, "H100")
# job 0 holds both GPUs until t=10; job 1 arrives at t=10 and needs both
TRACE = make_trace([(0, 0, 10, 2), (1, 10, 5, 2)])


def test_release_then_extension_then_pass_with_a_compiled_pass():
    log: list = []
    sim = Simulation(TRACE, CLUSTER, FifoPolicy(), processes=(observer(10, log),)).run()
    assert sim.engine == "compiled"
    # the extension at t=10 sees job 0's release done and job 1 not yet admitted, and the
    # pass of t=0 only
    assert log == [(10.0, ["finished", "future"], 1)]
    assert sim.jobs.start.tolist() == [0.0, 10.0]
    assert sim.passes == 2  # t=0 and t=10: one pass at t=10 for the arrival


def test_extension_comes_before_the_pass_and_one_pass_per_instant():
    log: list = []
    policy = Recorder(wake=(10.0,), seen_ext=log)
    sim = Simulation(TRACE, CLUSTER, policy, processes=(observer(10, log),)).run()
    assert sim.engine == "python"
    assert log == [(10.0, ["finished", "future"], 1)]
    # one pass at t=10 although a release, an arrival and a timer fall there; it sees the
    # arrival admitted and the extension already run
    assert policy.passes == [(0.0, [0], 0), (10.0, [1], 1)]


def test_a_timer_pass_runs_after_the_extension_of_its_instant():
    log: list = []
    policy = Recorder(wake=(3.0,), seen_ext=log)
    sim = Simulation(TRACE, CLUSTER, policy, processes=(observer(3, log),)).run()
    # at t=3 nothing but the timer and the extension: the extension sees only the first pass,
    # the timer's pass then sees the extension's record
    assert log == [(3.0, ["running", "future"], 1)]
    assert policy.passes[1] == (3.0, [], 1)
    assert sim.passes == 3
