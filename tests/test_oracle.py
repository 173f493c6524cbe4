"""The compiled core reproduces the SimPy loop it replaced, run for run (see tests/oracle.py).

``tests/data/oracle.json`` was written by the SimPy event loop (commit d101fde, before it was
deleted) with ``python tests/oracle.py``; every scenario must give the same digest for every
column of the job table, the timeline and the per-queue rows, every summary value, and the
event and placement logs. Columns added since then are not compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oracle import POLICIES, SEEDS, run

PINNED = json.loads((Path(__file__).parent / "data" / "oracle.json").read_text())


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_same_results_as_the_simpy_loop(policy, seed):
    want = PINNED[f"{policy}/{seed}"]
    got = run(policy, seed)
    differ = sorted(k for k in want if got.get(k) != want[k])
    assert not differ, f"{policy}/{seed}: differs in {differ}"
