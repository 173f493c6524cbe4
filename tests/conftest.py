"""Shared helpers: tiny traces, a run helper that always checks invariants, the real traces.

Tests that read the public traces find them in :data:`TRACES`: ``$GPUSIM_TRACES`` when set,
else ``../shared/traces`` beside the project (:func:`experiments._cli.default_shared`, the
folder the experiment scripts use). They skip when a file is missing, with the path in the
reason; the end of the run lists those skips (:func:`pytest_terminal_summary`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments._cli import default_shared
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.core.jobs import TERMINAL, Status

TRACES = default_shared()
"""The folder of the public traces: ``$GPUSIM_TRACES``, else ``../shared/traces``."""

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


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """List the tests skipped for want of a real trace under :data:`TRACES`, one line each."""
    folder = str(TRACES)
    skipped = sorted(
        (report.nodeid, reason)
        for report in terminalreporter.stats.get("skipped", [])
        if folder in (reason := _skip_reason(report))
    )
    if not skipped:
        return
    where = "from GPUSIM_TRACES" if os.environ.get("GPUSIM_TRACES") else "the default"
    terminalreporter.write_sep("=", f"{len(skipped)} real-trace tests skipped")
    terminalreporter.write_line(
        f"traces folder: {folder} ({where}; set GPUSIM_TRACES=DIR to use another copy)"
    )
    for nodeid, reason in skipped:
        terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}")
