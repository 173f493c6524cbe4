"""Prefill/decode disaggregation: KV transfer time, the handoff's event log, ingress queueing."""

import numpy as np
import pandas as pd
from conftest import simulate

from policies.fifo import FifoPolicy
from simulator.core.cluster import ClusterSpec
from simulator.models.serving import RequestStream, Service, SyntheticRequests, TableStepTime

TICK = TableStepTime([1], [0.1])  # every iteration takes 0.1 s
TWO_NODES = ClusterSpec.homogeneous(2, 4, "H100")  # one TP-4 replica per node
KV_70B = 2 * 80 * 8 * 128 * 2  # bytes per token: 2 x layers x kv heads x head dim x bf16


def serve(stream, cluster=TWO_NODES, **kw):
    kw.setdefault("step_time", TICK)
    kw.setdefault("prefill", {"replicas": 1})
    kw.setdefault("decode", {"replicas": 1})
    svc = Service(model="llama-3-70b", gpu_type="H100", tensor_parallel=4, requests=stream,
                  warm_start=True, kv_transfer_gb_per_s=50.0, kv_transfer_latency_s=0.001,
                  **kw)  # fmt: skip
    jobs = svc.prepare(pd.DataFrame(), cluster)
    sim = simulate(jobs, cluster, FifoPolicy(), processes=svc.processes())
    return svc, sim, svc.run_of(sim)


def test_kv_transfer_time_of_one_request_is_analytic():
    svc, sim, run = serve(RequestStream([0.0], [4096], [2]))
    assert svc.model.kv_bytes_per_token == KV_70B
    f = svc.tables(sim)["requests"]
    assert f["kv_transfer_bytes"][0] == KV_70B * 4096
    assert f["kv_transfer_s"][0] == 0.001 + KV_70B * 4096 / 50e9  # 0.0278435456 s
    s = svc.summary(sim)["serving"]["llm"]["disaggregation"]
    assert s["transfers"] == 1 and s["avg_kv_transfer_s"] == f["kv_transfer_s"][0]


def test_same_node_uses_the_intra_node_bandwidth():
    one_node = ClusterSpec.homogeneous(1, 8, "H100")
    svc, sim, run = serve(RequestStream([0.0], [4096], [2]), cluster=one_node)
    f = svc.tables(sim)["requests"]
    assert f["kv_transfer_s"][0] == 0.001 + KV_70B * 4096 / 450e9


def test_handoff_exact_log_and_second_transfer_queues():
    # both prefill in one 0.1 s iteration (8,192 tokens); token 1 at 0.1 (Splitwise: TTFT).
    # r0's transfer 0.1 -> 0.1 + d; r1's waits on the decode ingress: 0.1 + d -> 0.1 + 2d.
    # r0 joins the decode batch at 0.1 + d, 2 more tokens: ends 0.3 + d; r1 arrives during
    # r0's first decode step, joins at its end (0.2 + d), 2 tokens: ends 0.4 + d.
    svc, sim, run = serve(RequestStream([0.0, 0.0], [4096, 4096], [3, 3]))
    d = 0.001 + KV_70B * 4096 / 50e9
    log = [(t, s, e) for t, s, e in run.events if isinstance(s, int)]
    expect = [
        (0.0, 0, "arrive"), (0.0, 1, "arrive"),
        (0.0, 0, "route prefill-0"), (0.0, 1, "route prefill-0"),
        (0.0, 0, "admit"), (0.0, 1, "admit"),
        (0.1, 0, "first_token"), (0.1, 1, "first_token"),
        (0.1, 0, "prefill_end"), (0.1, 0, "route decode-0"), (0.1, 0, "transfer_start"),
        (0.1, 1, "prefill_end"), (0.1, 1, "route decode-0"),
        (0.1 + d, 0, "transfer_end"), (0.1 + d, 1, "transfer_start"), (0.1 + d, 0, "decode_admit"),
        (0.1 + d + d, 1, "transfer_end"),
        (0.2 + d, 1, "decode_admit"),
        (0.3 + d, 0, "finish"),
        (0.4 + d, 1, "finish"),
    ]  # fmt: skip
    assert [(s, e) for _, s, e in log] == [(s, e) for _, s, e in expect]
    times = [t for t, _, _ in expect]
    np.testing.assert_allclose([t for t, _, _ in log], times, rtol=0, atol=1e-12)
    f = svc.tables(sim)["requests"]
    np.testing.assert_allclose(f["ttft"], [0.1, 0.1])
    np.testing.assert_allclose(f["transfer_wait_s"], [0.0, d], atol=1e-12)


def test_invariants_on_a_random_load():
    stream = SyntheticRequests(rate=8.0, num_requests=300, seed=3,
                               prompt={"kind": "lognormal", "mean": 2048, "cv": 1.0, "low": 1,
                                       "high": 8192},
                               output={"kind": "lognormal", "mean": 128, "cv": 1.0, "low": 1,
                                       "high": 1024})  # fmt: skip
    cluster = ClusterSpec.homogeneous(4, 4, "H100")
    svc, sim, run = serve(stream, cluster=cluster, step_time=None,
                          prefill={"replicas": 2}, decode={"replicas": 2},
                          max_batch_size=32)  # fmt: skip
    f = svc.tables(sim)["requests"]
    assert (f["status"] == "finished").all()
    assert run.done == run.n
    many = f["output_tokens"] > 1
    assert (f["transfer_start"][many] >= f["prefill_end"][many]).all()
    assert (f["transfer_end"][many] > f["transfer_start"][many]).all()
    assert (f["end_time"] >= f["first_token_time"]).all()
    assert f["transfer_start"][~many].isna().all()
    for rep in run.replicas:  # everything released at the end
        assert rep.kv_used == 0
    served = svc.summary(sim)["serving"]["llm"]["disaggregation"]["pools"]
    assert served["prefill"]["served"] == run.n
    assert served["decode"]["served"] == int(many.sum())


def test_kv_never_exceeds_capacity(monkeypatch):
    from simulator.models.serving.disagg import DecodeReplica, PrefillReplica

    seen = []
    for cls in (DecodeReplica, PrefillReplica):
        orig = cls._compose

        def checked(self, now, _orig=orig):
            assert 0 <= self.kv_used <= self.kv_capacity
            seen.append(self.kv_used)
            _orig(self, now)

        monkeypatch.setattr(cls, "_compose", checked)
    stream = RequestStream(np.linspace(0, 2, 60), [6000] * 60, [400] * 60)
    svc, sim, run = serve(stream, gpu_memory_utilization=0.5)
    assert max(seen) > 0
    assert (svc.tables(sim)["requests"]["status"] == "finished").all()
