"""Replicas as cluster jobs: preemption of training under priority, replica loss, wiring."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_trace, simulate
from hydra.utils import instantiate
from omegaconf import OmegaConf

from policies.fifo import FifoPolicy
from policies.priority import PriorityPolicy
from simulator.core import extensions
from simulator.core.cluster import ClusterSpec
from simulator.models.serving import (
    Autoscaler,
    NoServing,
    RequestStream,
    Service,
    ServingGroup,
    TableStepTime,
)
from simulator.output.metrics import job_frame

TICK = TableStepTime([1], [0.1])
Priority = PriorityPolicy  # replicas at priority 100 with non_preemptible_threshold=100
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "serving"


def _replica_preempts_training():
    """One 8-GPU node training from t=0; three requests; a 4-GPU replica at priority 100."""
    cluster = ClusterSpec.homogeneous(1, 8, "H100")
    train = make_trace([("train", 0.0, 1000.0, 8)], priority=0)
    svc = Service(
        requests=RequestStream([5.0, 6.0, 7.0], [8, 8, 8], [10, 10, 10]),
        step_time=TICK,
        tensor_parallel=4,
        priority=100,
        load_delay_s=30.0,
        autoscaler=Autoscaler(min_replicas=0, max_replicas=1, interval_s=10.0),
    )
    jobs = svc.prepare(train, cluster)
    sim = simulate(
        jobs, cluster, Priority(non_preemptible_threshold=100), processes=svc.processes()
    )
    return svc, sim


def test_replica_preempts_training_under_priority_and_training_resumes():
    # One 8-GPU node runs an 8-GPU training job from t=0. Requests arrive at 5, 6, 7 s; the
    # service starts with no replica and decides every 10 s: at 10 it wants one 4-GPU replica,
    # which preempts the training job, loads for 30 s, serves all three requests from 40 s
    # (10 iterations of 0.1 s) and stops at 41 s when they are done; training restarts then
    # and needs its remaining 990 s.
    svc, sim = _replica_preempts_training()
    events = [(round(t, 9), j, e) for t, j, e in sim.events]
    assert events == [
        (0.0, "train", "arrive"),
        (0.0, "train", "start"),
        (10.0, "llm-replica-0", "arrive"),
        (10.0, "train", "preempt"),
        (10.0, "llm-replica-0", "start"),
        (41.0, "llm-replica-0", "finish"),
        (41.0, "train", "start"),
        (1031.0, "train", "finish"),
    ]
    f = svc.tables(sim)["requests"]
    np.testing.assert_allclose(f["queueing_delay"], [35.0, 34.0, 33.0])
    np.testing.assert_allclose(f["ttft"], [35.1, 34.1, 33.1])
    jf = job_frame(sim).set_index("job_id")
    assert jf.loc["train", "preemptions"] == 1 and jf.loc["train", "jct"] == pytest.approx(1031)
    # unused replica rows are never submitted: the engine reports them as dormant
    assert jf.loc["llm-replica-1", "status"] == "dormant"
    s = svc.summary(sim)["serving"]["llm"]
    assert s["replicas_started"] == 1 and s["replica_jobs_unused"] == 3


def test_node_failure_loses_the_replica_and_requests_start_over():
    # 2 nodes x 4 GPUs, one 4-GPU replica on node 0 (load 5 s, warm at t=0). Node 0 fails at
    # 1.05 s: the engine restarts the replica job on node 1 at once; the service hears of the
    # stop and the new start in the same instant (engine notices, no polling), the new
    # placement loads for 5 s from its start (ready 6.05 s) and serves the request again from
    # scratch (3 s of iterations: prefill + 29 decodes).
    cluster = ClusterSpec.homogeneous(2, 4, "H100", nodes_per_rack=1)
    svc = Service(
        requests=RequestStream([0.0], [8], [30]),
        step_time=TICK,
        tensor_parallel=4,
        warm_start=True,
        load_delay_s=5.0,
    )

    def fail(sim):
        yield sim.env.timeout(1.05)
        sim.fail_node(0)

    sim = simulate(
        svc.prepare(pd.DataFrame(), cluster),
        cluster,
        FifoPolicy(),
        processes=(*svc.processes(), fail),
    )
    run = svc.run_of(sim)
    rep = [(round(t, 9), e) for t, s, e in run.events if s == "replica-0"]
    assert rep == [
        (0, "submit"),
        (0, "placed"),
        (0, "ready"),
        (1.05, "lost"),
        (1.05, "placed"),
        (6.05, "ready"),
        (9.05, "stop"),
    ]
    f = svc.tables(sim)["requests"]
    assert f["restarts"].tolist() == [1]
    assert f["ttft"].iloc[0] == pytest.approx(0.1)  # the first token was already seen
    assert f["end_time"].iloc[0] == pytest.approx(9.05)
    assert svc.summary(sim)["serving"]["llm"]["replica_losses"] == 1


def test_trace_infer_rows_become_requests_and_group_reports_per_service():
    cluster = ClusterSpec.homogeneous(2, 8, "H100")
    trace = make_trace(
        [
            (0, 0.0, 50.0, 8, "train", np.nan, np.nan),
            (1, 0.5, 1.0, 1, "infer", 100, 5),
            (2, 0.7, 1.0, 1, "infer", 200, 3),
        ],
        columns="job_id submit_time duration num_gpus kind prompt_tokens output_tokens",
    )
    a = Service(name="a", step_time=TICK, warm_start=True, tpot_slo_s=0.2)
    b = Service(
        name="b",
        requests=RequestStream([0.2], [8], [2]),
        step_time=TICK,
        warm_start=True,
        tensor_parallel=2,
        router="round_robin",
    )
    group = ServingGroup([a, b])
    jobs = group.prepare(trace, cluster)
    # infer rows out; integer ids after the trace's for each service's replica row
    assert jobs["job_id"].tolist() == [0, 3, 4]
    sim = simulate(jobs, cluster, FifoPolicy(), processes=extensions.processes([group]))
    f = group.tables(sim)["requests"]
    assert f["service"].tolist() == ["a", "a", "b"]
    np.testing.assert_allclose(f["e2e_latency"], [0.5, 0.3, 0.2])
    s = group.summary(sim)["serving"]
    assert s["a"]["finished"] == 2 and s["b"]["finished"] == 1 and s["a"]["slo_attainment"] == 1
    cols = group.job_columns(sim)
    assert cols["service"].tolist() == ["", "a", "b"]
    assert cols["served_requests"].tolist() == [0, 2, 1]
    jf = job_frame(sim)
    extensions.collect_outputs([group], sim, jf, {}, {})
    assert jf["service"].tolist() == ["", "a", "b"]


def test_configs_build_and_none_has_no_protocol_methods():
    none = instantiate(OmegaConf.load(CONFIGS / "none.yaml"), _convert_="all")
    assert isinstance(none, NoServing)
    for method in ("prepare", "processes", "job_columns", "summary", "tables", "on_start"):
        assert not hasattr(none, method)
    built = {}
    for path in sorted(CONFIGS.glob("*.yaml")):
        built[path.stem] = instantiate(OmegaConf.load(path), _convert_="all")
    conv = built["azure_conv"]
    assert isinstance(conv, Service) and conv.autoscaler.max_replicas == 8
    # the chat config serves the bundled Azure sample on a 2 x 8 H100 cluster
    cluster = ClusterSpec.homogeneous(2, 8, "H100")
    jobs = conv.prepare(pd.DataFrame(), cluster)
    assert len(jobs) == conv.replica_slots and np.isinf(jobs["submit_time"]).all()
    sim = simulate(
        jobs,
        cluster,
        Priority(non_preemptible_threshold=100),
        processes=conv.processes(),
        check_invariants=False,
    )
    s = conv.summary(sim)["serving"]["chat"]
    assert s["requests"] == 2000 and s["finished"] == 2000
    tables = conv.tables(sim)
    assert set(tables) == {"requests", "replicas"}
    assert {"ttft", "tpot", "e2e_latency", "queueing_delay", "replica"} <= set(tables["requests"])


def test_replica_is_admitted_once_and_never_preempted_at_the_threshold():
    # The engine's arrival scan must not admit a submitted replica row again when a training
    # job arrives later; the policy still starts the replica. The
    # training job's priority (500) is higher, but replicas (100) are non-preemptible.
    cluster = ClusterSpec.homogeneous(1, 4, "H100")
    train = make_trace([("big", 1.0, 10.0, 4)], priority=500)
    svc = Service(
        requests=RequestStream([0.0, 2.0], [8, 8], [30, 30]),
        step_time=TICK,
        tensor_parallel=4,
        priority=100,
        warm_start=True,
    )
    sim = simulate(
        svc.prepare(train, cluster),
        cluster,
        Priority(non_preemptible_threshold=100),
        processes=svc.processes(),
    )
    assert [(t, j, e) for t, j, e in sim.events if j == "llm-replica-0"] == [
        (0, "llm-replica-0", "arrive"),
        (0, "llm-replica-0", "start"),
        (5.0, "llm-replica-0", "finish"),
    ]
    assert not any(e == "preempt" for _, _, e in sim.events)
    assert [(t, e) for t, j, e in sim.events if j == "big"] == [
        (1.0, "arrive"),
        (5.0, "start"),
        (15.0, "finish"),
    ]


def test_replica_rows_carry_the_time_they_were_submitted():
    # issue 18 item 8: replica rows are dormant (submit_time = inf) until the autoscaler submits
    # them; jobs.parquet gives that time, so start >= submit and wait_time is finite. The first
    # replica is submitted at 0, the second when the queue grows at the 10 s decision; the
    # other slots are never submitted and keep inf (status dormant, no start).
    cluster = ClusterSpec.homogeneous(2, 4, "H100")
    svc = Service(
        requests=RequestStream([0.0] + [9.0] * 40, [8] * 41, [200] * 41),
        step_time=TICK,
        tensor_parallel=4,
        warm_start=True,
        max_batch_size=1,
        autoscaler=Autoscaler(min_replicas=1, max_replicas=2, interval_s=10.0, queue_high=1.0),
    )
    sim = simulate(
        svc.prepare(pd.DataFrame(), cluster), cluster, FifoPolicy(), processes=svc.processes()
    )
    jf = job_frame(sim).set_index("job_id")
    started = jf[jf["start_time"].notna()]
    assert len(started) == 2, jf[["submit_time", "start_time", "status"]]
    assert (started["start_time"] >= started["submit_time"]).all()
    assert started["submit_time"].tolist() == [0.0, 10.0]
    assert np.isfinite(started["wait_time"]).all()
    spare = jf[jf["status"] == "dormant"]
    assert len(spare) and np.isinf(spare["submit_time"]).all() and spare["start_time"].isna().all()


def test_trace_job_id_equal_to_a_replica_id_is_refused():
    # issue 18 item 8: a trace job named like a replica row gave two rows with one job_id
    cluster = ClusterSpec.homogeneous(1, 8, "H100")
    trace = make_trace([("a", 0.0, 5.0, 1), ("llm-replica-2", 1.0, 5.0, 1)])
    svc = Service(requests=RequestStream([0.0], [8], [3]), step_time=TICK, replica_slots=4)
    with pytest.raises(
        ValueError,
        match=r"service 'llm': trace job id 'llm-replica-2' \(row 1\) is also the id of the "
        r"service's 4 replica rows \(llm-replica-0 to llm-replica-3\); rename that trace job",
    ):
        svc.prepare(trace, cluster)
    one = Service(requests=RequestStream([0.0], [8], [3]), step_time=TICK)
    with pytest.raises(ValueError, match=r"'llm-replica-0' \(row 0\) is also the id of the "):
        one.prepare(make_trace([("llm-replica-0", 1.0, 5.0, 1)]), cluster)
    # another service name, or integer ids (replicas numbered after the largest), are fine
    renamed = Service(name="chat", requests=RequestStream([0.0], [8], [3]), step_time=TICK)
    assert renamed.prepare(trace, cluster)["job_id"].is_unique
    ints = make_trace([(0, 0.0, 5.0, 1), (7, 1.0, 5.0, 1)])
    assert svc.prepare(ints, cluster)["job_id"].tolist() == [0, 7, 8, 9, 10, 11]


def test_extension_rows_with_a_duplicate_job_id_are_refused():
    class Adds:
        def prepare(self, trace, cluster):
            return pd.concat([trace, trace.iloc[[1]]], ignore_index=True)

    trace = make_trace([("a", 0.0, 5.0, 1), ("b", 1.0, 5.0, 1)])
    with pytest.raises(ValueError, match=r"Adds: job id 'b' is used by two rows of the trace"):
        extensions.prepare_trace([Adds()], trace, ClusterSpec.homogeneous(1, 8, "H100"))


def test_printed_summary_has_a_serving_line_and_counts_dormant_replica_slots():
    # issue 17: the printed summary hid unfinished jobs and, with serving, the replica slots
    # never used; it had no serving line at all
    from simulator.app import format_summary
    from simulator.output.metrics import summary

    svc, sim = _replica_preempts_training()
    s = {**summary(sim), **svc.summary(sim), "policy": "priority", "cluster": "1 node"}
    text = format_summary(s)
    assert s["jobs_dormant"] == 3
    assert "3 dormant (replica slots never used)" in text
    line = next(row for row in text.splitlines() if row.startswith("serving llm"))
    assert "3 / 3 requests" in line and "SLO met" in line and "p99 TTFT" in line
