"""The fast placement path (bucket index, trusted placements) gives the reference results."""

import numpy as np
import pandas as pd
import pytest

from policies.fifo import FifoPolicy
from policies.gang import GangPolicy
from simulator.core.cluster import ClusterSpec
from simulator.core.engine import Simulation
from simulator.output.metrics import job_frame
from traces.synthetic import generate


@pytest.mark.parametrize("policy", [FifoPolicy, GangPolicy])
@pytest.mark.parametrize("scoring", ["bestfit", "spread", "firstfit"])
def test_indexed_placement_equals_reference_scan(policy, scoring):
    trace = generate(3_000, cluster_gpus=16 * 8, load=1.1, seed=11)
    trace["num_cpus"] = np.where(np.arange(len(trace)) % 3 == 0, 40.0, 4.0)
    cluster = ClusterSpec.homogeneous(16, 8, "A100", cpus_per_node=96, nodes_per_rack=4)
    frames = []
    for indexed in (True, False):
        sim = Simulation(
            trace, cluster, policy(scoring=scoring, indexed=indexed), check_invariants=indexed
        ).run()
        frames.append(job_frame(sim))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert (frames[0]["status"] == "finished").all()
