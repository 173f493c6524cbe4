"""Sweeps through Hydra's launchers (joblib, submitit), named experiments, resuming."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simulator.output.results import load_runs

ROOT = Path(__file__).resolve().parents[1]
PAIRS_3X2 = sorted((p, s) for p in ("fifo", "gang") for s in (0, 1, 2))


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def policy_seed_pairs(df: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted(zip(df["policy"], df["seed"], strict=True))


def good_trace(path: Path) -> Path:
    pd.DataFrame(
        {
            "job_id": ["a", "b", "c", "d"],
            "submit_time": [0.0, 5.0, 6.0, 7.0],
            "duration": [100.0, 50.0, 30.0, 10.0],
            "num_gpus": [8, 4, 8, 1],
            "queue": ["x", "y", "x", "y"],
        }
    ).to_csv(path, index=False)
    return path


def test_joblib_sweep_3x2(tmp_path):
    sweep = tmp_path / "multi"
    res = run_cli(
        "-m",
        "hydra/launcher=local_joblib",
        "hydra.launcher.n_jobs=2",
        "+policy=fifo,gang",
        "seed=0,1,2",
        "trace.max_jobs=200",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "Joblib.Parallel" in res.stderr + res.stdout  # really the joblib launcher
    df = load_runs(sweep)
    assert len(df) == 6 and (df["run_status"] == "ok").all()
    assert policy_seed_pairs(df) == PAIRS_3X2
    assert df["seed"].dtype.kind == "i" and (df["jobs_total"] == 200).all()
    # sweep-level summary: printed, and written beside the runs
    text = (sweep / "sweep_summary.md").read_text()
    assert "6 runs: 6 ok, 0 failed, 0 incomplete" in text and text in res.stdout
    assert "| fifo | 3/3 |" in text and "| gang | 3/3 |" in text
    assert len(pd.read_csv(sweep / "runs.csv")) == 6
    # one status line per run, in that run's own log
    for run_dir in df["run_dir"]:
        log = (Path(run_dir) / "app.log").read_text()
        assert "simulator.sweep" in log and ": ok, avg JCT" in log


def test_joblib_failed_run_is_reported_not_lost(tmp_path):
    trace = good_trace(tmp_path / "good.csv")
    sweep = tmp_path / "multi"
    res = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "+policy=fifo,gang",
        "trace=file",
        f"trace.path={trace},{tmp_path / 'missing.csv'}",
        "cluster.num_nodes=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert res.returncode == 1  # the sweep ran to the end, then reported the failures
    assert "2 run(s) failed" in res.stderr
    df = load_runs(sweep)
    assert len(df) == 4
    ok, failed = df[df["run_status"] == "ok"], df[df["run_status"] == "failed"]
    assert sorted(ok["policy"]) == ["fifo", "gang"] and (ok["jobs_finished"] == 4).all()
    assert sorted(failed["policy"]) == ["fifo", "gang"]
    assert failed["error"].str.contains("missing.csv: file not found").all()
    for run_dir in failed["run_dir"]:
        assert "missing.csv" in (Path(run_dir) / "error.txt").read_text()
    summary = (sweep / "sweep_summary.md").read_text()
    assert "4 runs: 2 ok, 2 failed, 0 incomplete" in summary and "missing.csv" in summary


def test_submitit_local_sweep_3x2(tmp_path):
    sweep = tmp_path / "multi"
    res = run_cli(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "+policy=fifo,gang",
        "seed=0,1,2",
        "trace.max_jobs=200",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert (sweep / ".submitit").is_dir()  # the runs went through submitit's executor
    df = load_runs(sweep)
    assert len(df) == 6 and (df["run_status"] == "ok").all()
    assert policy_seed_pairs(df) == PAIRS_3X2
    assert (df["jobs_total"] == 200).all()
    assert "6 runs: 6 ok" in (sweep / "sweep_summary.md").read_text()


def test_slurm_preset_writes_the_sbatch_script(tmp_path):
    """Without a SLURM cluster: a stand-in sbatch keeps the script submitit hands it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {
        "sbatch": 'cp "$1" "$SBATCH_COPY"\necho "stand-in sbatch: not submitting" >&2\nexit 1\n',
        "srun": "exit 1\n",
    }.items():
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\n" + body)
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SBATCH_COPY": str(tmp_path / "job.sh"),
    }
    res = run_cli(
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=short",
        "hydra.launcher.timeout_min=30",
        "hydra.launcher.array_parallelism=2",
        "+policy=fifo,gang",
        "seed=0,1,2",
        f"hydra.sweep.dir={tmp_path / 'multi'}",
        cwd=tmp_path,
        env=env,
    )
    assert res.returncode != 0 and "stand-in sbatch" in res.stderr
    script = (tmp_path / "job.sh").read_text()
    for line in (
        "#SBATCH --partition=short",
        "#SBATCH --time=30",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=4GB",
        "#SBATCH --array=0-5%2",  # 6 runs, at most 2 at once
        "#SBATCH --job-name=gpusim",
    ):
        assert line in script
    assert "--gpus" not in script and "--gres" not in script


@pytest.mark.parametrize(
    ("name", "runs", "keys"),
    [
        ("policy_sweep_philly", 10, ["policy", "seed"]),
        ("load_sweep_philly", 18, ["policy", "trace.time_scale", "seed"]),
    ],
)
def test_named_experiment(tmp_path, name, runs, keys):
    res = run_cli("-m", f"+experiment={name}", "trace.max_jobs=100", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (sweep,) = (tmp_path / "multirun" / name).iterdir()  # the experiment names its sweep dir
    df = load_runs(sweep)
    assert len(df) == runs and (df["run_status"] == "ok").all()
    assert (df["experiment"] == name).all() and (
        df["trace"].str.endswith("philly_sample.csv")
    ).all()
    assert not df.duplicated(keys).any()
    assert sorted(df["policy"].unique()) == ["fifo", "gang"]
    # every seed replays another sample of the trace
    assert df.groupby("policy")["avg_jct"].nunique().gt(1).all()
    assert (sweep / "sweep_summary.md").is_file()


def mtimes(sweep: Path) -> dict[str, int]:
    return {str(p.relative_to(sweep)): p.stat().st_mtime_ns for p in sweep.glob("*/*.parquet")} | {
        str(p.relative_to(sweep)): p.stat().st_mtime_ns for p in sweep.glob("*/summary.json")
    }


def test_skip_existing_resumes_a_sweep(tmp_path):
    sweep = tmp_path / "multi"
    args = ["-m", "+policy=fifo,gang", "trace.max_jobs=100", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args, "seed=0", cwd=tmp_path).returncode == 0
    before = mtimes(sweep)
    assert len(before) == 2 * 4  # jobs, timeline, queues, summary per run

    res = run_cli(*args, "seed=0", "skip_existing=true", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert mtimes(sweep) == before  # nothing rewritten
    assert res.stdout.count("existing, skipped") == 2

    # extending the sweep: runs 0 and 1 keep their config and are skipped; run 1 now holds
    # (fifo, seed 1) instead of (gang, seed 0), so it is rerun, as are the new runs 2 and 3
    res = run_cli(*args, "seed=0,1", "skip_existing=true", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    after = mtimes(sweep)
    assert after["0/summary.json"] == before["0/summary.json"]
    assert after["1/summary.json"] != before["1/summary.json"]
    assert "holds results of another config" in res.stdout + res.stderr
    df = load_runs(sweep)
    assert policy_seed_pairs(df) == [("fifo", 0), ("fifo", 1), ("gang", 0), ("gang", 1)]

    # without skip_existing everything runs again
    assert run_cli(*args, "seed=0,1", cwd=tmp_path).returncode == 0
    assert mtimes(sweep)["0/summary.json"] != after["0/summary.json"]


def test_skip_existing_single_run_and_failed_run_reruns(tmp_path):
    out = tmp_path / "run"
    args = ["+policy=gang", "trace.max_jobs=50", f"hydra.run.dir={out}", "skip_existing=true"]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    first = (out / "summary.json").stat().st_mtime_ns
    res = run_cli(*args, cwd=tmp_path)
    assert res.returncode == 0 and "existing, skipped" in res.stdout
    assert (out / "summary.json").stat().st_mtime_ns == first
    # a failed run has no summary: it is never skipped, and a success clears its error.txt
    (out / "summary.json").unlink()
    (out / "error.txt").write_text("Traceback (most recent call last):\n  x\nOSError: old\n")
    res = run_cli(*args, cwd=tmp_path)
    assert res.returncode == 0 and "existing, skipped" not in res.stdout
    assert (out / "summary.json").is_file() and not (out / "error.txt").exists()
    assert list(load_runs(tmp_path)["run_status"]) == ["ok"]


def test_sweep_labels_show_overrides_as_typed_not_summary_values(tmp_path):
    # issue 17: load_runs let summary keys of the same name overwrite override columns, so
    # fabric=leaf_spine came back as the model's full name and trace=synthetic as a file path,
    # and the sweep summary grouped and labelled runs by those
    sweep = tmp_path / "multi"
    res = run_cli(
        "-m",
        "+policy=gang",
        "fabric=none,leaf_spine",
        "trace=default,synthetic",
        "trace.max_jobs=60",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    df = load_runs(sweep)
    assert len(df) == 4 and (df["run_status"] == "ok").all()
    assert sorted(df["fabric"]) == ["leaf_spine", "leaf_spine", "none", "none"]
    assert sorted(df["trace"]) == ["default", "default", "synthetic", "synthetic"]
    # the summary's own values are kept, under their own names
    assert {"summary.fabric", "summary.trace"} <= set(df.columns)
    assert (df.loc[df["fabric"] == "leaf_spine", "summary.fabric"] != "leaf_spine").all()
    text = (sweep / "sweep_summary.md").read_text()
    assert "| policy | fabric | trace | runs |" in text
    for fabric in ("leaf_spine", "none"):
        for trace in ("default", "synthetic"):
            assert f"| gang | {fabric} | {trace} | 1/1 |" in text


def test_fgd_experiment_names_its_missing_input_and_tables_the_allocation(tmp_path):
    # the experiment reads the openb pod list from $GPUSIM_TRACES: without it, one line that
    # says what is missing and how to point at it (status 2), not a traceback
    env = {**os.environ, "GPUSIM_TRACES": str(tmp_path / "traces")}
    args = ["-m", "+experiment=fgd_openb", "seed=0"]  # the command line replaces params
    res = run_cli(*args, "policy.scoring=bestfit", cwd=tmp_path, env=env)
    assert res.returncode == 2, res.stderr[-2000:]  # every run failed on its input
    assert "openb pod list" in res.stdout + res.stderr and "GPUSIM_TRACES" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    # with a pod list there (the bundled sample, inflated to 3 % of the GPUs), the sweep table
    # shows the experiment's figure, the GPUs allocated when the arrivals end
    folder = tmp_path / "traces" / "alibaba-openb-gpu-v2023"
    folder.mkdir(parents=True)
    sample = ROOT / "traces" / "data" / "openb_pod_sample.csv"
    (folder / "openb_pod_list_default.csv").write_text(sample.read_text())
    sweep = tmp_path / "sweep"
    res = run_cli(
        *args,
        "policy.scoring=bestfit,fgd",
        "trace.ratio=0.03",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    table = (sweep / "sweep_summary.md").read_text()
    assert "GPUs allocated at end (%)" in table and "JCT" not in table
    runs = load_runs(sweep)
    assert sorted(runs["policy.scoring"]) == ["bestfit", "fgd"]
    # 3 % of the cluster's GPUs arrived and (almost) all of it fits: about 3 % allocated
    assert runs["gpus_allocated_at_end"].between(0.02, 0.031).all()
