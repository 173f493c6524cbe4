"""The serving controller's start: the first arrival is waited for exactly, from any start time."""

import pandas as pd
from conftest import simulate

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.models.serving import RequestStream, Service, TableStepTime

CLUSTER = ClusterSpec.homogeneous(1, 8, "H100")
TICK = TableStepTime([1], [0.1])  # every iteration takes 0.1 s


def serve_from(start_s: float, stream: RequestStream):
    """Serve ``stream`` with one warm replica whose controller starts at ``start_s``."""
    svc = Service(
        requests=stream, step_time=TICK, warm_start=True, max_batch_size=4, max_batched_tokens=8
    )
    jobs = svc.prepare(pd.DataFrame(), CLUSTER)
    (control,) = svc.processes()

    def late(sim):  # a user process that hands over to the controller at start_s
        yield sim.env.timeout(start_s)
        yield from control(sim)

    sim = simulate(jobs, CLUSTER, FifoPolicy(), processes=[late])
    return [(round(t, 9), s, e) for t, s, e in svc.run_of(sim).events]


def test_first_arrival_after_a_late_start_is_waited_for_from_the_start():
    # controller at t = 5, first (only) request at 7: it arrives at 7 (the old controller
    # waited arrival[0] = 7 s from its start and saw it at 12); prompt 4 -> first token
    # and finish (output 1) after one 0.1 s iteration
    rep = "replica-0"
    assert serve_from(5.0, RequestStream([7.0], [4], [1])) == [
        (5.0, rep, "submit"),
        (5.0, rep, "placed"),
        (5.0, rep, "ready"),
        (7.0, 0, "arrive"),
        (7.0, 0, "route replica-0"),
        (7.0, 0, "admit"),
        (7.1, 0, "first_token"),
        (7.1, 0, "finish"),
        (7.1, rep, "stop"),
    ]


def test_requests_before_a_late_start_arrive_at_once_and_later_ones_on_time():
    # controller at t = 5; r0 at 3 (before it) arrives at 5, with no negative wait; r1 at 7
    # arrives at 7 (the old controller woke at 5 + 3 = 8 and took both at 8)
    rep = "replica-0"
    assert serve_from(5.0, RequestStream([3.0, 7.0], [4, 4], [1, 1])) == [
        (5.0, rep, "submit"),  # the initial replica is submitted before the due arrival runs
        (5.0, 0, "arrive"),
        (5.0, rep, "placed"),
        (5.0, rep, "ready"),
        (5.0, 0, "route replica-0"),
        (5.0, 0, "admit"),
        (5.1, 0, "first_token"),
        (5.1, 0, "finish"),
        (7.0, 1, "arrive"),
        (7.0, 1, "route replica-0"),
        (7.0, 1, "admit"),
        (7.1, 1, "first_token"),
        (7.1, 1, "finish"),
        (7.1, rep, "stop"),
    ]


def test_trace_starting_after_zero_waits_exactly_for_its_first_arrival():
    # controller at t = 0, first request at 2.5: nothing happens to it before 2.5
    rep = "replica-0"
    assert serve_from(0.0, RequestStream([2.5], [4], [1])) == [
        (0.0, rep, "submit"),
        (0.0, rep, "placed"),
        (0.0, rep, "ready"),
        (2.5, 0, "arrive"),
        (2.5, 0, "route replica-0"),
        (2.5, 0, "admit"),
        (2.6, 0, "first_token"),
        (2.6, 0, "finish"),
        (2.6, rep, "stop"),
    ]
