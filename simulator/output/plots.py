"""PNG plots of one run or of groups of runs (matplotlib, needs the ``plot`` extra).

Figures are drawn with matplotlib's object API on an Agg canvas: no pyplot, no global figure
state, no display needed, so plots can be made inside parallel sweep workers. Each plot has a
``*_figure`` function that returns the :class:`~matplotlib.figure.Figure` and a ``*_plot``
function that saves it as PNG (with the figure's title in the PNG's ``Title`` metadata).

* Titles name what is shown, then the policy, the trace and the cluster
  (:func:`describe`); trace file paths are shortened to file names.
* Legends sit below the axes, never on the data, and carry no file paths. Runs given a
  ``styles`` entry are drawn in that colour and line style (the sweep report gives runs that
  differ in one override paired colours, and draws a run identical to an earlier one dashed).
* Durations (JCT, wait) are drawn on a symmetric-log axis (linear below 1 s, so zero waits
  are visible) with ticks labelled ``1 s``, ``1 min``, ``1 h``, ``1 d``.
* Simulated time on the x-axis of timelines is in minutes, hours or days, whichever suits the
  span shown. When a long tail (a few jobs running long after the rest) would take most of
  the width, the axis ends shortly after the time by which 99 % of the jobs had finished
  (:func:`tail_cut`) and the axis label says so.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "RUN_PLOTS",
    "TailCut",
    "cdf_figure",
    "cdf_plot",
    "describe",
    "plot_run",
    "png_size",
    "queue_share_figure",
    "queue_share_plot",
    "require_matplotlib",
    "run_figures",
    "save_png",
    "short_trace",
    "step_resample",
    "tail_cut",
    "time_unit",
    "timeline_figure",
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

TAIL_SHARE = 0.99
"""Share of the jobs whose finishing the x-axis of a cut timeline still shows."""

TAIL_MIN_GAIN = 0.8
"""A timeline is cut only when the cut leaves out more than 20 % of its span."""

TAIL_MARGIN = 1.05
"""A cut axis ends this factor after the time by which :data:`TAIL_SHARE` of jobs finished."""

TITLE_WIDTH = 100
"""Characters per line of a figure title's description before it wraps."""

LEGEND_CHARS = 120
"""Characters of legend text that fit across a figure (sets the legend's columns); an entry
takes its label and about 10 characters for its handle and spacing."""

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

_PATH = re.compile(r"[^\s()]*/[^\s()]*")


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


def _short_time(seconds: float) -> str:
    """``3.2 h``, ``28.0 days``: a time in the unit that suits it, one decimal."""
    div, unit = time_unit(seconds)
    return f"{seconds / div:,.1f} {unit}"


def step_resample(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Value of a step function (``values[i]`` holds from ``times[i]`` on) at each grid point.

    ``times`` must be sorted; before the first time the value is 0. Rows at the same time keep
    the last one.
    """
    idx = np.searchsorted(np.asarray(times, dtype=float), grid, side="right") - 1
    vals = np.asarray(values, dtype=float)
    return np.where(idx >= 0, vals[np.maximum(idx, 0)], 0.0)


def short_trace(source: object) -> str:
    """A trace's name for titles and legends: every file path replaced by its file name.

    ``/data/philly/cluster_job_log (from philly)`` -> ``cluster_job_log (from philly)``;
    ``synthetic(num_jobs=100, load=0.8, seed=0)`` stays as it is.
    """
    return _PATH.sub(lambda m: Path(m.group(0).rstrip("/")).name or m.group(0), str(source))


def describe(policy: object = None, trace: object = None, cluster: object = None) -> str:
    """The description line of a figure title: ``policy gang · trace jobs.csv · cluster ...``.

    Parts that are None or empty are left out; the trace is shortened by :func:`short_trace`.
    """
    parts = [
        f"{name} {short_trace(value) if name == 'trace' else value}"
        for name, value in (("policy", policy), ("trace", trace), ("cluster", cluster))
        if value is not None and str(value) != ""
    ]
    return " · ".join(parts)


def _wrap(description: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken at `` · `` between parts if possible."""
    lines: list[str] = []
    for part in description.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines += textwrap.wrap(part, width) or [part]
    return lines


def _title(fig: Figure, what: str, description: str = "") -> None:
    """Figure title: what is shown, then the (wrapped) description line."""
    fig.suptitle("\n".join([what, *_wrap(description, TITLE_WIDTH)]), fontsize="medium")


def _legend(fig: Figure, handles: list, labels: list[str], ncols: int | None = None) -> None:
    """One legend for the whole figure, below the axes (it never covers data).

    ``ncols``: columns wanted (filled top to bottom), if they fit across the figure.
    """
    if not handles:
        return
    fits = max(1, LEGEND_CHARS // (max(len(label) for label in labels) + 10))
    ncols = min(ncols, fits) if ncols else min(len(labels), fits)
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize="small")


def save_png(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as PNG at ``path`` (directories created), its title in the metadata."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = fig.get_suptitle()
    fig.savefig(out, dpi=DPI, format="png", metadata={"Title": title} if title else None)
    return out


@dataclass(frozen=True)
class TailCut:
    """Where a timeline's x-axis ends when its long tail is left out (:func:`tail_cut`).

    Attributes:
        at: time (s) by which :attr:`share` of the jobs of every run had finished.
        end: time (s) of the last recorded change (where the uncut axis would end).
        share: share of the jobs finished by :attr:`at`.
    """

    at: float
    end: float
    share: float = TAIL_SHARE

    @property
    def limit(self) -> float:
        """End of the x-axis (s): a little after :attr:`at`."""
        return min(self.at * TAIL_MARGIN, self.end)

    def note(self) -> str:
        """What the axis label says about the cut."""
        return (
            f"cut at {_short_time(self.limit)}: {100 * self.share:g} % of jobs had finished "
            f"by {_short_time(self.at)}; the last change is at {_short_time(self.end)}"
        )


def tail_cut(
    end_times: Iterable[np.ndarray],
    span: float,
    share: float = TAIL_SHARE,
    min_gain: float = TAIL_MIN_GAIN,
) -> TailCut | None:
    """Cut of a timeline's x-axis that leaves out a long tail, or None when not worth it.

    Args:
        end_times: per run, the end times (s) of its finished jobs (NaN ignored).
        span: time (s) the uncut axis would reach (the last change of any run).
        share: share of each run's finished jobs the axis must still show.
        min_gain: cut only when the cut axis is shorter than ``min_gain * span``.

    Returns:
        The cut at the latest of the runs' ``share`` quantiles of end times, if that is
        below ``min_gain * span``.
    """
    quantiles = []
    for times in end_times:
        t = np.asarray(times, dtype=float)
        t = t[np.isfinite(t)]
        if t.size:
            quantiles.append(float(np.quantile(t, share)))
    if not quantiles or not span > 0:
        return None
    at = max(quantiles)
    if not 0 < at * TAIL_MARGIN < min_gain * span:
        return None
    return TailCut(at=at, end=float(span), share=share)


def _duration_axis(ax, low: float, top: float) -> None:
    """Symmetric-log x-axis in seconds with human duration ticks from ``low`` to ``top``.

    When every value is at least 1 s the axis starts at the duration tick below the smallest
    one (no empty decades on the left); otherwise at 0, with a little room left of it so that
    a jump at 0 (jobs that never waited) stays visible.
    """
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    top = max(top, 1.0)
    start = max((v for v, _ in _DURATION_TICKS if 0 < v <= low), default=0.0)
    # up to the first tick at or above the largest value, when there is one
    stop = min((v for v, _ in _DURATION_TICKS if v >= top), default=top)
    ticks = [(v, lab) for v, lab in _DURATION_TICKS if start <= v <= stop]
    ax.xaxis.set_major_locator(FixedLocator([v for v, _ in ticks]))
    ax.set_xticklabels([lab for _, lab in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(start / 1.3 if start else -0.2, stop * 1.3)


def cdf_figure(
    samples: Mapping[str, np.ndarray],
    xlabel: str,
    title: str,
    description: str = "",
    styles: Mapping[str, dict] | None = None,
    legend_columns: int | None = None,
) -> Figure:
    """Empirical CDF of durations (seconds), one line per label.

    Args:
        samples: legend label -> durations in seconds (NaN ignored).
        xlabel: what is measured, e.g. ``"Job completion time"``.
        title: what the figure shows, e.g. ``"JCT CDF"``.
        description: second title line (:func:`describe`).
        styles: label -> keyword arguments of the line (``color``, ``linestyle``).
        legend_columns: columns of the legend (filled top to bottom), if they fit.

    Returns:
        The figure.
    """
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    low, top = math.inf, 1.0
    for label, values in samples.items():
        x = np.sort(np.asarray(values, dtype=float))
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        y = np.arange(1, x.size + 1) / x.size
        style = (styles or {}).get(label, {})
        ax.step(
            np.concatenate([[0.0], x]),
            np.concatenate([[0.0], y]),
            where="post",
            label=label,
            **style,
        )
        low, top = min(low, float(x[0])), max(top, float(x[-1]))
    _duration_axis(ax, low if math.isfinite(low) else 0.0, top)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"{xlabel} (log scale above 1 s)")
    ax.set_ylabel("Fraction of jobs ≤ x")
    ax.grid(True, alpha=0.3)
    _title(fig, title, description)
    _legend(fig, *ax.get_legend_handles_labels(), legend_columns)
    return fig


def cdf_plot(
    samples: Mapping[str, np.ndarray],
    xlabel: str,
    title: str,
    path: str | Path,
    description: str = "",
    styles: Mapping[str, dict] | None = None,
    legend_columns: int | None = None,
) -> Path:
    """:func:`cdf_figure` saved as PNG at ``path``; returns the path."""
    fig = cdf_figure(samples, xlabel, title, description, styles, legend_columns)
    return save_png(fig, path)


def _span(frames: Iterable[pd.DataFrame]) -> float:
    return max((float(f["time"].max()) for f in frames if len(f)), default=1.0)


def _time_axis(ax, span: float, cut: TailCut | None) -> tuple[float, str]:
    """Set the x-range of a timeline (cut or not) and its label; returns the time unit."""
    end = cut.limit if cut is not None else span
    div, unit = time_unit(end)
    ax.set_xlim(0, end / div)
    label = f"Simulated time ({unit})"
    ax.set_xlabel(label if cut is None else f"{label}\n{cut.note()}")
    return div, unit


def timeline_figure(
    series: Mapping[str, pd.DataFrame],
    capacity: float | None = None,
    title: str = "Cluster over time",
    description: str = "",
    styles: Mapping[str, dict] | None = None,
    cut: TailCut | None = None,
    legend_columns: int | None = None,
) -> Figure:
    """Allocated GPUs (top) and queue length (bottom) over simulated time.

    Args:
        series: legend label -> frame with ``time`` (s), ``allocated_gpus`` and
            ``queue_length``, drawn as steps (a value holds until the next row).
        capacity: cluster GPUs, drawn as a dotted line on the top panel.
        title: what the figure shows.
        description: second title line (:func:`describe`).
        styles: label -> keyword arguments of the lines (``color``, ``linestyle``).
        cut: end the x-axis there (:func:`tail_cut`) and say so in the axis label.
        legend_columns: columns of the legend (filled top to bottom), if they fit.

    Returns:
        The figure.
    """
    from matplotlib.ticker import MaxNLocator

    fig = _figure(8, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    div, _ = _time_axis(bottom, _span(series.values()), cut)
    end = bottom.get_xlim()[1] * div
    most_queued = 0.0
    for label, frame in series.items():
        t = frame["time"].to_numpy(dtype=float)
        style = (styles or {}).get(label, {})
        top.step(t / div, frame["allocated_gpus"], where="post", label=label, **style)
        bottom.step(t / div, frame["queue_length"], where="post", **style)
        shown = frame["queue_length"][t <= end]
        most_queued = max(most_queued, float(shown.max()) if len(shown) else 0.0)
    if capacity:
        top.axhline(capacity, color="grey", linestyle=":", linewidth=1)
    top.set_ylabel("Allocated GPUs" + ("\n(dotted: cluster GPUs)" if capacity else ""))
    bottom.set_ylabel("Queued jobs")
    top.set_ylim(bottom=0)
    bottom.set_ylim(0, max(1.0, most_queued * 1.05))
    for ax in (top, bottom):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # whole
        ax.grid(True, alpha=0.3)
    _title(fig, title, description)
    _legend(fig, *top.get_legend_handles_labels(), legend_columns)
    return fig


def timeline_plot(
    series: Mapping[str, pd.DataFrame],
    path: str | Path,
    capacity: float | None = None,
    title: str = "Cluster over time",
    description: str = "",
    styles: Mapping[str, dict] | None = None,
    cut: TailCut | None = None,
    legend_columns: int | None = None,
) -> Path:
    """:func:`timeline_figure` saved as PNG at ``path``; returns the path."""
    fig = timeline_figure(series, capacity, title, description, styles, cut, legend_columns)
    return save_png(fig, path)


def _queue_rows(queues: pd.DataFrame, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Allocated GPUs of each queue sampled on ``grid``."""
    rows = {}
    for name, part in queues.groupby("queue", sort=True):
        part = part.sort_values("time", kind="stable")
        rows[str(name)] = step_resample(
            part["time"].to_numpy(), part["allocated_gpus"].to_numpy(), grid
        )
    return rows


def _queue_bands(panels: list[dict[str, np.ndarray]]) -> tuple[list[str], list[str]]:
    """The queues drawn as their own band (busiest over all panels first) and the rest.

    An ``other`` band only when it sums two or more queues.
    """
    totals: dict[str, float] = {}
    for rows in panels:
        for name, row in rows.items():
            totals[name] = totals.get(name, 0.0) + float(row.sum())
    order = sorted(totals, key=lambda n: (-totals[n], n))
    cut = len(order) if len(order) <= MAX_QUEUES + 1 else MAX_QUEUES
    return order[:cut], order[cut:]


def queue_share_figure(
    panels: Mapping[str, tuple[pd.DataFrame, float]],
    title: str = "Share of cluster GPUs per queue",
    description: str = "",
    cut: TailCut | None = None,
) -> Figure:
    """Stacked share of the cluster's GPUs held by each queue over time, one panel per run.

    A queue has the same colour in every panel; one legend serves all panels.

    Args:
        panels: panel title -> (a run's ``queues`` table with ``time``, ``queue`` and
            ``allocated_gpus``; that run's cluster GPUs, 100 % on the y-axis).
        title: what the figure shows.
        description: second title line (:func:`describe`).
        cut: end the x-axis there (:func:`tail_cut`) and say so in the axis label.

    Returns:
        The figure.
    """
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    n = max(len(panels), 1)
    fig = _figure(8, 1.8 + 2.4 * n)
    axes = np.atleast_1d(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0])
    div, _ = _time_axis(axes[-1], _span(q for q, _ in panels.values()), cut)
    grid = np.linspace(0.0, axes[-1].get_xlim()[1] * div, GRID_POINTS)
    rows = [_queue_rows(q, grid) if len(q) else {} for q, _ in panels.values()]
    kept, rest = _queue_bands(rows)
    palette = colormaps["tab10"].colors
    colours = {name: palette[i % len(palette)] for i, name in enumerate(kept)}
    other = f"other ({len(rest)} queues)"
    colours[other] = "lightgrey"
    for ax, (label, (_, capacity)), run_rows in zip(axes, panels.items(), rows, strict=False):
        if run_rows:
            names = [q for q in kept if q in run_rows]
            stack = [run_rows[q] for q in names]
            if any(q in run_rows for q in rest):
                names.append(other)
                stack.append(np.sum([run_rows[q] for q in rest if q in run_rows], axis=0))
            ax.stackplot(
                grid / div,
                100.0 * np.array(stack) / capacity,
                colors=[colours[q] for q in names],
                step="post",
            )
        ax.set_title(label, fontsize="medium")
        ax.set_ylabel("Cluster GPUs (%)")
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
    names = [*kept, *([other] if rest else [])]
    _title(fig, title, description)
    _legend(fig, [Patch(color=colours[q]) for q in names], names)
    return fig


def queue_share_plot(
    panels: Mapping[str, tuple[pd.DataFrame, float]],
    path: str | Path,
    title: str = "Share of cluster GPUs per queue",
    description: str = "",
    cut: TailCut | None = None,
) -> Path:
    """:func:`queue_share_figure` saved as PNG at ``path``; returns the path."""
    return save_png(queue_share_figure(panels, title, description, cut), path)


def run_figures(run_dir: str | Path) -> dict[str, Figure]:
    """The plots of one finished run: file name -> figure (see :func:`plot_run`)."""
    from simulator.output.results import load_run

    run = load_run(run_dir)
    s = run.summary
    label = str(s.get("policy", "run"))
    text = describe(s.get("policy"), s.get("trace"), s.get("cluster"))
    done = run.jobs[run.jobs["status"] == "finished"]
    capacity = s.get("cluster_gpus")
    queues = run.table("queues") if (run.path / "queues.parquet").is_file() else None
    frames = [run.timeline] + ([queues] if queues is not None else [])
    ends = [done["end_time"].to_numpy()] if "end_time" in done else []
    cut = tail_cut(ends, _span(frames))
    figures = {
        "jct_cdf.png": cdf_figure(
            {label: done["jct"].to_numpy()}, "Job completion time", "JCT CDF", text
        ),
        "wait_cdf.png": cdf_figure(
            {label: done["wait_time"].to_numpy()}, "Wait time", "Wait-time CDF", text
        ),
        "timeline.png": timeline_figure(
            {label: run.timeline}, capacity=capacity, description=text, cut=cut
        ),
    }
    if queues is not None and queues["queue"].nunique() >= 2 and capacity:
        # one panel: its title would repeat the figure's
        figures["queues.png"] = queue_share_figure(
            {"": (queues, float(capacity))}, description=text, cut=cut
        )
    return figures


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the plots of one finished run into ``out_dir`` (default: the run directory).

    Files: ``jct_cdf.png``, ``wait_cdf.png``, ``timeline.png`` and, when the run recorded
    two or more queues (``queues.parquet``), ``queues.png``.

    Returns:
        The written paths.
    """
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    return [save_png(fig, out / name) for name, fig in run_figures(run_dir).items()]


def png_size(path: str | Path) -> tuple[int, int]:
    """Width and height in pixels of a PNG file, read from its header."""
    head = Path(path).read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
