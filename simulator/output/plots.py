"""PNG plots of one run or of groups of runs (matplotlib, needs the ``plot`` extra).

Figures are drawn with matplotlib's object API on an Agg canvas: no pyplot, no global figure
state, no display needed, so plots can be made inside parallel sweep workers.

Durations (JCT, wait) are drawn on a symmetric-log axis (linear below 1 s, so zero waits are
visible) with ticks labelled ``1 s``, ``1 min``, ``1 h``, ``1 d``. Simulated time on the x-axis
of timelines is in minutes, hours or days, whichever suits the span.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "RUN_PLOTS",
    "cdf_plot",
    "plot_run",
    "png_size",
    "require_matplotlib",
    "queue_share_plot",
    "step_resample",
    "time_unit",
    "timeline_plot",
]

RUN_PLOTS = ("jct_cdf.png", "wait_cdf.png", "timeline.png", "queues.png")
"""Files :func:`plot_run` may write into a run directory."""

DPI = 100
"""Pixels per inch of the saved PNGs (an 8 x 4.5 inch figure is 800 x 450 pixels)."""

GRID_POINTS = 1000
"""Points on which timelines are sampled when several runs are averaged or stacked."""

MAX_QUEUES = 8
"""Queues drawn separately in the per-queue plot; the rest are summed as ``other``."""

_DURATION_TICKS = (
    (0.0, "0"),
    (1.0, "1 s"),
    (10.0, "10 s"),
    (60.0, "1 min"),
    (600.0, "10 min"),
    (3600.0, "1 h"),
    (86400.0, "1 d"),
    (864000.0, "10 d"),
    (8640000.0, "100 d"),
)


def require_matplotlib() -> None:
    """Fail early, with the install command, when matplotlib is missing.

    Raises:
        ImportError: matplotlib cannot be imported.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "plots need matplotlib: pip install 'gpusim[plot]' (or pip install matplotlib)"
        ) from exc


def _figure(width: float, height: float) -> Figure:
    """A new figure on its own Agg canvas (no pyplot, no display)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def time_unit(span: float) -> tuple[float, str]:
    """Divisor and name of a readable unit for a span of simulated seconds."""
    if span <= 120:
        return 1.0, "s"
    if span <= 2 * 3600:
        return 60.0, "min"
    if span <= 3 * 86400:
        return 3600.0, "h"
    return 86400.0, "days"


def step_resample(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Value of a step function (``values[i]`` holds from ``times[i]`` on) at each grid point.

    ``times`` must be sorted; before the first time the value is 0. Rows at the same time keep
    the last one.
    """
    idx = np.searchsorted(np.asarray(times, dtype=float), grid, side="right") - 1
    vals = np.asarray(values, dtype=float)
    return np.where(idx >= 0, vals[np.maximum(idx, 0)], 0.0)


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    return out


def _duration_axis(ax, top: float) -> None:
    """Symmetric-log x-axis in seconds with human duration ticks up to ``top`` seconds."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ticks = [(v, lab) for v, lab in _DURATION_TICKS if v <= max(top, 1.0) * 1.01]
    ax.xaxis.set_major_locator(FixedLocator([v for v, _ in ticks]))
    ax.set_xticklabels([lab for _, lab in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    # a little room left of 0 so that a jump at 0 (jobs that never waited) stays visible
    ax.set_xlim(-0.2, max(top, 1.0) * 1.3)


def cdf_plot(samples: Mapping[str, np.ndarray], xlabel: str, title: str, path: str | Path) -> Path:
    """Empirical CDF of durations (seconds), one line per label; saved as PNG.

    Args:
        samples: label -> durations in seconds (NaN ignored).
        xlabel: what is measured, e.g. ``"Job completion time"``.
        title: figure title.
        path: PNG file to write.

    Returns:
        The written path.
    """
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    top = 1.0
    for label, values in samples.items():
        x = np.sort(np.asarray(values, dtype=float))
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        y = np.arange(1, x.size + 1) / x.size
        ax.step(np.concatenate([[0.0], x]), np.concatenate([[0.0], y]), where="post", label=label)
        top = max(top, float(x[-1]))
    _duration_axis(ax, top)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"{xlabel} (log scale above 1 s)")
    ax.set_ylabel("Fraction of jobs ≤ x")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if samples:
        ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def timeline_plot(
    series: Mapping[str, pd.DataFrame],
    path: str | Path,
    capacity: float | None = None,
    title: str = "Cluster over time",
) -> Path:
    """Allocated GPUs (top) and queue length (bottom) over simulated time; saved as PNG.

    Args:
        series: label -> frame with ``time`` (s), ``allocated_gpus`` and ``queue_length``,
            drawn as steps (a value holds until the next row).
        path: PNG file to write.
        capacity: cluster GPUs, drawn as a dashed line on the top panel.
        title: figure title.

    Returns:
        The written path.
    """
    fig = _figure(8, 6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    span = max((float(f["time"].max()) for f in series.values() if len(f)), default=1.0)
    div, unit = time_unit(span)
    for label, frame in series.items():
        t = frame["time"].to_numpy(dtype=float) / div
        top.step(t, frame["allocated_gpus"], where="post", label=label)
        bottom.step(t, frame["queue_length"], where="post", label=label)
    if capacity:
        top.axhline(capacity, color="grey", linestyle="--", linewidth=1, label="cluster GPUs")
    top.set_ylabel("Allocated GPUs")
    bottom.set_ylabel("Queued jobs")
    bottom.set_xlabel(f"Simulated time ({unit})")
    most_queued = max(
        (float(f["queue_length"].max()) for f in series.values() if len(f)), default=0
    )
    top.set_ylim(bottom=0)
    bottom.set_ylim(0, max(1.0, most_queued * 1.05))
    bottom.set_xlim(0, span / div)
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    top.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def _queue_matrix(queues: pd.DataFrame, grid: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Allocated GPUs per queue sampled on ``grid``: the busiest queues, then ``other``."""
    names, rows = [], []
    for name, part in queues.groupby("queue", sort=True):
        part = part.sort_values("time", kind="stable")
        names.append(str(name))
        rows.append(step_resample(part["time"].to_numpy(), part["allocated_gpus"].to_numpy(), grid))
    matrix = np.array(rows)
    order = np.argsort(-matrix.sum(axis=1), kind="stable")
    # an "other" band only when it sums two or more queues
    cut = len(order) if len(order) <= MAX_QUEUES + 1 else MAX_QUEUES
    keep, rest = order[:cut], order[cut:]
    labels = [names[i] for i in keep]
    stacked = [matrix[i] for i in keep]
    if rest.size:
        labels.append(f"other ({rest.size} queues)")
        stacked.append(matrix[rest].sum(axis=0))
    return labels, np.array(stacked)


def queue_share_plot(
    panels: Mapping[str, tuple[pd.DataFrame, float]],
    path: str | Path,
    title: str = "Share of cluster GPUs per queue",
) -> Path:
    """Stacked share of the cluster's GPUs held by each queue over time, one panel per run.

    Args:
        panels: panel title -> (a run's ``queues`` table with ``time``, ``queue`` and
            ``allocated_gpus``; that run's cluster GPUs, 100 % on the y-axis).
        path: PNG file to write.
        title: figure title.

    Returns:
        The written path.
    """
    n = max(len(panels), 1)
    fig = _figure(8, 1.0 + 2.6 * n)
    axes = np.atleast_1d(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0])
    span = max((float(q["time"].max()) for q, _ in panels.values() if len(q)), default=1.0)
    div, unit = time_unit(span)
    grid = np.linspace(0.0, span, GRID_POINTS)
    for ax, (label, (queues, capacity)) in zip(axes, panels.items(), strict=False):
        if len(queues):
            names, matrix = _queue_matrix(queues, grid)
            ax.stackplot(grid / div, 100.0 * matrix / capacity, labels=names, step="post")
            ax.legend(loc="upper right", fontsize="x-small", ncol=2)
        ax.set_title(label, fontsize="medium")
        ax.set_ylabel("Cluster GPUs (%)")
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel(f"Simulated time ({unit})")
    axes[-1].set_xlim(0, span / div)
    fig.suptitle(title)
    return _save(fig, path)


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the plots of one finished run into ``out_dir`` (default: the run directory).

    Files: ``jct_cdf.png``, ``wait_cdf.png``, ``timeline.png`` and, when the run recorded
    two or more queues (``queues.parquet``), ``queues.png``.

    Returns:
        The written paths.
    """
    from simulator.output.results import load_run

    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path
    label = str(run.summary.get("policy", "run"))
    done = run.jobs[run.jobs["status"] == "finished"]
    capacity = run.summary.get("cluster_gpus")
    paths = [
        cdf_plot(
            {label: done["jct"].to_numpy()}, "Job completion time", "JCT CDF", out / "jct_cdf.png"
        ),
        cdf_plot(
            {label: done["wait_time"].to_numpy()},
            "Wait time",
            "Wait-time CDF",
            out / "wait_cdf.png",
        ),
        timeline_plot({label: run.timeline}, out / "timeline.png", capacity=capacity),
    ]
    queues = run.table("queues") if (run.path / "queues.parquet").is_file() else None
    if queues is not None and queues["queue"].nunique() >= 2 and capacity:
        paths.append(queue_share_plot({label: (queues, float(capacity))}, out / "queues.png"))
    return paths


def png_size(path: str | Path) -> tuple[int, int]:
    """Width and height in pixels of a PNG file, read from its header."""
    head = Path(path).read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
