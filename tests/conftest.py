"""Shared helpers: tiny traces and a run helper that always checks invariants."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.core.jobs import TERMINAL, Status

# subprocesses (``python -m simulator`` from a temporary directory) import this checkout,
# not whichever copy of the project happens to be installed
_ROOT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _ROOT)]
)


def make_trace(
    rows: list[tuple], columns: str = "job_id submit_time duration num_gpus", **extra
) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns.split())
    for k, v in extra.items():
        df[k] = v
    return df


def simulate(trace: pd.DataFrame, cluster: ClusterSpec, policy, **kw) -> Simulation:
    kw.setdefault("check_invariants", True)
    kw.setdefault("record_events", True)
    sim = Simulation(trace, cluster, policy, **kw).run()
    check_outcome(sim)
    return sim


def check_outcome(sim: Simulation) -> None:
    """Invariants every finished run must satisfy."""
    jobs = sim.jobs
    assert np.isin(jobs.status, TERMINAL).all(), "a job did not reach a terminal state"
    fin = (jobs.status == Status.FINISHED) & ~np.isnan(jobs.start)  # (not a withdrawn replica)
    assert (jobs.start[fin] >= jobs.submit[fin] - 1e-9).all()
    assert (jobs.end[fin] >= jobs.start[fin]).all()
    never = jobs.status == Status.UNSCHEDULABLE
    assert np.isnan(jobs.start[never]).all() and np.isnan(jobs.end[never]).all()
    st = sim.state
    idle = st.free_gpu_total == st.total_gpus and st.allocated_milli == 0
    assert idle or sim.until or sim.interrupted


@pytest.fixture
def small_cluster() -> ClusterSpec:
    return ClusterSpec.homogeneous(2, 8, "V100", nodes_per_rack=1)
