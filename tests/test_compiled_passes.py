"""Every compiled pass makes the same decisions as its Python reference (``schedule``).

Each scenario of ``tests/oracle.py`` (random clusters, traces, policy parameters and run
options) runs twice: with the policy's compiled pass, and with ``reference_passes=True`` (its
Python ``schedule``, the naive reference); every column of every table, the summary and the
event and placement logs must be identical. ``test_oracle.py`` then ties both to the SimPy
loop the compiled core replaced. A policy without a compiled pass is listed as such.
"""

from __future__ import annotations

import pytest
from oracle import POLICIES, digests, scenario

from simulator.core.engine import Simulation

SEEDS = range(40)


def _run(policy: str, seed: int, reference: bool) -> tuple[dict, str]:
    s = scenario(policy, seed)
    try:
        sim = Simulation(
            s["trace"], s["cluster"], s["policy"](), reference_passes=reference, **s["kw"]
        ).run()
    except Exception as e:  # noqa: BLE001 - both must fail alike
        return {"error": f"{type(e).__name__}: {e}"}, "error"
    return digests(sim), sim.engine


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_compiled_pass_equals_python_reference(policy, seed):
    compiled, engine = _run(policy, seed, False)
    if engine == "python":
        pytest.skip(f"{policy} has no compiled pass")
    reference, _ = _run(policy, seed, True)
    differ = sorted(
        k for k in set(compiled) | set(reference) if compiled.get(k) != reference.get(k)
    )
    assert not differ, f"{policy}/{seed}: differs in {differ}"
