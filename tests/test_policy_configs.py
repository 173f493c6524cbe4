"""Every policy config: composes with Hydra, matches its class's defaults, runs a scenario."""

import inspect
from pathlib import Path

import pytest
import yaml
from conftest import make_trace, simulate
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate

from simulator.core.cluster import ClusterSpec

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NEW = [
    "sjf",
    "srtf",
    "backfill",
    "tiresias",
    "fair",
    "priority",
    "fgd",
    "binpack",
    "spread",
    "consolidate",
    "gavel_maxmin",
    "gavel_ftf",
    "gavel_maxsum",
    "hetero_greedy",
]


def compose_policy(name, *overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=[f"+policy={name}", *overrides])
    return instantiate(cfg.policy, _convert_="all")


@pytest.mark.parametrize("name", NEW)
def test_config_lists_every_parameter_with_the_class_default_and_a_comment(name):
    path = CONFIGS / "policy" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    cls = get_class(data.pop("_target_"))
    params = {
        p.name: p.default
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self"
    }
    assert set(data) == set(params), f"{name}: config keys differ from {cls.__name__}()"
    preset = {"spread": {"scoring"}}.get(name, set())  # the point of that preset
    for key, value in data.items():
        if key in preset:
            continue
        default = params[key]
        if isinstance(default, tuple):
            default = list(default)
        assert value == default, f"{name}.{key}: config {value!r} != class default {default!r}"
    for line in path.read_text().splitlines():
        if line and not line.startswith((" ", "#", "_target_")):
            assert "#" in line, f"{name}: {line!r} has no comment"


@pytest.mark.parametrize("name", NEW)
def test_config_runs_a_small_trace(name):
    policy = compose_policy(name)
    cluster = ClusterSpec.homogeneous(2, 4, "V100", cpus_per_node=32, nodes_per_rack=1)
    trace = make_trace(
        [(i, i * 3.0, 20.0 + 7 * (i % 5), [1, 2, 4, 1, 3][i % 5]) for i in range(20)],
        queue=["x", "y"] * 10,
        priority=[i % 3 for i in range(20)],
        num_cpus=[2.0] * 20,
    )
    sim = simulate(trace, cluster, policy, migration_overhead=1.0, checkpoint_interval=5.0)
    assert (sim.jobs.status == 3).all()


def test_binpack_and_spread_place_differently():
    cluster = ClusterSpec.homogeneous(2, 4, "V100", nodes_per_rack=1)
    trace = make_trace([(1, 0, 10, 1), (2, 0, 10, 1)])
    packed = simulate(trace, cluster, compose_policy("binpack"))
    spread = simulate(trace, cluster, compose_policy("spread"))
    assert [list(n) for n in packed.jobs.nodes_used] == [[0], [0]]
    assert [list(n) for n in spread.jobs.nodes_used] == [[0], [1]]
    # the same knob works under any ordering policy
    sjf_spread = simulate(trace, cluster, compose_policy("sjf", "policy.scoring=spread"))
    assert [list(n) for n in sjf_spread.jobs.nodes_used] == [[0], [1]]


def _fail_and_repair(sim, node, down, up):
    yield sim.env.timeout(down)
    sim.fail_node(node)
    yield sim.env.timeout(up - down)
    sim.repair_node(node)


@pytest.mark.parametrize("name", NEW)
def test_jobs_killed_by_a_node_failure_are_rescheduled(name):
    # node 0 fails at t=5 (its jobs are killed and requeued by the engine, not by the policy)
    # and comes back at t=30: every job must still finish, none may start on the dead node.
    from simulator.core.engine import Simulation

    policy = compose_policy(name)
    cluster = ClusterSpec.homogeneous(2, 4, "V100", cpus_per_node=32, nodes_per_rack=1)
    trace = make_trace(
        [(i, float(i), 20.0, [1, 2, 4][i % 3]) for i in range(12)],
        queue=["x", "y"] * 6,
        num_cpus=[2.0] * 12,
    )
    sim = Simulation(trace, cluster, policy, record_events=True, check_invariants=True)
    sim.env.process(_fail_and_repair(sim, 0, 5.0, 30.0))
    sim.run()
    assert (sim.jobs.status == 3).all(), name
    killed = {j for t, j, what in sim.events if what == "killed"}
    assert killed, "the failure should hit running jobs"
