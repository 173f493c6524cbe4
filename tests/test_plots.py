"""What the plots show (issue 17): titles, legends, the x-range of timelines, colours.

Checked on the matplotlib figures (and the PNG's Title metadata), not on pixels.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from PIL import Image

from simulator.output import plots
from simulator.output.report import build_report, group_labels, sweep_figures
from simulator.output.results import write_run

DAY = 86400.0


def legend_texts(fig) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def assert_legends_off_the_data(fig) -> None:
    """No legend inside an axes; the figure's legends overlap no axes."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    assert all(ax.get_legend() is None for ax in fig.axes)
    for leg in fig.legends:
        box = leg.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), leg


def assert_no_paths(fig) -> None:
    texts = legend_texts(fig)
    assert texts and not [t for t in texts if "/" in t], texts


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def long_tail_run(n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """A timeline busy for a day, then one job alone until day 28; the jobs' end times."""
    busy = np.linspace(0.0, DAY, 200)
    timeline = pd.DataFrame(
        {
            "time": [*busy, 28 * DAY],
            "allocated_gpus": [*np.full(199, 16.0), 1.0, 0.0],
            "queue_length": [*np.arange(200) % 7, 0],
        }
    )
    ends = np.append(np.linspace(600.0, DAY, n - 1), 28 * DAY)
    return timeline, ends


def test_a_long_tail_is_cut_off_the_timeline_and_the_cut_is_stated():
    timeline, ends = long_tail_run()
    span = float(timeline["time"].max())
    cut = plots.tail_cut([ends], span)
    assert cut is not None and cut.at == pytest.approx(np.quantile(ends, 0.99))
    assert cut.limit < 2 * DAY and cut.end == 28 * DAY
    fig = plots.timeline_figure({"gang": timeline}, capacity=16, cut=cut)
    bottom = fig.axes[1]
    div, unit = plots.time_unit(cut.limit)
    assert unit == "h"
    assert bottom.get_xlim()[1] * div == pytest.approx(cut.limit)
    label = bottom.get_xlabel()
    assert label.startswith("Simulated time (h)\ncut at") and "99 % of jobs had finished" in label
    assert "28.0 days" in label  # where the uncut axis would have ended
    # the queued-jobs axis fits what is shown
    assert bottom.get_ylim()[1] == pytest.approx(6 * 1.05)


def test_no_cut_without_a_tail():
    ends = np.linspace(600.0, DAY, 100)
    assert plots.tail_cut([ends], DAY) is None
    assert plots.tail_cut([np.array([np.nan])], DAY) is None
    assert plots.tail_cut([], DAY) is None
    # the latest run decides: its jobs finish over the whole span
    assert plots.tail_cut([ends / 10, ends], DAY) is None
    timeline, _ = long_tail_run()
    fig = plots.timeline_figure({"gang": timeline})
    assert fig.axes[1].get_xlim()[1] == pytest.approx(28.0)
    assert fig.axes[1].get_xlabel() == "Simulated time (days)"


def test_titles_name_policy_trace_and_cluster():
    text = plots.describe("gang", "/data/traces/philly/jobs.csv (from philly)", "2 nodes")
    assert text == "policy gang · trace jobs.csv (from philly) · cluster 2 nodes"
    assert plots.short_trace("synthetic(num_jobs=10, load=0.8, seed=0)") == (
        "synthetic(num_jobs=10, load=0.8, seed=0)"
    )
    fig = plots.cdf_figure({"gang": np.array([1.0, 2.0])}, "Wait time", "Wait-time CDF", text)
    assert fig.get_suptitle() == f"Wait-time CDF\n{text}"


def test_cdf_axis_starts_near_the_shortest_duration():
    fig = plots.cdf_figure({"a": np.array([200.0, 4000.0])}, "JCT", "JCT CDF")
    low, _ = fig.axes[0].get_xlim()
    assert 60 / 1.3 == pytest.approx(low)  # the 1 min tick, not 0
    fig = plots.cdf_figure({"a": np.array([0.0, 4000.0])}, "Wait", "Wait CDF")
    assert fig.axes[0].get_xlim()[0] < 0  # zero waits stay visible


def test_queue_panels_share_one_legend_and_colours():
    def queues(names, gpus):
        return pd.DataFrame(
            {
                "time": np.repeat([0.0, 100.0], len(names)),
                "queue": list(names) * 2,
                "allocated_gpus": [*gpus, *np.zeros(len(names))],
            }
        )

    fig = plots.queue_share_figure(
        {
            "fifo": (queues(["a", "b"], [2.0, 6.0]), 8.0),
            "gang": (queues(["b", "a", "c"], [4.0, 1.0, 2.0]), 8.0),
        }
    )
    assert len(fig.legends) == 1 and legend_texts(fig) == ["b", "a", "c"]
    assert_legends_off_the_data(fig)
    colours = [
        {tuple(np.round(p.get_facecolor()[0][:3], 3)) for p in ax.collections} for ax in fig.axes
    ]
    assert colours[0] < colours[1]  # a and b have the colours of the second panel's a and b


def fake_sweep_run(
    path: Path, overrides: list[str], jobs: pd.DataFrame, summary: dict, shift: float = 0.0
) -> None:
    """A finished run directory with the tables the plots read."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    jobs = jobs.assign(end_time=jobs["end_time"] + shift, jct=jobs["jct"] + shift)
    times = np.sort(np.concatenate([[0.0], jobs["end_time"].to_numpy()]))
    timeline = pd.DataFrame(
        {
            "time": times,
            "allocated_gpus": np.linspace(8, 0, len(times)),
            "queue_length": np.arange(len(times))[::-1] % 5,
            "running_jobs": np.zeros(len(times), dtype=int),
        }
    )
    queues = pd.DataFrame(
        {
            "time": np.repeat(times, 2),
            "queue": ["research", "production"] * len(times),
            "allocated_gpus": np.repeat(np.linspace(4, 0, len(times)), 2),
        }
    )
    write_run(path, jobs, timeline, summary, extra={"queues": queues})


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory):
    """fifo and gang on 1 and 2 nodes; on one node gang's results equal fifo's."""
    root = tmp_path_factory.mktemp("plots") / "sweep"
    n = 50
    jobs = pd.DataFrame(
        {
            "job_id": np.arange(n),
            "jct": np.linspace(100.0, 5000.0, n),
            "wait_time": np.linspace(0.0, 900.0, n),
            "end_time": np.linspace(100.0, 5000.0, n),
            "status": ["finished"] * n,
        }
    )
    shifts = {("fifo", 1): 0.0, ("gang", 1): 0.0, ("fifo", 2): 50.0, ("gang", 2): 150.0}
    k = 0
    for (policy, nodes), shift in shifts.items():
        for seed in (0, 1):
            summary = {
                "policy": policy,
                "trace": f"{root.parent}/traces/jobs.csv",
                "cluster": f"{nodes} nodes, {8 * nodes} GPUs",
                "cluster_gpus": 8 * nodes,
                "jobs_total": n,
                "jobs_finished": n,
                "avg_jct": 1000.0 + shift,
                "seed": seed,
            }
            overrides = [f"+policy={policy}", f"cluster.num_nodes={nodes}", f"seed={seed}"]
            fake_sweep_run(root / str(k), overrides, jobs, summary, shift + seed)
            k += 1
    return root


def test_sweep_plots_pair_colours_and_flag_identical_runs(fake_sweep):
    figures = sweep_figures(fake_sweep)
    assert set(figures) == {"jct_cdf.png", "wait_cdf.png", "timeline.png", "queues.png"}
    tab20 = [to_rgb(c) for c in colormaps["tab20"].colors]
    fifo1, fifo2 = "fifo, cluster.num_nodes=1", "fifo, cluster.num_nodes=2"
    gang1, gang2 = "gang, cluster.num_nodes=1", "gang, cluster.num_nodes=2"
    same = f"{gang1} (= {fifo1})"
    lines = lines_by_label(figures["jct_cdf.png"].axes[0])
    assert [k for k in lines if not k.startswith("_")] == [fifo1, fifo2, same, gang2]
    # fifo and gang on the same cluster: the two shades of one tab20 hue
    assert to_rgb(lines[fifo1].get_color()) == tab20[0]
    assert to_rgb(lines[same].get_color()) == tab20[1]
    assert to_rgb(lines[fifo2].get_color()) == tab20[2]
    assert to_rgb(lines[gang2].get_color()) == tab20[3]
    # gang on one node wrote fifo's results: said in the legend and drawn dashed over it
    assert lines[same].get_linestyle() == "--"
    assert {lines[k].get_linestyle() for k in (fifo1, fifo2, gang2)} == {"-"}
    timeline = lines_by_label(figures["timeline.png"].axes[0])
    assert f"{gang1} (mean of 2 runs) (= {fifo1})" in timeline
    panels = [ax.get_title() for ax in figures["queues.png"].axes]
    assert panels == [
        f"{fifo1} (seed 0) = {gang1} (seed 0)",
        f"{fifo2} (seed 0)",
        f"{gang2} (seed 0)",
    ]
    for fig in figures.values():
        title = fig.get_suptitle()
        assert "fifo vs gang" in title and "jobs.csv" in title
        assert "1 nodes, 8 GPUs vs 2 nodes, 16 GPUs" in title
        assert_no_paths(fig)
        assert_legends_off_the_data(fig)


def test_legends_show_file_names_not_paths():
    runs = pd.DataFrame(
        {
            "policy": ["gang"] * 3,
            "trace.path": ["/x/a/jobs.csv", "/x/b/jobs.csv", "/x/b/other.csv"],
        }
    )
    assert group_labels(runs, ["policy", "trace.path"]).tolist() == [
        "gang, trace.path=jobs.csv (a)",
        "gang, trace.path=jobs.csv (b)",
        "gang, trace.path=other.csv",
    ]


def test_report_pngs_carry_their_titles(fake_sweep, tmp_path):
    report = build_report(fake_sweep, tmp_path / "report")
    assert [p.name for p in report.images] == [
        "jct_cdf.png",
        "wait_cdf.png",
        "timeline.png",
        "queues.png",
    ]
    for png in report.images:
        with Image.open(png) as img:
            assert "fifo vs gang" in img.text["Title"], png


def long_tail_trace(path: Path) -> Path:
    """200 jobs over two hours on 16 GPUs, and one job that runs for 28 days."""
    rng = np.random.default_rng(3)
    n = 200
    frame = pd.DataFrame(
        {
            "job_id": np.arange(n + 1),
            "submit_time": np.append(np.sort(rng.uniform(0, 7200, n)).round(1), 60.0),
            "duration": np.append(rng.uniform(60, 1800, n).round(1), 28 * DAY),
            "num_gpus": np.append(rng.choice([1, 2, 4], n), 1),
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_single_run_plots_of_a_long_tail_run(tmp_path):
    trace = long_tail_trace(tmp_path / "tail.csv")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "+policy=fifo",
            "trace=file",
            f"trace.path={trace}",
            "cluster.num_nodes=2",
            "plots=true",
            "print_summary=false",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    run = tmp_path / "run"
    summary = yaml.safe_load((run / "summary.json").read_text())
    assert summary["makespan"] > 27 * DAY
    figures = plots.run_figures(run)
    assert set(figures) == {"jct_cdf.png", "wait_cdf.png", "timeline.png"}
    for name, fig in figures.items():
        title = fig.get_suptitle()
        assert "policy fifo" in title and "trace tail.csv" in title, title
        assert f"cluster {summary['cluster']}" in title.replace("\n", " "), title
        assert_no_paths(fig)
        assert_legends_off_the_data(fig)
        with Image.open(run / name) as img:
            assert img.text["Title"] == title
    bottom = figures["timeline.png"].axes[1]
    # the axis ends after the busy first hours, not at day 28, and says so
    label = bottom.get_xlabel()
    assert label.startswith("Simulated time (h)\ncut at") and "99 % of jobs" in label, label
    assert bottom.get_xlim()[1] * 3600 < 0.05 * summary["makespan"]
