"""The command lines as documented: overrides that must work, exit statuses, help texts.

Exit status rule of every command line of the project (``python -m simulator``,
``traces.convert``/``traces.describe``, ``simulator.limits``, ``experiments.*``): 0 done,
1 a run that failed, 2 a usage or input error, 130 interrupted (``tests/test_app_signals.py``).
"""

from __future__ import annotations

import json
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


# ---------------------------------------------------------------------------------- gavel
GAVEL_THROUGHPUTS = {"v100": {"('ResNet-18 (batch size 32)', 1)": {"null": 10.0}}}
GAVEL_ROWS = [
    "ResNet-18 (batch size 32)\tpython3 main.py\t--num_steps\t1\t1000\t0.0\t1",
    "ResNet-18 (batch size 32)\tpython3 main.py\t--num_steps\t1\t2000\t30.0\t1",
    "ResNet-18 (batch size 32)\tpython3 main.py\t--num_steps\t1\t500\t60.0\t1",
]


def gavel_trace(root: Path) -> Path:
    """A 3-job Gavel trace in a folder named ``seed=0``, as Gavel lays its traces out."""
    (root / "simulation_throughputs.json").write_text(json.dumps(GAVEL_THROUGHPUTS))
    folder = root / "msr" / "seed=0"
    folder.mkdir(parents=True)
    path = folder / "6214e9.trace"
    path.write_text("\n".join(GAVEL_ROWS) + "\n")
    return path


def test_gavel_path_with_equals_composes_when_quoted():
    cfg = composed("+policy=fifo", "trace=gavel", 'trace.path="/data/msr/seed=0/6214e9.trace"')
    assert cfg.trace.path == "/data/msr/seed=0/6214e9.trace"
    cfg = composed("+policy=fifo", "trace=gavel", r"trace.path=/data/msr/seed\=0/6214e9.trace")
    assert cfg.trace.path == "/data/msr/seed=0/6214e9.trace"


def test_escape_equals_only_touches_values_hydra_cannot_parse():
    from simulator.app import escape_equals

    args = [
        "+policy=fifo",
        "trace.path=/d/seed=0/x.trace",
        "trace.path=/d/seed=0/x,/d/seed=1/y",  # a sweep of two paths
        'trace.path="/d/seed=0/x"',  # quoted: Hydra's business
        r"trace.path=/d/seed\=0/x",  # escaped already
        "trace.queues=[a,b",  # broken for another reason: Hydra reports it
        "--cfg",
        "job",
    ]
    assert escape_equals(args) == [
        "+policy=fifo",
        r"trace.path=/d/seed\=0/x.trace",
        r"trace.path=/d/seed\=0/x,/d/seed\=1/y",
        'trace.path="/d/seed=0/x"',
        r"trace.path=/d/seed\=0/x",
        "trace.queues=[a,b",
        "--cfg",
        "job",
    ]


@pytest.mark.parametrize("form", ["quoted", "plain"])
def test_gavel_trace_in_a_seed_folder_runs(tmp_path, form):
    path = gavel_trace(tmp_path)
    override = f'trace.path="{path}"' if form == "quoted" else f"trace.path={path}"
    out = tmp_path / "run"
    res = simulator(
        "+policy=fifo",
        "trace=gavel",
        override,
        "print_summary=false",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    run = load_run(out)
    assert run.jobs["duration"].tolist() == [100.0, 200.0, 50.0]
    assert "seed=0" in run.summary["trace"]


# ---------------------------------------------------------------------------------- exit status
BROKEN_POLICY = '''
class Broken:
    """A policy whose pass raises: the run fails (exit status 1)."""

    name = "broken"

    def schedule(self, view):
        raise RuntimeError("the broken policy broke")
        yield
'''

EXIT_CASES = [
    # (id, arguments, exit status, what stderr must say)
    ("typo_key", ["+policy=gang", "cluster.num_nodez=3"], 2, "cluster.num_nodez"),
    ("override_syntax", ["+policy=gang", "trace.queues=[a,b"], 2, "[a,b"),
    ("unknown_choice", ["+policy=gang", "trace=nonexistent"], 2, "nonexistent"),
    ("flag_not_boolean", ["+policy=gang", "plots=maybe"], 2, "plots must be true or false"),
    ("no_policy", [], 2, "+policy=NAME"),
    ("missing_trace", ["+policy=gang", "trace=file", "trace.path=/no/jobs.csv"], 2, "/no/jobs.csv"),
    ("missing_mandatory", ["+policy=gang", "trace=gavel"], 2, "trace.path"),
    ("unknown_target", ["+policy._target_=nosuchpkg.Policy"], 2, "nosuchpkg"),
    ("too_big", ["+policy=gang", "cluster.num_nodes=1000000000"], 2, "not enough memory"),
    (
        "ray_not_installed",
        ["-m", "hydra/launcher=ray", "+policy=fifo"],
        2,
        "hydra/launcher=ray needs Hydra's launcher plugin hydra-ray-launcher, which is not "
        'installed: pip install -e ".[ray]"',
    ),
    ("failing_run", ["+policy._target_=broken_policy.Broken"], 1, "the broken policy broke"),
    ("unwritable_output", ["+policy=gang", "hydra.run.dir=/proc/1"], 1, "/proc/1"),
    ("done", ["+policy=gang", "trace.max_jobs=50"], 0, ""),
]


@pytest.fixture(scope="module")
def exit_results(tmp_path_factory):
    """Every case's CLI run, two at a time (each is mostly Python start-up)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("exit")
    (root / "broken_policy.py").write_text(BROKEN_POLICY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ["PYTHONPATH"]])}

    def one(case):
        case_id, args = case[0], case[1]
        folder = root / case_id
        folder.mkdir()
        run_dir = [] if any("hydra.run.dir" in a for a in args) else [f"hydra.run.dir={folder}/r"]
        return simulator(*args, *run_dir, "print_summary=false", cwd=folder, env=env)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip([c[0] for c in EXIT_CASES], pool.map(one, EXIT_CASES), strict=True))


@pytest.mark.parametrize(
    ("case_id", "status", "fragment"), [(c[0], c[2], c[3]) for c in EXIT_CASES]
)
def test_simulator_exit_status(exit_results, case_id, status, fragment):
    res = exit_results[case_id]
    assert res.returncode == status, res.stderr[-3000:]
    assert fragment in res.stderr, res.stderr[-3000:]
    assert "Traceback (most recent call last)" not in res.stderr, res.stderr[-3000:]


def test_simulator_help_is_ours(tmp_path):
    res = run_module("simulator", "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert text.startswith("gpusim: discrete-event simulator of GPU-cluster scheduling.")
    assert "powered by Hydra" not in text
    assert "choose one with +policy=NAME" in text
    # Hydra's $APP_CONFIG_GROUPS: every group with its choices, nothing of hydra/
    lines = {line.split(":")[0]: line for line in text.splitlines() if ": " in line}
    for group, choice in [("policy", "gang"), ("trace", "gavel"), ("fabric", "leaf_spine")]:
        assert choice in lines[group].split(": ", 1)[1].split(", "), lines.get(group)
    assert "hydra/launcher" not in lines
    assert text.count("python -m simulator ") >= 4  # the examples
    assert "Exit status: 0 done, 1 the run failed" in text


# ---------------------------------------------------------------------------------- other CLIs
def test_traces_convert_exit_statuses(tmp_path, capsys, monkeypatch):
    from traces import convert, philly

    sample = str(philly.SAMPLE)
    assert convert.main([sample, str(tmp_path / "ok.parquet"), "--max-jobs", "5"]) == 0
    assert convert.main([str(tmp_path / "missing.csv"), str(tmp_path / "x.parquet")]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err
    assert convert.main([sample, str(tmp_path / "x.txt")]) == 2  # checked before loading
    assert "x.txt: output must end in .parquet or .csv" in capsys.readouterr().err
    # the input is fine, the output cannot be written: the work failed
    assert convert.main([sample, str(tmp_path / "no" / "such" / "x.parquet")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write ") and err.count("\n") == 1
    with pytest.raises(SystemExit) as stop:
        convert.main(["--format", "nope", sample, "x.csv"])
    assert stop.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "load_from_args", interrupted)
    assert convert.main([sample, str(tmp_path / "y.parquet")]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_traces_describe_exit_statuses(tmp_path, capsys, monkeypatch):
    from traces import describe, philly

    assert describe.main([str(philly.SAMPLE), "--max-jobs", "5"]) == 0
    assert describe.main([str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err
    folder = tmp_path / "folder"
    folder.mkdir()
    assert describe.main([str(folder), "--format", "philly"]) == 2
    assert "Traceback" not in capsys.readouterr().err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(describe, "load_from_args", interrupted)
    assert describe.main([str(philly.SAMPLE)]) == 130


def test_limits_command_line(capsys):
    from simulator import limits

    assert limits.main(["1e6", "64", "8", "--available-gb", "100"]) == 0
    assert "1,000,000 jobs on 64 nodes x 8 GPUs: about 0.71 GiB" in capsys.readouterr().out
    assert limits.main(["1e9", "64", "8", "--available-gb", "100"]) == 1
    assert capsys.readouterr().err.startswith("error: not enough memory: 1,000,000,000 jobs")
    for bad in (
        ["-5", "64", "8"],
        ["1.5", "64", "8"],
        ["10", "64"],
        ["1", "1", "1", "--available-gb", "0"],
    ):
        with pytest.raises(SystemExit) as stop:
            limits.main(bad)
        assert stop.value.code == 2, bad
    with pytest.raises(SystemExit) as stop:
        limits.main(["--help"])
    assert stop.value.code == 0 and "Exit status: 0 it fits" in capsys.readouterr().out


def test_limits_help_runs_nothing(tmp_path):
    res = run_module("simulator.limits", "--help", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("usage: python -m simulator.limits")


def test_compare_exit_statuses(tmp_path, capsys):
    from simulator.output import report

    assert report.main([str(tmp_path)]) == 2
    assert "no runs found" in capsys.readouterr().err
    assert report.main([str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit) as stop:
        report.main([str(tmp_path), "--level", "1.5"])
    assert stop.value.code == 2
