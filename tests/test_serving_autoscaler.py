"""Autoscaling: the decision rules, and a step load scaled out and in with the set delays."""

from collections import deque

import numpy as np
import pandas as pd
import pytest
from conftest import simulate

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.models.serving import Autoscaler, Observation, RequestStream, Service, TableStepTime


def obs(now=0.0, provisioned=2, ready=2, out=0.0, queued=0.0, met=0, count=0, batch=8):
    return Observation(now, provisioned, ready, out, queued, met, count, batch)


def test_utilization_policy_tracks_the_target():
    a = Autoscaler("utilization", min_replicas=1, max_replicas=5, target_utilization=0.5)
    assert a.desired(obs(out=8.0)) == 2  # 8 outstanding = 1 batch = 2 replicas at 50 %
    assert a.desired(obs(out=8.1)) == 3
    assert a.desired(obs(out=0.0)) == 1  # min_replicas
    assert a.desired(obs(out=100.0)) == 5  # max_replicas
    zero = Autoscaler("utilization", min_replicas=0, max_replicas=5, target_utilization=0.5)
    assert zero.desired(obs(out=0.0)) == 0 and zero.desired(obs(out=0.01)) == 1


def test_slo_policy_steps():
    a = Autoscaler(
        "slo",
        min_replicas=1,
        max_replicas=4,
        slo_attainment=0.9,
        queue_high=2.0,
        target_utilization=0.5,
    )
    assert a.desired(obs(met=8, count=10)) == 3  # attainment 0.8 < 0.9: one more
    assert a.desired(obs(met=8, count=10, provisioned=3, ready=2)) == 3  # one still loading
    assert a.desired(obs(queued=5.0)) == 3  # 2.5 queued per replica > 2
    assert a.desired(obs(out=3.0, met=10, count=10)) == 1  # 3 / 8 / 1 < 0.5: one fewer
    assert a.desired(obs(out=5.0, met=10, count=10)) == 2  # 5 / 8 / 1 > 0.5: stay


def test_scale_in_waits_for_the_stabilisation_window():
    a = Autoscaler(
        "utilization", min_replicas=1, max_replicas=8, target_utilization=1.0, scale_in_delay_s=60
    )
    recent = deque()
    # desire 4 at t=0, then 1 from t=30: the target stays 4 until the t=0 desire is > 60 s old
    assert a.target(recent, obs(now=0, provisioned=2, out=32)) == 4
    assert a.target(recent, obs(now=30, provisioned=4, out=1)) == 4
    assert a.target(recent, obs(now=60, provisioned=4, out=1)) == 4
    assert a.target(recent, obs(now=90, provisioned=4, out=1)) == 1
    assert a.target(recent, obs(now=120, provisioned=1, out=40)) == 5  # out at once


def step_load() -> RequestStream:
    # 1 request every 2 s for 300 s, 3 per second for 300 s, then 1 every 2 s for 600 s
    t = np.concatenate(
        [np.arange(0, 300, 2.0), np.arange(300, 600, 1 / 3), np.arange(600, 1200, 2.0)]
    )
    return RequestStream(t, np.full(t.size, 8), np.full(t.size, 10))


def test_step_load_scales_out_after_load_delay_and_drains_on_scale_in():
    # batch size 1 and 10 iterations of 0.1 s: each replica serves 1 request per second
    interval, delay, window = 30.0, 60.0, 120.0
    scaler = Autoscaler(
        "utilization",
        min_replicas=1,
        max_replicas=4,
        interval_s=interval,
        target_utilization=0.5,
        scale_in_delay_s=window,
    )
    svc = Service(
        requests=step_load(),
        step_time=TableStepTime([1], [0.1]),
        max_batch_size=1,
        max_batched_tokens=64,
        tensor_parallel=2,
        load_delay_s=delay,
        warm_start=True,
        autoscaler=scaler,
    )
    cluster = ClusterSpec.homogeneous(1, 8, "H100")
    sim = simulate(
        svc.prepare(pd.DataFrame(), cluster), cluster, FifoPolicy(), processes=svc.processes()
    )
    run = svc.run_of(sim)
    reps = svc.tables(sim)["replicas"].set_index("time")
    # before the step one replica suffices; the first window that sees it is [300, 330]
    assert all(target == 1 for t, _, target in run.decisions if t <= 300)
    assert run.decisions[10] == (330.0, 4, 4)
    # 3 replicas submitted and placed at 330, ready exactly 60 s later
    assert reps.loc[330.0, ["pending", "loading", "ready"]].tolist() == [0, 3, 1]
    assert reps.loc[390.0, ["loading", "ready"]].tolist() == [0, 4]
    starts = sorted(t for t, j, e in sim.events if e == "start")
    assert starts == [0.0, 330.0, 330.0, 330.0]
    # scale-in: the first drain comes a full window after the last decision that wanted 4
    drains = [t for t, s, e in run.events if e == "drain"]
    last_high = max(t for t, want, _ in run.decisions if t < drains[0] and want >= 4)
    assert drains[0] - last_high > window
    f = svc.tables(sim)["requests"]
    assert (f["status"] == "finished").all()
    s = svc.summary(sim)["serving"]["llm"]
    assert s["scale_outs"] >= 1 and s["scale_ins"] >= 1 and s["max_ready_replicas"] == 4
    assert reps["ready"].iloc[-2] == 1  # back to min_replicas before the end
    assert s["replica_gpu_seconds"] == pytest.approx(float(sim.jobs.gpu_seconds.sum()))


def test_drain_finishes_in_flight_requests_then_stops():
    # 2 fixed replicas, 4 requests at 0 (20 output tokens = 2 s each), 2 more at 1 s; at 0.35 s
    # the service shrinks to 1: replica 1 (fewest outstanding, newest on ties) drains, takes
    # no new request and stops when its two requests end at 2.0 s.
    stream = RequestStream([0, 0, 0, 0, 1, 1], [8] * 6, [20] * 6)
    svc = Service(
        requests=stream,
        step_time=TableStepTime([1], [0.1]),
        replicas=2,
        tensor_parallel=4,
        warm_start=True,
    )

    def shrink(sim):
        yield sim.env.timeout(0.35)
        svc.run_of(sim).scale_to(1)

    cluster = ClusterSpec.homogeneous(1, 8, "H100")
    sim = simulate(
        svc.prepare(pd.DataFrame(), cluster),
        cluster,
        FifoPolicy(),
        processes=(*svc.processes(), shrink),
    )
    run = svc.run_of(sim)
    f = svc.tables(sim)["requests"]
    assert list(f["replica"]) == [0, 1, 0, 1, 0, 0]
    rep1 = [(round(t, 9), e) for t, s, e in run.events if s == "replica-1"]
    assert rep1 == [(0, "submit"), (0, "placed"), (0, "ready"), (0.35, "drain"), (2.0, "stop")]
    np.testing.assert_allclose(f["end_time"], [2.0, 2.0, 2.0, 2.0, 3.0, 3.0])  # join at 1.0
    assert [(round(t, 9), e) for t, j, e in sim.events if j == "llm-replica-1"] == [
        (0, "arrive"),
        (0, "start"),
        (2.0, "finish"),
    ]
