"""A replica's ``load`` (what routers read) always equals its ``outstanding`` requests.

``outstanding`` is the definition (requests queued, in the batch, holding KV for a transfer, in
an ingress queue or in transfer, per replica kind); ``load`` is the count kept at each change so
that routing does not call a property per replica. Checked after every iteration of every replica
of random runs of each kind: plain, prefix caching, KV preemption, disaggregated, and with
replica losses.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import simulate

from policies.priority import PriorityPolicy
from simulator.core.cluster import ClusterSpec
from simulator.models.serving import Service, SyntheticRequests
from simulator.models.serving.replica import Replica

PROMPT = {"kind": "lognormal", "mean": 1024, "cv": 1.0, "low": 1, "high": 4096}
OUTPUT = {"kind": "lognormal", "mean": 64, "cv": 1.0, "low": 1, "high": 512}


@pytest.fixture
def checked(monkeypatch):
    seen = {"checks": 0}
    orig = Replica._on_end

    def on_end(self, version):
        orig(self, version)
        for rep in self.run.replicas:
            assert rep.load == rep.outstanding, (type(rep).__name__, rep.slot)
            seen["checks"] += 1

    monkeypatch.setattr(Replica, "_on_end", on_end)
    return seen


KINDS = {
    "plain": {"replicas": 3},
    "prefix_cache": {"replicas": 3, "prefix_cache": True, "router": "prefix_affinity"},
    "kv_preemption": {"replicas": 3, "kv_preemption": True, "gpu_memory_utilization": 0.55},
    "disaggregated": {"prefill": {"replicas": 2}, "decode": {"replicas": 2}},
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("seed", [0, 1])
def test_load_is_outstanding(checked, kind, seed):
    prefix = {"groups": 8, "tokens": 512} if kind == "prefix_cache" else None
    stream = SyntheticRequests(rate=20.0, num_requests=300, seed=seed, prompt=PROMPT,
                               output=OUTPUT, prefix=prefix)  # fmt: skip
    cluster = ClusterSpec.homogeneous(4, 8, "H100")
    svc = Service(model="llama-3-8b", gpu_type="H100", tensor_parallel=2, requests=stream,
                  warm_start=True, max_batch_size=16, **KINDS[kind])  # fmt: skip
    jobs = svc.prepare(pd.DataFrame(), cluster)
    if seed == 1:  # a training gang of higher priority takes replicas' GPUs away mid-run
        gang = pd.DataFrame({"job_id": ["t"], "submit_time": [5.0], "duration": [5.0],
                             "num_gpus": [32], "priority": [1000]})  # fmt: skip
        jobs = pd.concat([gang, jobs], ignore_index=True)
    sim = simulate(jobs, cluster, PriorityPolicy(), processes=svc.processes())
    run = svc.run_of(sim)
    assert checked["checks"] > 100
    assert run.done == run.n
    if seed == 1:
        assert run.counts["replica_losses"] > 0
    assert all(rep.load == 0 for rep in run.replicas)
    assert np.isin(svc.tables(sim)["requests"]["status"], ["finished", "rejected"]).all()
