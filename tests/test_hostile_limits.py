"""Huge inputs: the memory estimate and fail-fast check, a 100k-GPU cluster, time limits."""

from __future__ import annotations

import math
import signal
import threading
import time

import pandas as pd
import pytest

from experiments.memory_limits import measure_peak
from policies.gang import GangPolicy
from simulator import limits
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.limits import (
    BASE_BYTES,
    BYTES_PER_EVENT_JOB,
    BYTES_PER_GPU,
    BYTES_PER_JOB,
    BYTES_PER_NODE,
    MemoryLimitError,
    TimeLimitError,
    check,
    check_cluster,
    estimate_bytes,
    memory_available,
    time_limit,
)
from traces.synthetic import generate

GIB = 2**30


def test_estimate_is_the_linear_model():
    assert estimate_bytes(0, 0, 0) == BASE_BYTES
    assert estimate_bytes(1000, 10, 8) == BASE_BYTES + 1000 * BYTES_PER_JOB + 10 * (
        BYTES_PER_NODE + 8 * BYTES_PER_GPU
    )
    assert estimate_bytes(1000, 1, 1, record_events=True) - estimate_bytes(1000, 1, 1) == (
        1000 * BYTES_PER_EVENT_JOB
    )
    assert estimate_bytes(1000, 1, 1, include_trace=True) > estimate_bytes(1000, 1, 1)


def test_the_documented_limits_for_24_gib():
    # docs/robustness.md: 10M jobs on 100k GPUs fit in 24 GiB (8.3 GB with the trace); the
    # check lets about 33M jobs through (28M counting the trace itself)
    ten_million = estimate_bytes(10_000_000, 12_500, 8, include_trace=True)
    assert ten_million == pytest.approx(8.3e9, rel=0.01)
    assert check(10_000_000, 12_500, 8, available_bytes=24 * GIB) > 7e9
    assert check(32_000_000, 12_500, 8, available_bytes=24 * GIB) < 0.9 * 24 * GIB
    with pytest.raises(MemoryLimitError):
        check(34_000_000, 12_500, 8, available_bytes=24 * GIB)
    # the cluster is never the problem: 100k GPUs cost megabytes
    assert estimate_bytes(0, 12_500, 8) - BASE_BYTES < 10 * 2**20


def test_check_fails_fast_with_a_clear_message():
    t0 = time.perf_counter()
    with pytest.raises(MemoryLimitError) as err:
        check(10**12, 10**6, 8, available_bytes=16 * GIB)
    assert time.perf_counter() - t0 < 0.1  # nothing was built
    assert isinstance(err.value, MemoryError)
    message = str(err.value)
    assert message.startswith("not enough memory: 1,000,000,000,000 jobs on 1,000,000 nodes x 8")
    assert "16.0 GiB available" in message and "~700 bytes per job" in message
    assert "trace.max_jobs" in message and "\n" not in message
    fits = int(message.split("about ")[-1].split(" jobs would fit")[0].replace(",", ""))
    assert check(fits, 10**6, 8, available_bytes=16 * GIB) <= 0.9 * 16 * GIB
    with pytest.raises(MemoryLimitError, match="turn off sim.record_events"):
        check(10**9, 1, 8, available_bytes=GIB, record_events=True)


def test_check_passes_small_runs_and_unknown_memory(monkeypatch):
    assert check(1000, 4, 8, available_bytes=GIB) == estimate_bytes(1000, 4, 8)
    monkeypatch.setattr(limits, "memory_available", lambda: None)
    assert check(10**12, 1, 1) == estimate_bytes(10**12, 1, 1)  # cannot tell: run


@pytest.mark.parametrize(
    "args",
    [(-1, 1, 1), (1, -1, 1), (1, 1, math.nan), (math.inf, 1, 1), (True, 1, 1), ("10", 1, 1)],
)
def test_bad_counts_are_value_errors(args):
    with pytest.raises(ValueError, match="limits: "):
        estimate_bytes(*args)


@pytest.mark.parametrize("fraction", [0, 1.5, math.nan, "0.5"])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        check(1, 1, 1, available_bytes=GIB, fraction=fraction)


def test_memory_available_reads_meminfo_and_cgroup(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemAvailable:   23745184 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert memory_available(meminfo, cgroup) == 23745184 * 1024
    (cgroup / "memory.max").write_text("max\n")
    assert memory_available(meminfo, cgroup) == 23745184 * 1024
    (cgroup / "memory.max").write_text(f"{8 * GIB}\n")
    (cgroup / "memory.current").write_text(f"{GIB}\n")
    assert memory_available(meminfo, cgroup) == 7 * GIB  # the container's limit is lower
    assert memory_available(tmp_path / "missing", tmp_path / "none") is None
    meminfo.write_text("garbage")
    assert memory_available(meminfo, tmp_path / "none") is None
    real = memory_available()
    assert real is None or real > 0


def test_check_cluster_uses_the_largest_node():
    cluster = ClusterSpec.from_groups(
        [
            {"count": 3, "num_gpus": 2, "gpu_type": "T4"},
            {"count": 1, "num_gpus": 8, "gpu_type": "H100"},
        ]
    )
    assert check_cluster(100, cluster, available_bytes=GIB) == estimate_bytes(100, 4, 8)


def test_estimate_bounds_a_measured_run():
    # a real run in a fresh process (peak resident set rise from building the simulation to
    # writing its results): the estimate must cover it without being wildly pessimistic
    n = 200_000
    measured = measure_peak(n, 64, 8)
    estimate = estimate_bytes(n, 64, 8)
    assert 0.5 * estimate < measured <= estimate, (measured, estimate)


def test_a_cluster_of_100k_gpus_runs():
    cluster = ClusterSpec.homogeneous(12_500, 8, "H100", nodes_per_rack=32)
    assert cluster.total_gpus == 100_000
    trace = generate(2000, cluster.total_gpus, load=0.5, seed=0)
    check_cluster(len(trace), cluster)
    with time_limit(120):
        sim = Simulation(trace, cluster, GangPolicy()).run()
    assert (sim.jobs.status == 3).all()


def test_a_job_larger_than_int32_gpus_is_unschedulable():
    trace = pd.DataFrame(
        {"job_id": [0], "submit_time": [0.0], "duration": [5.0], "num_gpus": [2**32 + 1]}
    )
    sim = Simulation(trace, ClusterSpec.homogeneous(1, 8, "V100"), GangPolicy()).run()
    assert int(sim.jobs.num_gpus[0]) == 2**32 + 1
    assert sim.jobs.status[0] == 4  # unschedulable


def test_time_limit_interrupts_a_hang_and_restores_the_handler():
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(TimeLimitError, match="longer than 0.2 s"):
        with time_limit(0.2):
            while True:
                pass
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with time_limit(5):
        time.sleep(0.01)  # a quick block is untouched
    with pytest.raises(ValueError, match="seconds must be > 0"):
        with time_limit(0):
            pass


def test_time_limit_is_a_no_op_off_the_main_thread():
    done = []

    def worker():
        with time_limit(0.01):
            time.sleep(0.05)
        done.append(True)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert done == [True]
