"""Ctrl-C and SIGTERM at the edges of a run: exit status 130, one line, honest ``partial``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator.output.results import load_run

ARGS = [
    "+policy=gang",
    "trace.max_jobs=300",
    "cluster.num_nodes=2",
    "sim.progress=false",
]


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


# SIGINT delivered when the compiled loop hands back control with nothing left to simulate:
# the signal arrives while the last chunk runs, as in the 200k-job run
SIGNAL_AT_END = """
import os, signal, sys
import simulator.core.loop as loop

real = loop.advance

def last(*args):
    code = real(*args)
    if code == loop.DONE:
        os.kill(os.getpid(), signal.SIGINT)
    return code

loop.advance = last
import simulator.app as app
sys.argv = ["simulator"] + sys.argv[1:]
app.main()
"""

PLAIN = """
import sys
import simulator.app as app
sys.argv = ["simulator"] + sys.argv[1:]
app.main()
"""


def test_signal_once_the_simulation_ended_leaves_a_complete_run(tmp_path):
    res = run(
        SIGNAL_AT_END,
        *ARGS,
        "print_summary=false",
        f"hydra.run.dir={tmp_path / 'cut'}",
        cwd=tmp_path,
    )
    assert res.returncode == 130, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "are complete" in res.stderr and "partial results" not in res.stderr
    cut = load_run(tmp_path / "cut")
    assert cut.summary["partial"] is False
    ref = run(
        PLAIN, *ARGS, "print_summary=false", f"hydra.run.dir={tmp_path / 'ref'}", cwd=tmp_path
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    for table in ("jobs.parquet", "timeline.parquet", "queues.parquet"):
        assert (tmp_path / "cut" / table).read_bytes() == (tmp_path / "ref" / table).read_bytes()


# SIGTERM while the summary is printed: the results are already written
SIGTERM_PRINTING = """
import os, signal, sys
import simulator.app as app

real = app.format_summary

def printing(summary):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(summary)

app.format_summary = printing
sys.argv = ["simulator"] + sys.argv[1:]
app.main()
"""


def test_sigterm_after_the_results_are_written_exits_130(tmp_path):
    out = tmp_path / "run"
    res = run(SIGTERM_PRINTING, *ARGS, f"hydra.run.dir={out}", cwd=tmp_path)
    assert res.returncode == 130, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "are complete" in res.stderr
    assert load_run(out).summary["partial"] is False


# the signal while ``python -m simulator`` is still importing (Hydra not even loaded)
SIGNAL_IN_IMPORTS = """
import os, runpy, signal, sys

SIG = getattr(signal, sys.argv[1])

class Interrupting:
    def find_spec(self, name, path=None, target=None):
        if name == "hydra":
            os.kill(os.getpid(), SIG)
        return None

sys.meta_path.insert(0, Interrupting())
sys.argv = ["simulator", "+policy=gang"]
runpy.run_module("simulator", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_during_imports_prints_one_line(tmp_path, sig):
    res = run(SIGNAL_IN_IMPORTS, sig, cwd=tmp_path)
    assert res.returncode == 130, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted"), lines
