"""Per-pool autoscaling of a disaggregated service (``prefill.autoscaler`` / ``decode.autoscaler``).

Rules in :mod:`simulator.models.serving.disagg_run`: each pool is observed and sized on its own.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import simulate

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.models.serving import RequestStream, Service, TableStepTime
from simulator.models.serving.disagg import PoolSpec
from simulator.models.serving.disagg_run import DisaggServiceRun

TICK = TableStepTime([1], [0.1])  # every iteration takes 0.1 s
FOUR_NODES = ClusterSpec.homogeneous(4, 4, "H100")  # one TP-4 replica per node
DECODE_SCALER = {
    "policy": "utilization",
    "min_replicas": 1,
    "max_replicas": 3,
    "interval_s": 10.0,
    "target_utilization": 0.5,
    "scale_in_delay_s": 20.0,
}


def serve(stream, observed=None, monkeypatch=None, **kw):
    kw.setdefault("prefill", {"replicas": 1})
    kw.setdefault("decode", {"autoscaler": DECODE_SCALER})
    if observed is not None:  # record every observation the pools' autoscalers see
        orig = DisaggServiceRun.observe_pool

        def spy(self, pool, window):
            obs = orig(self, pool, window)
            observed.append((pool.name, window, obs))
            return obs

        monkeypatch.setattr(DisaggServiceRun, "observe_pool", spy)
    svc = Service(model="llama-3-70b", gpu_type="H100", tensor_parallel=4, requests=stream,
                  warm_start=True, load_delay_s=0.0, step_time=TICK, max_batch_size=4,
                  **kw)  # fmt: skip
    jobs = svc.prepare(pd.DataFrame(), FOUR_NODES)
    sim = simulate(jobs, FOUR_NODES, FifoPolicy(), processes=svc.processes())
    return svc, sim, svc.run_of(sim)


def decode_heavy(n=120):  # short prompts, long outputs, 2 per second: decode is the bottleneck
    return RequestStream(np.arange(n) * 0.5, [16] * n, [200] * n)


def area(starts, ends, t0, t1):
    """Integral over [t0, t1] of the number of intervals [start, end) that are open."""
    lo, hi = np.maximum(starts, t0), np.minimum(ends, t1)
    return float(np.clip(hi - lo, 0, None).sum())


def test_decode_pool_scales_out_on_its_own_load_and_the_prefill_pool_stays(monkeypatch):
    observed = []
    svc, sim, run = serve(decode_heavy(), observed, monkeypatch)
    f = svc.tables(sim)["requests"]
    assert (f["status"] == "finished").all()
    prefill, decode = run.pools
    # first decision at t = 10: the decode pool's outstanding requests (prefilled, not done)
    # averaged over [0, 10], from the request table
    name, window, obs = observed[0]
    assert name == "decode" and window == 10.0 and obs.now == 10.0
    want = area(f["prefill_end"].to_numpy(), f["end_time"].to_numpy(), 0.0, 10.0) / 10.0
    assert obs.avg_outstanding == pytest.approx(want, rel=1e-12)
    assert obs.max_batch_size == 4 and obs.provisioned == 1
    assert decode.decisions[0] == (10.0, 3, 3)  # ceil(avg / 4 / 0.5) clamped to 3
    assert len(prefill.replicas) == 1 and not prefill.decisions
    used = [r for r in decode.replicas if r.served]
    assert len(used) == 3  # the two new replicas served requests routed to them after t = 10
    s = svc.summary(sim)["serving"]["llm"]["disaggregation"]["pools"]
    assert s["decode"]["autoscaled"] and s["decode"]["replicas"] == 3
    assert s["decode"]["replica_slots"] == 12 and s["decode"]["max_target"] == 3
    assert s["prefill"] == {**s["prefill"], "replicas": 1, "autoscaled": False}


def test_more_decode_replicas_finish_the_same_load_sooner():
    svc, sim, _ = serve(decode_heavy())
    fixed_svc, fixed_sim, _ = serve(decode_heavy(), decode={"replicas": 1})
    end = svc.tables(sim)["requests"]["end_time"].max()
    fixed_end = fixed_svc.tables(fixed_sim)["requests"]["end_time"].max()
    assert end < 0.6 * fixed_end


def test_decode_pool_scales_in_after_the_window_and_drains(monkeypatch):
    # a burst at 0, then one request every 5 s until 200 s: the decode pool goes to 3,
    # then back to 1 once 20 s of decisions want fewer
    arrivals = [0.0] * 40 + list(np.arange(100.0, 200.0, 5.0))
    n = len(arrivals)
    stream = RequestStream(arrivals, [16] * n, [20] * 40 + [4] * (n - 40))
    svc, sim, run = serve(stream)
    decode = run.pools[1]
    targets = [t for _, _, t in decode.decisions]
    assert max(targets) == 3 and 1 in targets[targets.index(3):]
    assert (svc.tables(sim)["requests"]["status"] == "finished").all()
    for rep in run.replicas:
        assert rep.kv_used == 0
    # scale-in waits for the window: no target below the largest desire of the last 20 s
    for k, (t, _, target) in enumerate(decode.decisions):
        window = [d for tt, d, _ in decode.decisions[: k + 1] if tt >= t - 20.0]
        if k and target < decode.decisions[k - 1][2]:
            assert target == max(window)
    assert run.counts["scale_ins"] >= 1


def test_prefill_pool_with_the_slo_policy_counts_first_tokens(monkeypatch):
    observed = []
    scaler = {"policy": "slo", "min_replicas": 1, "max_replicas": 2, "interval_s": 5.0,
              "slo_attainment": 0.9, "queue_high": 2.0, "scale_in_delay_s": 1000.0}  # fmt: skip
    n = 200  # prompt-heavy: 8,192-token prompts (one per 0.1 s iteration), 20 per second
    stream = RequestStream(np.arange(n) * 0.05, [8192] * n, [2] * n)
    svc, sim, run = serve(stream, observed, monkeypatch, prefill={"autoscaler": scaler},
                          decode={"replicas": 1}, ttft_slo_s=0.5)  # fmt: skip
    f = svc.tables(sim)["requests"]
    name, window, obs = observed[0]
    assert name == "prefill" and obs.now == 5.0
    first = f["first_token_time"].to_numpy()
    in_window = (first > 0.0) & (first <= 5.0)
    assert obs.ttft_count == int(in_window.sum())
    assert obs.ttft_met == int((in_window & (f["ttft"].to_numpy() <= 0.5)).sum())
    assert run.pools[0].decisions[0][2] == 2  # attainment missed: one more prefill replica
    assert sum(r.served > 0 for r in run.pools[0].replicas) == 2  # it took requests after 5 s


def test_pool_specs_and_errors():
    spec = PoolSpec.of({"autoscaler": {"_target_": "x", "max_replicas": 5, "min_replicas": 2}})
    assert spec.autoscaler.max_replicas == 5 and spec.slots == 20 and spec.initial == 2
    assert PoolSpec.of({"replicas": 3}).slots == 3
    with pytest.raises(ValueError, match="give each pool its own autoscaler"):
        from simulator.models.serving import Autoscaler

        Service(prefill={"replicas": 1}, decode={"replicas": 1}, autoscaler=Autoscaler())
    with pytest.raises(ValueError, match="replica_slots \\(1\\) is below"):
        Service(prefill={"replicas": 2, "replica_slots": 1}, decode={"replicas": 1})
    with pytest.raises(ValueError, match="decode pool needs replicas >= 1"):
        Service(prefill={"replicas": 1}, decode={"replicas": 0})
