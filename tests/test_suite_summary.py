"""The end of a pytest run lists the real-trace tests that skipped (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TRACES

ROOT = Path(__file__).resolve().parents[1]


def pytest_run(traces: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GPUSIM_TRACES"}
    if traces is not None:
        env["GPUSIM_TRACES"] = str(traces)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_skipped_real_trace_tests_are_listed_with_the_folder(tmp_path):
    res = pytest_run(
        tmp_path, "tests/test_traces_gavel.py", "tests/test_traces_philly.py", "-k", "real or full"
    )
    assert res.returncode == 0, res.stdout[-3000:]
    out = res.stdout
    assert "= 2 real-trace tests skipped =" in out, out[-3000:]
    assert f"traces folder: {tmp_path} (from GPUSIM_TRACES;" in out
    gavel = tmp_path / "gavel-philly-derived" / "msr" / "seed=0" / "6214e9.trace"
    assert f"SKIPPED tests/test_traces_gavel.py::test_real_traces: {gavel} not present" in out
    philly = tmp_path / "philly-pollux" / "philly.csv"
    assert f"SKIPPED tests/test_traces_philly.py::test_full_file: {philly} not present" in out


def test_nothing_is_listed_when_the_traces_are_there():
    if not (TRACES / "gavel-philly-derived").is_dir():
        pytest.skip(f"{TRACES / 'gavel-philly-derived'} not present")
    res = pytest_run(TRACES, "tests/test_traces_gavel.py", "-k", "real_traces")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "1 passed" in res.stdout and "real-trace tests skipped" not in res.stdout
