"""The command lines as documented: overrides that must work, exit statuses, help texts.

Exit status rule of every command line of the project (``python -m simulator``,
``traces.convert``/``traces.describe``, ``simulator.limits``, ``experiments.*``): 0 done,
1 a run that failed, 2 a usage or input error, 130 interrupted (``tests/test_app_signals.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from simulator.output.results import load_run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def run_module(module: str, *args: str, cwd: Path, env: dict | None = None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def simulator(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return run_module("simulator", *args, "sim.progress=false", cwd=cwd, **kw)


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=list(overrides))


# ---------------------------------------------------------------------------------- fabric
@pytest.mark.parametrize(
    ("override", "table"),
    [
        ("fabric.comm_fraction={2: 0.1, 16: 0.3}", [(2, 0.1), (16, 0.3)]),
        ("fabric.comm_fraction={4: 0.5}", [(4, 0.5)]),  # replaces the preset's, not merged
        ("fabric.comm_fraction=0.3", [(2, 0.3)]),
        (None, [(2, 0.2)]),
    ],
)
@pytest.mark.parametrize("preset", ["leaf_spine", "single_switch", "rail_optimized", "gb200_nvl72"])
def test_comm_fraction_overrides_compose(preset, override, table):
    cfg = composed("+policy=gang", f"fabric={preset}", *([override] if override else []))
    assert instantiate(cfg.fabric).fractions == table


def test_comm_fraction_that_is_neither_number_nor_map_is_named():
    cfg = composed("+policy=gang", "fabric=leaf_spine", "fabric.comm_fraction=abc")
    with pytest.raises(InstantiationException) as err:
        instantiate(cfg.fabric)
    assert isinstance(err.value.__cause__, ValueError)
    assert str(err.value.__cause__).startswith("comm_fraction: expected a number in [0, 1)")
    assert str(err.value.__cause__).endswith("got 'abc'")


def test_documented_comm_fraction_override_runs_end_to_end(tmp_path):
    out = tmp_path / "run"
    res = simulator(
        "+policy=gang",
        "fabric=leaf_spine",
        "fabric.comm_fraction={2: 0.1, 16: 0.3}",
        "trace.max_jobs=300",
        "cluster.num_nodes=4",
        "print_summary=false",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    run = load_run(out)
    assert run.summary["fabric"] == "leaf_spine_h100"
    multi = run.jobs[(run.jobs["num_gpus"] >= 2) & (run.jobs["status"] == "finished")]
    assert len(multi) and (multi["fabric_tier"] != "").all()
    config = (out / ".hydra" / "config.yaml").read_text()
    assert "comm_fraction:\n    2: 0.1\n    16: 0.3" in config
