"""Pending reasons: a policy says why a queued job waits (``Wait``), the run reports it.

Exact scenario on one 8-GPU node, rules in :mod:`simulator.core.pending`: a reason holds from
the pass that gave it until another is given or the job leaves the queue.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_trace

from policies.base import Start, Wait
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import PolicyError, Simulation
from simulator.core.pending import PendingReasons
from simulator.output import metrics

ONE_NODE = ClusterSpec.homogeneous(1, 8, "V100", cpus_per_node=32, memory_gb_per_node=64)
FULL = "no node with 8 free GPUs"
BEHIND = "behind an earlier job"


class ExplainingFifo:
    """Strict FIFO that says why each job it does not start waits."""

    def setup(self, view) -> None:
        self.placer = view.placer()

    def schedule(self, view):
        blocked = False
        for j in list(view.queue.jobs()):
            if blocked:
                yield Wait(j, BEHIND)
                continue
            p = self.placer.place(view.jobs, j)
            if p is None:
                blocked = True
                yield Wait(j, FULL)
            else:
                yield Start(j, p)


def run(policy=None, trace=None, **kw) -> Simulation:
    if trace is None:  # A at 0, B at 10, C at 20; each takes the whole node for 100 s
        trace = make_trace([(0, 0.0, 100.0, 8), (1, 10.0, 100.0, 8), (2, 20.0, 100.0, 8)])
    policy = ExplainingFifo() if policy is None else policy
    return Simulation(trace, ONE_NODE, policy, check_invariants=True, **kw).run()


def test_time_per_reason_is_exact():
    sim = run()
    rows = sim.pending.rows(sim.jobs.job_ids)
    got = {(r.job_id, r.reason): r.seconds for r in rows.itertuples()}
    # B: full node from 10 until A ends at 100. C: behind B from 20 to 100, then the head
    # of the queue on a full node from 100 until B ends at 200
    assert got == {("1", FULL): 90.0, ("2", BEHIND): 80.0, ("2", FULL): 100.0}
    assert list(metrics.job_frame(sim)["pending_reason"]) == ["", FULL, FULL]
    assert sim.pending.summary() == {
        FULL: {"jobs": 2, "seconds": 190.0},
        BEHIND: {"jobs": 0, "seconds": 80.0},
    }


def test_open_reason_is_closed_at_the_cut():
    sim = run(until=50.0)
    rows = sim.pending.rows(sim.jobs.job_ids)
    got = {(r.job_id, r.reason): r.seconds for r in rows.itertuples()}
    assert got == {("1", FULL): 40.0, ("2", BEHIND): 30.0}


def test_policies_without_reasons_report_none():
    from policies.fifo import FifoPolicy

    sim = run(FifoPolicy())
    assert not sim.pending
    assert sim.pending.summary() == {}
    assert (metrics.job_frame(sim)["pending_reason"] == "").all()


class Misbehaving:
    def __init__(self, decision) -> None:
        self.decision = decision

    def schedule(self, view):
        if len(view.queue):
            yield self.decision(view)


@pytest.mark.parametrize(
    ("decision", "match"),
    [
        (lambda v: Wait(7, FULL), "not a job of this run"),
        (lambda v: Wait(v.queue.first(), ""), "not a non-empty text"),
        (lambda v: Wait(v.queue.first(), 3), "not a non-empty text"),
    ],
)
def test_bad_waits_are_refused(decision, match):
    with pytest.raises(PolicyError, match=match):
        run(Misbehaving(decision))


def test_wait_for_a_running_job_is_refused():
    class WaitRunning(ExplainingFifo):
        def schedule(self, view):
            yield from super().schedule(view)
            for j in view.running:
                yield Wait(j, FULL)

    with pytest.raises(PolicyError, match="not queued"):
        run(WaitRunning())


def test_record_rules():
    r = PendingReasons(2)
    r.give(0, "a", 1.0)
    r.give(0, "a", 5.0)  # same reason: the interval keeps running
    r.give(0, "b", 6.0)
    r.close(0, 10.0)
    r.close(0, 11.0)  # nothing open: nothing added
    r.give(0, "a", 20.0)  # waits again after it ran
    r.close_all(21.0)
    assert r.seconds == {(0, 1): 6.0, (0, 2): 4.0}
    assert list(r.last_reasons()) == ["a", ""]
    assert bool(r) and not PendingReasons(1)


def test_reasons_reach_the_run_directory(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from simulator.output.results import load_run

    trace = make_trace([(0, 0.0, 100.0, 8), (1, 10.0, 100.0, 8), (2, 20.0, 100.0, 8)])
    path = tmp_path / "t.csv"
    trace.to_csv(path, index=False)
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "simulator", "+policy._target_=test_pending_reasons.ExplainingFifo",
        "trace=file", f"trace.path={path}", "cluster.num_nodes=1", f"hydra.run.dir={out}",
        "sim.progress=false", "plots=false",
    ]  # fmt: skip
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.getcwd()])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pending_reasons"][FULL] == {"jobs": 2, "seconds": 190.0}
    pending = pd.read_parquet(out / "pending.parquet")
    assert pending["seconds"].sum() == 270.0
    assert np.array_equal(pending["job_id"], ["1", "2", "2"])
    assert list(load_run(out).jobs["pending_reason"]) == ["", FULL, FULL]
