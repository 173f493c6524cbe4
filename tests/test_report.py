"""Results helpers (load_runs, load_jobs, confidence intervals), plots and the sweep report."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from simulator.output.plots import png_size, step_resample
from simulator.output.report import _table_html, build_report, group_keys, table_markdown
from simulator.output.results import (
    ci_halfwidth,
    error_message,
    load_jobs,
    load_runs,
    mean_ci,
    t_quantile,
    write_run,
)

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def fake_run(path: Path, overrides: list[str], summary: dict | None, jobs: int = 3) -> Path:
    """A run directory as the app leaves it (summary None: the run never finished)."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if summary is not None:
        frame = pd.DataFrame(
            {"job_id": np.arange(jobs), "jct": np.arange(jobs, dtype=float) + 1, "queue": "q"}
        )
        timeline = pd.DataFrame(
            {"time": [0.0], "allocated_gpus": [0.0], "queue_length": [0], "running_jobs": [0]}
        )
        write_run(path, frame, timeline, summary)
    return path


def test_t_quantile_matches_tables():
    # two-sided 95 % and 99 % critical values of Student's t (standard tables)
    table = {
        (0.95, 1): 12.706,
        (0.95, 2): 4.303,
        (0.95, 4): 2.776,
        (0.95, 10): 2.228,
        (0.95, 30): 2.042,
        (0.99, 5): 4.032,
        (0.90, 3): 2.353,
    }
    for (level, dof), want in table.items():
        assert t_quantile(level, dof) == pytest.approx(want, abs=1e-3)
    assert t_quantile(0.95, 100_000) == pytest.approx(1.960, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile(1.5, 3)


def test_ci_halfwidth_and_mean_ci():
    # mean 3, sample sd sqrt(2.5), n 5: half-width = 2.776 * 1.5811 / sqrt(5) = 1.963
    assert ci_halfwidth([1, 2, 3, 4, 5]) == pytest.approx(1.963, abs=1e-3)
    assert math.isnan(ci_halfwidth([7.0]))
    assert ci_halfwidth([1, 2, 3, 4, 5, None, float("nan")]) == pytest.approx(1.963, abs=1e-3)
    runs = pd.DataFrame(
        {
            "run_status": ["ok"] * 5 + ["failed"],
            "policy": ["a", "a", "a", "b", "b", "b"],
            "avg_jct": [1.0, 2.0, 3.0, 10.0, 10.0, None],
        }
    )
    out = mean_ci(runs, "policy", ["avg_jct", "not_a_metric"]).set_index("policy")
    assert list(out.columns) == ["runs", "avg_jct_mean", "avg_jct_ci"]
    assert out.loc["a", "runs"] == 3 and out.loc["b", "runs"] == 2  # failed run left out
    assert out.loc["a", "avg_jct_mean"] == 2.0
    assert out.loc["a", "avg_jct_ci"] == pytest.approx(4.303 * 1.0 / math.sqrt(3), abs=1e-3)
    assert out.loc["b", "avg_jct_ci"] == 0.0


def test_error_message_is_the_final_exception():
    text = (
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "    f()\n"
        "ValueError: first\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n"
        '  File "y.py", line 2, in g\n'
        "    raise X\n"
        "hydra.errors.InstantiationException: Error in call:\n"
        "TraceError('missing.csv: file not found')\n"
        "full_key: trace\n"
    )
    assert error_message(text) == (
        "hydra.errors.InstantiationException: Error in call: "
        "TraceError('missing.csv: file not found') full_key: trace"
    )


def test_load_runs_survives_broken_runs_and_load_jobs_adds_keys(tmp_path):
    sweep = tmp_path / "sweep"
    base = {"jobs_total": 3, "avg_jct": 2.0, "cluster": "x", "trace_report": {"dropped": 1}}
    fake_run(sweep / "0", ["+policy=fifo", "seed=0"], {**base, "policy": "fifo", "seed": 0})
    fake_run(sweep / "1", ["+policy=gang", "seed=0"], {**base, "policy": "gang", "seed": 0}, 5)
    failed = fake_run(sweep / "2", ["+policy=gang", "seed=1"], None)
    (failed / "error.txt").write_text("Traceback (most recent call last):\n  x\nOSError: disk\n")
    fake_run(sweep / "10", ["+policy=fifo", "seed=1"], None)  # started, never finished
    broken = fake_run(sweep / "3", ["+policy=fifo", "seed=2"], None)
    (broken / "summary.json").write_text('{"jobs_total": ')  # cut short
    (sweep / "4" / ".hydra").mkdir(parents=True)
    (sweep / "4" / ".hydra" / "overrides.yaml").write_text("[unclosed")  # bad YAML

    df = load_runs(sweep)
    assert [Path(d).name for d in df["run_dir"]] == ["0", "1", "2", "3", "4", "10"]
    status = dict(zip(df["run_dir"].map(lambda d: Path(d).name), df["run_status"], strict=True))
    assert status == {
        "0": "ok",
        "1": "ok",
        "2": "failed",
        "3": "incomplete",
        "4": "incomplete",
        "10": "incomplete",
    }
    row = df.set_index(df["run_dir"].map(lambda d: Path(d).name))
    assert row.loc["2", "error"] == "OSError: disk" and row.loc["2", "policy"] == "gang"
    assert row.loc["3", "error"] == "unreadable summary.json"
    assert row.loc["0", "trace_report.dropped"] == 1
    assert df["seed"].dropna().tolist() == [0, 0, 1, 2, 1]
    assert df.attrs["overrides"] == ["policy", "seed"]

    jobs = load_jobs(sweep)
    assert len(jobs) == 3 + 5  # only the finished runs
    assert list(jobs.columns[:3]) == ["run_dir", "policy", "seed"]
    assert jobs.groupby("policy")["jct"].count().to_dict() == {"fifo": 3, "gang": 5}
    assert jobs["seed"].dtype.kind == "i"
    assert list(load_jobs(sweep, columns=["jct"]).columns) == ["run_dir", "policy", "seed", "jct"]

    empty = load_runs(tmp_path / "sweep" / "0" / ".hydra")
    assert empty.empty and list(empty.columns) == ["run_dir", "run_status"]
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "nope")


def test_group_keys_skip_seeds_and_redundant_overrides():
    runs = pd.DataFrame(
        {
            "run_status": ["ok"] * 8,
            "policy": ["a"] * 4 + ["b"] * 4,
            "seed": [0, 1] * 4,
            "trace.seed": [0, 1] * 4,
            "trace": ["x"] * 8,
            "cluster.num_nodes": [4, 4, 8, 8] * 2,
            "trace.time_scale": [1, 1, 2, 2] * 2,  # splits the runs like num_nodes: redundant
        }
    )
    runs.attrs["overrides"] = [
        "cluster.num_nodes",
        "policy",
        "seed",
        "trace",
        "trace.seed",
        "trace.time_scale",
    ]
    assert group_keys(runs) == ["policy", "cluster.num_nodes"]


def test_tables_keep_cells_as_formatted_and_escape_them():
    table = pd.DataFrame(
        {
            "policy": ["a|b", "<gang>"],
            "runs": ["3/3", "1/2"],
            "avg JCT (h)": ["1,234.50", "0.10\nx"],
        }
    )
    md = table_markdown(table).splitlines()
    assert md[0] == "| policy | runs | avg JCT (h) |"
    assert set(md[1]) <= {"|", "-", ":"}
    # numbers stay as formatted (no re-parsing of "1,234.50"), pipes escaped, one line per row
    assert md[2:] == ["| a\\|b | 3/3 | 1,234.50 |", "| <gang> | 1/2 | 0.10 x |"]
    page = _table_html(table)
    assert "<td>&lt;gang&gt;</td>" in page and "<td>1,234.50</td>" in page
    assert "<th>avg JCT (h)</th>" in page and page.count("<tr>") == 2


def test_step_resample_holds_values():
    got = step_resample(np.array([1.0, 2.0, 2.0, 5.0]), np.array([3, 4, 7, 0]), np.arange(7.0))
    assert got.tolist() == [0, 3, 7, 7, 7, 0, 0]


def two_queue_trace(path: Path, n: int = 150) -> Path:
    """A canonical trace with two queues that keeps a 2 x 8 GPU cluster busy and queueing."""
    rng = np.random.default_rng(7)
    pd.DataFrame(
        {
            "job_id": np.arange(n),
            "submit_time": np.sort(rng.uniform(0, 20_000, n)).round(1),
            "duration": rng.lognormal(7, 1.2, n).round(1) + 1,
            "num_gpus": rng.choice([1, 2, 4, 8], n, p=[0.5, 0.2, 0.2, 0.1]),
            "queue": rng.choice(["research", "production"], n),
        }
    ).to_csv(path, index=False)
    return path


def assert_real_png(path: Path, min_width: int = 600, min_height: int = 300) -> None:
    width, height = png_size(path)
    assert width >= min_width and height >= min_height, (path, width, height)
    with Image.open(path) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 20, f"{path} looks blank"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    trace = two_queue_trace(tmp / "jobs.csv")
    res = run_module(
        "simulator",
        "-m",
        "+policy=fifo,gang",
        "seed=0,1,2",
        "trace=file",
        f"trace.path={trace}",
        "trace.sample_frac=0.8",
        "trace.seed=${seed}",
        "cluster.num_nodes=2",
        f"hydra.sweep.dir={tmp / 'sweep'}",
        cwd=tmp,
    )
    assert res.returncode == 0, res.stderr
    return tmp / "sweep"


def test_compare_writes_markdown_html_and_plots(sweep_dir):
    res = run_module("experiments.compare", str(sweep_dir), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "6 runs: 6 ok, 0 failed, 0 incomplete" in res.stdout
    out = sweep_dir / "report"
    pngs = ["jct_cdf.png", "wait_cdf.png", "timeline.png", "queues.png"]
    for name in pngs:
        assert_real_png(out / name)
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "| policy | runs | finished jobs | avg JCT (" in md
    assert md.count("| fifo | 3/3 |") == 1 and md.count("| gang | 3/3 |") == 1
    for name in pngs:
        assert f"]({name})" in md and f'<img src="{name}"' in page
    assert "<table" in page and "<td>fifo</td>" in page and "<td>gang</td>" in page
    assert "Failed and incomplete runs" not in md
    for name in pngs:
        with Image.open(out / name) as img:
            title = img.text["Title"]
        # the trace's file name, not its path (trace.path is the same in every run)
        assert "policy fifo vs gang · trace jobs.csv · cluster 2 nodes, 16 GPUs" in title


def test_report_numbers_match_the_runs(sweep_dir, tmp_path):
    report = build_report(sweep_dir, tmp_path / "r", plots=False)
    assert report.images == [] and report.markdown.is_file()
    runs = load_runs(sweep_dir)
    want = runs.groupby("policy")["avg_jct"].mean()
    table = report.table.set_index("policy")
    header = next(c for c in table.columns if c.startswith("avg JCT ("))
    unit = {"(s)": 1, "(min)": 60, "(h)": 3600, "(days)": 86400}[header.split()[-1]]
    for policy, mean in want.items():
        shown = float(table.loc[policy, header].split(" ± ")[0].replace(",", ""))
        assert shown == pytest.approx(mean / unit, abs=0.006)
    # seeds sample different jobs, so the runs differ and the interval is not zero
    assert runs.groupby("policy")["avg_jct"].std().gt(0).all()
    assert all(" ± " in v for v in table[header])


def test_report_compares_queues_across_runs(sweep_dir, tmp_path):
    from simulator.output.results import load_breakdowns

    report = build_report(sweep_dir, tmp_path / "q", plots=False)
    md = report.markdown.read_text()
    assert "## Per queue" in md
    assert "| policy | queue | jobs | avg wait (" in md and "GPU share (%) | preemptions |" in md
    rows = load_breakdowns(sweep_dir)
    want = rows.groupby(["policy", "queue"], observed=True)["gpu_share"].mean()
    for (policy, queue), share in want.items():
        line = next(x for x in md.splitlines() if x.startswith(f"| {policy} | {queue} |"))
        cell = line.split(" | ")[5]
        assert float(cell.split(" ± ")[0]) == pytest.approx(100 * share, abs=0.051)
    # two queues share one cluster: their shares add up to the run's utilisation
    runs = load_runs(sweep_dir).set_index("run_dir")
    total = rows.groupby("run_dir")["gpu_share"].sum()
    for run_dir, share in total.items():
        assert share == pytest.approx(runs.loc[run_dir, "gpu_utilization"], rel=1e-9)


def test_report_lists_failed_runs(sweep_dir, tmp_path):
    copy = tmp_path / "sweep"
    subprocess.run(["cp", "-r", str(sweep_dir), str(copy)], check=True)
    bad = copy / "9"
    (bad / ".hydra").mkdir(parents=True)
    (bad / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["+policy=gang", "seed=9"]))
    (bad / "error.txt").write_text("Traceback (most recent call last):\n  x\nValueError: boom\n")
    report = build_report(copy, plots=False)
    md = report.markdown.read_text()
    assert "7 runs: 6 ok, 1 failed, 0 incomplete" in md
    assert "## Failed and incomplete runs" in md and "| 9 | failed | ValueError: boom |" in md
    assert "| gang | 3/4 |" in md


def test_compare_on_a_directory_without_runs(tmp_path):
    res = run_module("experiments.compare", str(tmp_path), cwd=ROOT)
    assert res.returncode == 2 and "no runs found" in res.stderr


def test_single_run_plots(tmp_path):
    trace = two_queue_trace(tmp_path / "jobs.csv")
    res = run_module(
        "simulator",
        "+policy=gang",
        "trace=file",
        f"trace.path={trace}",
        "cluster.num_nodes=2",
        "plots=true",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    for name in ("jct_cdf.png", "wait_cdf.png", "timeline.png", "queues.png"):
        assert_real_png(tmp_path / "run" / name)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["avg_wait"] > 0  # the plots show real queueing


def test_summary_table_of_runs_cut_with_nothing_finished_shows_the_allocation():
    # the FGD allocation experiment: pods never finish, the run stops at sim.until. Its sweep
    # table must show the share of GPUs allocated at the end, not empty JCT / makespan columns
    from simulator.output.report import summary_table

    cut = {"jobs_finished": 0, "avg_jct": None, "p99_jct": None, "makespan": 0.0}
    runs = pd.DataFrame(
        [
            {"run_status": "ok", "policy": "fgd", **cut, "gpus_allocated_at_end": a}
            for a in (0.94, 0.95)
        ]
        + [{"run_status": "ok", "policy": "bestfit", **cut, "gpus_allocated_at_end": 0.917}]
    )
    table = summary_table(runs, by=["policy"])
    assert "GPUs allocated at end (%)" in table.columns
    assert not [c for c in table.columns if "JCT" in c or "makespan" in c]
    cells = dict(zip(table["policy"], table["GPUs allocated at end (%)"], strict=True))
    assert cells["bestfit"] == "91.7" and cells["fgd"].startswith("94.5 ± ")
    # runs in which everything finished: the column is left out, makespan shown
    done = runs.assign(jobs_finished=3, avg_jct=10.0, makespan=20.0, gpus_allocated_at_end=0.0)
    columns = list(summary_table(done, by=["policy"]).columns)
    assert "GPUs allocated at end (%)" not in columns
    assert "makespan (s)" in columns and "avg JCT (s)" in columns
