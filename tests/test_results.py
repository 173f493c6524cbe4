"""Result directories: one writer at a time, a manifest written last, nothing mixed accepted."""

from __future__ import annotations

import errno
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from simulator import app
from simulator.output import results
from simulator.output.results import (
    MANIFEST_FILE,
    RunDirError,
    load_run,
    load_runs,
    load_tables,
    seal_run,
    write_run,
)
from simulator.output.rundir import RunDirBusy, RunLock


def frames(n: int = 3, tag: str = "a") -> tuple[pd.DataFrame, pd.DataFrame]:
    jobs = pd.DataFrame({"job_id": [f"{tag}{i}" for i in range(n)], "jct": np.arange(n) * 1.0})
    timeline = pd.DataFrame({"time": [0.0, 1.0], "allocated_gpus": [0.0, 1.0]})
    return jobs, timeline


def write(out: Path, tag: str = "a", **kw) -> Path:
    jobs, timeline = frames(tag=tag)
    return write_run(out, jobs, timeline, {"policy": tag, "avg_jct": 1.0}, **kw)


def test_written_run_has_a_manifest_and_loads(tmp_path):
    out = write(tmp_path / "run")
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {"jobs.parquet", "timeline.parquet", "summary.json"}
    for name, entry in manifest["files"].items():
        raw = (out / name).read_bytes()
        assert entry == {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    assert load_run(out).summary["policy"] == "a"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_mixed_files_are_refused_everywhere(tmp_path):
    # the summary of one run beside the jobs table of another: the corrupted directory
    a, b = write(tmp_path / "runs" / "a", "a"), write(tmp_path / "other", "b")
    (a / "jobs.parquet").write_bytes((b / "jobs.parquet").read_bytes())
    with pytest.raises(RunDirError, match="jobs.parquet does not match manifest.json"):
        load_run(a)
    row = load_runs(tmp_path / "runs").iloc[0]
    assert row["run_status"] == "incomplete" and "jobs.parquet" in row["error"]
    assert len(load_tables(tmp_path / "runs", "jobs")) == 0


def test_truncated_table_is_refused(tmp_path):
    out = write(tmp_path / "run")
    raw = (out / "timeline.parquet").read_bytes()
    (out / "timeline.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RunDirError, match="timeline.parquet"):
        load_run(out)
    assert load_runs(out)["run_status"].tolist() == ["incomplete"]


def test_table_not_in_the_manifest_is_refused(tmp_path):
    out = write(tmp_path / "run")
    frames()[0].to_parquet(out / "failures.parquet")
    with pytest.raises(RunDirError, match="failures.parquet"):
        load_run(out)


def test_directory_without_manifest_is_refused_with_the_fix(tmp_path):
    out = write(tmp_path / "run")
    (out / MANIFEST_FILE).unlink()
    with pytest.raises(RunDirError, match="seal_run") as err:
        load_run(out)
    assert str(out) in str(err.value)
    assert load_runs(out)["run_status"].tolist() == ["incomplete"]
    seal_run(out)  # the user vouches for an old directory
    assert load_run(out).summary["policy"] == "a"


def test_rerun_removes_tables_it_does_not_write(tmp_path):
    out = tmp_path / "run"
    write(out, extra={"failures": pd.DataFrame({"node": [1]})})
    assert load_run(out).table("failures").shape == (1, 1)
    write(out, "b")
    assert not (out / "failures.parquet").exists()
    run = load_run(out)
    assert run.summary["policy"] == "b"
    with pytest.raises(FileNotFoundError, match="no failures.parquet"):
        run.table("failures")


def test_summary_is_strict_json(tmp_path):
    jobs, timeline = frames()
    summary = {
        "avg_jct": float("inf"),
        "p99_jct": np.float64("nan"),
        "makespan": np.float32("-inf"),
        "queues": {"q": {"avg_wait": float("nan"), "jobs": np.int64(3)}},
        "list": [1.0, float("inf")],
    }
    out = write_run(tmp_path / "run", jobs, timeline, summary)

    def refuse(name):
        raise ValueError(f"non-JSON constant {name}")

    text = (out / "summary.json").read_text()
    back = json.loads(text, parse_constant=refuse)
    assert back["avg_jct"] is None and back["p99_jct"] is None and back["makespan"] is None
    assert back["queues"] == {"q": {"avg_wait": None, "jobs": 3}}
    assert back["list"] == [1.0, None]


def test_disk_error_names_the_file(tmp_path, monkeypatch):
    def full(frame, path):  # what pyarrow raises on a full disk (seen writing to /dev/full)
        path.write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: No space left on device")

    monkeypatch.setattr(results, "_write_parquet", full)
    with pytest.raises(
        OSError, match=r"jobs.parquet: cannot write \(Error writing bytes.*No space left"
    ) as err:
        write(tmp_path / "run")
    assert err.value.errno == errno.ENOSPC
    assert not list((tmp_path / "run").glob("*.tmp")) and not list((tmp_path / "run").glob(".*tmp"))


HOLD = """
import sys, time
from simulator.output.rundir import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_directory_held_by_another_process_is_refused(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy, match=f"{out} is in use by pid {proc.pid}"):
            write(out)
        assert not (out / "summary.json").exists()
    finally:
        proc.kill()
        proc.wait()
    write(out)  # the kernel dropped the lock with its holder: no stale lock
    assert load_run(out).summary["policy"] == "a"


def test_lock_is_reentrant_in_its_thread_only(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with RunLock(tmp_path):
        write(tmp_path)  # write_run inside the run's own lock
        with ThreadPoolExecutor(1) as pool, pytest.raises(RunDirBusy):
            pool.submit(write, tmp_path, "b").result()
    assert load_run(tmp_path).summary["policy"] == "a"


def test_skip_existing_refuses_a_mixed_directory(tmp_path):
    cfg = OmegaConf.create({"seed": 0, "sim": {"progress": None}})
    jobs, timeline = frames()
    record = {".hydra/overrides.yaml": "- +policy=gang\n"}
    out = write_run(
        tmp_path / "run", jobs, timeline, {"config_key": app.config_key(cfg)}, record=record
    )
    assert app._existing_summary(cfg, out) is not None
    # Hydra rewrites the record of the skipping invocation (skip_existing=true is in it): the
    # results stay, and the manifest vouches for the new record
    (out / ".hydra" / "overrides.yaml").write_text("- +policy=gang\n- skip_existing=true\n")
    with pytest.raises(RunDirError, match="overrides.yaml does not match"):
        load_run(out)
    assert app._existing_summary(cfg, out) is not None
    assert load_run(out).overrides == {"policy": "gang", "skip_existing": True}
    (out / "timeline.parquet").write_bytes(b"PAR1 garbage PAR1")
    assert app._existing_summary(cfg, out) is None


# --------------------------------------------------------------------- two real processes
def cli(out: Path, policy: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            f"+policy={policy}",
            "trace.max_jobs=200",
            "cluster.num_nodes=2",  # a busy cluster: gang and fifo schedule differently
            "sim.progress=false",
            "print_summary=false",
            f"hydra.run.dir={out}",
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_into_one_run_directory(tmp_path):
    # the race: gang, then fifo 0-0.15 s later, into one directory. Each try must end
    # with the directory holding one complete run (its jobs table identical to that policy's
    # run alone) and every other process refused with one line naming the directory
    alone = {}
    for policy in ("gang", "fifo"):
        proc = cli(tmp_path / f"alone_{policy}", policy, tmp_path)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        alone[policy] = (tmp_path / f"alone_{policy}" / "jobs.parquet").read_bytes()
    assert alone["gang"] != alone["fifo"]
    for i, delay in enumerate((0.0, 0.05, 0.15)):
        out = tmp_path / f"shared{i}"
        first = cli(out, "gang", tmp_path)
        time.sleep(delay)
        second = cli(out, "fifo", tmp_path)
        outcomes = []
        for proc in (first, second):
            _, err = proc.communicate(timeout=300)
            outcomes.append((proc.returncode, err))
        ok = [rc == 0 for rc, _ in outcomes]
        assert any(ok), outcomes
        for rc, err in outcomes:
            if rc != 0:
                assert rc == 1 and "Traceback" not in err, err
                assert f"run directory {out} is in use by pid" in err, err
        run = load_run(out)
        policy = run.summary["policy"]
        assert run.overrides["policy"] == policy
        assert (out / "jobs.parquet").read_bytes() == alone[policy]
        assert load_runs(out)["run_status"].tolist() == ["ok"]


# the first run blocked half-way through writing its tables until the second has come and gone
SLOW_WRITER = """
import sys, time
from pathlib import Path
import simulator.app as app
import simulator.output.results as results

real, gate = results._write_parquet, Path(sys.argv[1])

def gated(frame, path):
    (gate / "writing").touch()
    deadline = time.monotonic() + 120
    while not (gate / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return real(frame, path)

results._write_parquet = gated
sys.argv = ["simulator"] + sys.argv[2:]
app.main()
"""


def test_a_run_into_a_directory_being_written_is_refused(tmp_path):
    out, gate = tmp_path / "shared", tmp_path / "gate"
    gate.mkdir()
    args = ["trace.max_jobs=200", "cluster.num_nodes=2", "sim.progress=false"]
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SLOW_WRITER,
            str(gate),
            "+policy=gang",
            *args,
            "print_summary=false",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (gate / "writing").exists() and first.poll() is None:
        assert time.monotonic() < deadline, "the first run never started writing"
        time.sleep(0.05)
    second = cli(out, "fifo", tmp_path)
    _, err = second.communicate(timeout=300)
    (gate / "go").touch()
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-3000:]
    assert second.returncode == 1, err[-3000:]
    assert f"run directory {out} is in use by pid {first.pid}" in err and "Traceback" not in err
    run = load_run(out)
    assert run.summary["policy"] == "gang" and run.overrides["policy"] == "gang"
    assert not (out / "error.txt").exists()
