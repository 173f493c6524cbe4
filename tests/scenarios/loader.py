"""Loading the ported KAI / Kueue scenarios (facts from their own test suites) from YAML.

Each file names its source; scenarios are data, so the policies can be run against the same
facts once the engine integration lands (see tests/test_kueue_scenarios.py and
tests/test_kai_scenarios.py).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from policies.kueue.quota import Admitted, Node, Preemption, QuotaTree
from simulator.k8s.quantity import parse_quantity

HERE = Path(__file__).resolve().parent


def load(name: str) -> dict:
    """The YAML scenario file ``tests/scenarios/<name>``."""
    return yaml.safe_load((HERE / name).read_text())


def amount(fr: str, text: str) -> int:
    """Kueue's integer amount: CPU in millicores, everything else in base units."""
    q = parse_quantity(str(text))
    return q.milli_value() if fr.endswith("/cpu") else q.value()


def _fr(key: str) -> tuple[str, str]:
    flavor, res = key.split("/")
    return flavor, res


def kueue_tree(cqs: dict) -> QuotaTree:
    """A :class:`QuotaTree` from the scenario file's ``cluster_queues``."""
    nodes = []
    for name, spec in cqs.items():
        n = Node(name, parent=spec.get("cohort", ""))
        for key, vals in spec.get("quotas", {}).items():
            vals = list(vals) + ["", ""]
            n.nominal[_fr(key)] = amount(key, vals[0])
            if vals[1] != "":
                n.borrowing_limit[_fr(key)] = amount(key, vals[1])
            if vals[2] != "":
                n.lending_limit[_fr(key)] = amount(key, vals[2])
        p = spec.get("preemption", {})
        bwc = p.get("borrowWithinCohort") or {}
        n.preemption = Preemption(
            p.get("withinClusterQueue", "Never"),
            p.get("reclaimWithinCohort", "Never"),
            bwc.get("policy", "Never"),
            bwc.get("maxPriorityThreshold"),
        )
        nodes.append(n)
    return QuotaTree(nodes)


def kueue_workload(
    name: str, priority: int, cq: str, usage: dict, extra: dict | None = None
) -> Admitted:
    """An :class:`Admitted` workload from a scenario row."""
    extra = extra or {}
    return Admitted(
        name,
        cq,
        {_fr(k): amount(k, v) for k, v in usage.items()},
        priority=priority,
        admitted_at=float(extra.get("admitted_at", 0)),
        created=float(extra.get("created", 0)),
        evicted=bool(extra.get("evicted", False)),
    )
