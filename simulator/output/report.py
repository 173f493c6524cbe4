"""Compare the runs of a sweep: a summary table per policy, CDF and timeline plots, a report.

``python -m experiments.compare DIR`` (or ``python -m simulator.output.report DIR``) reads every run
under ``DIR`` with :func:`simulator.output.results.load_runs` and writes ``DIR/report/``:
``report.md`` and ``report.html`` (the same content) and the PNG plots they show
(``jct_cdf.png``, ``wait_cdf.png``, ``timeline.png``, ``queues.png``).

Runs are grouped by ``policy`` plus every override that takes more than one value in the sweep,
except seeds (``seed``, ``*.seed``): the runs of a group are replications, summarised as
mean ± Student-t confidence interval. The table needs only pandas; the plots need matplotlib
(the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.output import formats as fmt
from simulator.output import plots
from simulator.output.plots import time_unit
from simulator.output.results import (
    MANIFEST_FILE,
    load_breakdowns,
    load_runs,
    load_tables,
    mean_ci,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Report",
    "build_report",
    "group_keys",
    "group_labels",
    "main",
    "results_digest",
    "status_line",
    "summary_table",
    "sweep_description",
    "sweep_figures",
    "table_markdown",
]

METRICS = (
    ("jobs_finished", "finished jobs", "count"),
    ("avg_jct", "avg JCT", "time"),
    ("p50_jct", "p50 JCT", "time"),
    ("p99_jct", "p99 JCT", "time"),
    ("avg_wait", "avg wait", "time"),
    ("p99_wait", "p99 wait", "time"),
    ("gpu_utilization", "GPU utilization (%)", "share"),
    ("makespan", "makespan", "time"),
    ("gpus_allocated_at_end", "GPUs allocated at end (%)", "share"),
)
"""Summary columns of the report table: (metric, header, kind of number).

A column whose metric no run of the table has (every mean missing: JCTs when no job finished)
is left out, and so are ``makespan`` when no job finished and ``gpus_allocated_at_end`` when
every run ended with nothing running (it is the figure of runs cut by ``sim.until``, such as
the FGD allocation experiment).

Kinds (formats of :mod:`simulator.output.formats`): ``count`` (``1,234``), ``time`` (in the
column's unit: seconds with one decimal, min, h or days with two), ``share`` (a percentage
with one decimal, the ``%`` in the header).
"""

QUEUE_METRICS = (
    ("jobs", "jobs", "count"),
    ("avg_wait", "avg wait", "time"),
    ("p95_wait", "p95 wait", "time"),
    ("gpu_share", "GPU share (%)", "share"),
    ("preemptions", "preemptions", "count"),
)
"""Columns of the report's per-queue table (``summary.json`` ``queues``), as :data:`METRICS`."""

MAX_QUEUE_PANELS = 6
"""Groups shown in the per-queue plot (one panel each)."""


def _is_seed(key: str) -> bool:
    return key == "seed" or key.endswith(".seed")


def group_keys(runs: pd.DataFrame) -> list[str]:
    """``policy``, then every override column that splits the finished runs further.

    Seeds (``seed``, ``*.seed``) are never group keys: runs that differ only in seeds are
    replications. An override whose values split the runs exactly like the keys already chosen
    (``trace`` and ``trace.path`` swept together) is left out.
    """
    ok = runs[runs["run_status"] == "ok"] if "run_status" in runs else runs
    keys = ["policy"]
    for k in runs.attrs.get("overrides", []):
        if k in keys or k not in ok.columns or _is_seed(k):
            continue
        before = ok.reindex(columns=keys).astype(str).drop_duplicates()
        after = ok.reindex(columns=[*keys, k]).astype(str).drop_duplicates()
        if len(after) > len(before):
            keys.append(k)
    return keys


def _short_values(values: pd.Series) -> dict[str, str]:
    """Legend text of each value of a group key: file paths become file names.

    Two paths with the same file name get their directory's name added, ``jobs.csv (a)``;
    if that is still ambiguous, a number, ``jobs.csv #2``.
    """
    distinct = list(dict.fromkeys(values.astype(str)))
    short = {v: plots.short_trace(v) for v in distinct}

    def clashing() -> set[str]:
        names = list(short.values())
        return {v for v in distinct if names.count(short[v]) > 1}

    for v in clashing():
        parent = Path(v.rstrip("/")).parent.name if "/" in v else ""
        if parent:
            short[v] = f"{short[v]} ({parent})"
    seen: dict[str, int] = {}
    for v in [w for w in distinct if w in clashing()]:
        seen[short[v]] = seen.get(short[v], 0) + 1
        if seen[short[v]] > 1:
            short[v] = f"{short[v]} #{seen[short[v]]}"
    return short


def group_labels(runs: pd.DataFrame, by: list[str]) -> pd.Series:
    """Legend label per run: the policy, then ``key=value`` for the other group keys.

    Values that are file paths are shown by their file name (legends carry no paths).
    """
    if runs.empty:
        return pd.Series(dtype=str)
    shown = {k: _short_values(runs[k]) for k in by if k in runs}

    def label(row: pd.Series) -> str:
        parts = []
        for k in by:
            value = shown[k].get(str(row[k]), str(row[k])) if k in shown else str(row.get(k))
            parts.append(value if k == "policy" else f"{k}={value}")
        return ", ".join(parts)

    return runs.apply(label, axis=1)


def _number(value: float, kind: str, div: float) -> str:
    if kind == "share":
        return fmt.share(value, unit=False)
    if kind == "count":
        return fmt.count(value)
    return fmt.scaled(value, div)


def summary_table(
    runs: pd.DataFrame, by: list[str] | None = None, level: float = 0.95
) -> pd.DataFrame:
    """The report's table: one row per group, ``mean ± CI`` strings with units in the headers.

    Args:
        runs: the frame of :func:`simulator.output.results.load_runs`.
        by: group columns (default :func:`group_keys`).
        level: confidence level of the intervals.

    Returns:
        A frame of strings: the group columns, ``runs`` (finished / all runs of the group) and
        one column per metric of :data:`METRICS`, e.g. ``avg JCT (h)``.
    """
    by = by or group_keys(runs)
    ok = runs[runs["run_status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=[*by, "runs"])
    stats = mean_ci(ok, by=by, metrics=[m for m, _, _ in METRICS], level=level)
    every = runs.reindex(columns=by).astype(str).apply(tuple, axis=1).value_counts()
    table = stats[by].astype(str)
    table["runs"] = [
        f"{n}/{every.get(tuple(row), n)}"
        for n, row in zip(stats["runs"], table.to_numpy(), strict=True)
    ]
    for metric, header, kind in METRICS:
        if not _shown(stats, metric):
            continue
        _add_column(table, stats, metric, header, kind)
    return table.reset_index(drop=True)


def queue_table(path: str | Path, by: list[str], level: float = 0.95) -> pd.DataFrame:
    """The report's per-queue table: one row per group and queue, ``mean ± CI`` strings.

    Built from :func:`~simulator.output.results.load_breakdowns` (``summary.json``'s
    ``queues``) of the finished runs under ``path``; empty when no run has two or more queues.
    A metric that runs of an older layout lack is left out.
    """
    rows = load_breakdowns(path, by="queue")
    if rows.empty:
        return pd.DataFrame()
    counts = rows.groupby("run_dir", observed=True)["queue"].transform("size")
    rows = rows[counts >= 2].copy()
    metrics = [m for m, _, _ in QUEUE_METRICS if m in rows.columns]
    if rows.empty or not metrics:
        return pd.DataFrame()
    keys = [k for k in by if k in rows.columns] + ["queue"]
    rows["queue"] = rows["queue"].astype(str)
    stats = mean_ci(rows, by=keys, metrics=metrics, level=level)
    table = stats[keys].astype(str)
    for metric, header, kind in QUEUE_METRICS:
        if metric not in metrics:
            continue
        _add_column(table, stats, metric, header, kind)
    return table.reset_index(drop=True)


def _add_column(table: pd.DataFrame, stats: pd.DataFrame, metric: str, header: str, kind: str):
    """Add ``metric``'s ``mean ± CI`` cells of :func:`mean_ci` ``stats`` to ``table``."""
    means, cis = stats[f"{metric}_mean"], stats[f"{metric}_ci"]
    peak = float(means.max()) if means.notna().any() else 0.0
    div, unit = time_unit(peak) if kind == "time" else (1.0, "")
    cells = []
    for m, c in zip(means, cis, strict=True):
        cell = _number(m, kind, div)
        if math.isfinite(c) and cell != fmt.MISSING:
            cell += f" ± {_number(c, kind, div)}"
        cells.append(cell)
    table[f"{header} ({unit})" if unit else header] = cells


def _shown(stats: pd.DataFrame, metric: str) -> bool:
    """Whether the table gets ``metric``'s column (see :data:`METRICS`)."""
    means = stats.get(f"{metric}_mean")
    if means is None or not means.notna().any():
        return False
    if metric == "makespan":
        finished = stats.get("jobs_finished_mean")
        return finished is None or bool((finished.fillna(0) > 0).any())
    if metric == "gpus_allocated_at_end":
        return bool((means.fillna(0) > 0).any())
    return True


def status_line(runs: pd.DataFrame) -> str:
    """``6 runs: 5 ok, 1 failed, 0 incomplete``."""
    counts = runs["run_status"].value_counts()
    parts = [f"{int(counts.get(s, 0))} {s}" for s in ("ok", "failed", "incomplete")]
    return f"{len(runs)} runs: " + ", ".join(parts)


def _escaped(table: pd.DataFrame) -> pd.DataFrame:
    """Cells and headers as text that cannot break a pipe table (``|`` escaped, one line)."""

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    return table.astype(str).map(cell).rename(columns=cell)


def table_markdown(table: pd.DataFrame) -> str:
    """A pipe table (``DataFrame.to_markdown``), cells as given (``|`` escaped, no padding)."""
    if table.columns.empty:
        return ""
    # cells are already formatted text: no number parsing, no padding (one line per row)
    return _escaped(table).to_markdown(
        index=False, tablefmt="pipe", disable_numparse=True, stralign=None, numalign=None
    )


def _table_html(table: pd.DataFrame) -> str:
    """An HTML table (``DataFrame.to_html``, cells HTML-escaped)."""
    return table.astype(str).to_html(index=False, escape=True, border=0)


@dataclass
class Report:
    """What :func:`build_report` wrote.

    Attributes:
        markdown: ``report.md``.
        html: ``report.html``.
        images: the PNG plots, in report order.
        table: the summary table (strings, as shown).
        runs: the runs, as :func:`simulator.output.results.load_runs` returned them.
    """

    markdown: Path
    html: Path
    images: list[Path] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)


_FIGURES = (
    ("jct_cdf.png", "Job completion time", "CDF of job completion time per group."),
    ("wait_cdf.png", "Waiting time", "CDF of waiting time (submit to first start) per group."),
    ("timeline.png", "Cluster over time", "Allocated GPUs and queued jobs over simulated time."),
    ("queues.png", "Per-queue share", "Share of the cluster's GPUs held by each queue."),
)


def results_digest(run_dir: str | Path) -> str | None:
    """A digest of a run's result tables (from ``manifest.json``), or None if unreadable.

    Two runs with the same digest wrote byte-identical tables: the same results, whatever
    their config (the summary, holding the policy's name and the wall time, is left out).
    """
    try:
        files = json.loads((Path(run_dir) / MANIFEST_FILE).read_text())["files"]
        tables = sorted((n, e["sha256"]) for n, e in files.items() if n.endswith(".parquet"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return hashlib.sha256(json.dumps(tables).encode()).hexdigest()[:16] if tables else None


def _values_text(values: pd.Series, plural: str, shorten: bool = False) -> str | None:
    """``fifo`` or ``fifo vs gang`` or ``5 policies``: the distinct values of a column."""
    text = values.dropna().astype(str)
    if shorten:
        text = text.map(plots.short_trace)
        if text.nunique() > 1:  # synthetic traces named with their seed: one trace
            text = text.str.replace(r"(,\s*)?\bseed=\d+", "", regex=True)
    distinct = list(dict.fromkeys(text))
    if not distinct:
        return None
    return " vs ".join(distinct) if len(distinct) <= 3 else f"{len(distinct)} {plural}"


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    """A summary field of the runs (``summary.NAME`` when an override took the name)."""
    for col in (f"summary.{name}", name):
        if col in runs:
            return runs[col]
    return pd.Series(dtype=str)


def sweep_description(runs: pd.DataFrame) -> str:
    """Second title line of the sweep's plots: its policies, traces and clusters."""
    return plots.describe(
        _values_text(runs["policy"], "policies") if "policy" in runs else None,
        _values_text(_column(runs, "trace"), "traces", shorten=True),
        _values_text(_column(runs, "cluster"), "clusters"),
    )


def _palette(keys: pd.DataFrame) -> tuple[list, int | None]:
    """A colour per group (rows of ``keys``, the group key values, in legend order).

    Groups that differ only in the first varying key (``fifo`` and ``gang`` on the same
    cluster) share a hue in two shades (matplotlib's ``tab20`` pairs; lighter and lighter
    shades of a ``tab10`` hue for families of three and more). With one varying key every
    group gets its own ``tab10`` colour.

    Returns:
        The colours, and the number of shades when every family has each of them (the legend
        then shows one family per row), else None.
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    tab10, tab20 = colormaps["tab10"].colors, colormaps["tab20"].colors
    text = keys.astype(str)
    varying = [k for k in text.columns if text[k].nunique() > 1]
    if len(varying) < 2:
        return [tab10[i % len(tab10)] for i in range(len(keys))], None
    family = text[varying[1:]].apply(tuple, axis=1).tolist()
    families = list(dict.fromkeys(family))
    members = {f: [i for i, g in enumerate(family) if g == f] for f in families}
    size = max(len(m) for m in members.values())
    colours = []
    for i, f in enumerate(family):
        k, j = families.index(f), members[f].index(i)
        if size <= 2 and len(families) <= len(tab20) // 2:
            colours.append(tab20[2 * k + j])
        else:
            base = np.array(to_rgb(tab10[k % len(tab10)]))
            mix = 0.65 * j / max(size - 1, 1)
            colours.append(tuple(base + (1.0 - base) * mix))
    shades = text[varying[0]].nunique()
    complete = all(len(m) == shades for m in members.values())
    # groups come sorted by the shade key first: column-major legend rows are the families
    return colours, (shades if complete else None)


@dataclass
class _Group:
    """One group of runs as the plots show it."""

    label: str
    runs: pd.DataFrame
    colour: object
    same_as: str | None = None  # the earlier group whose runs wrote the same results
    dash: tuple[int, int] = (0, 1)  # this group's place among the copies of same_as, of n

    def shown(self, suffix: str = "") -> str:
        """Legend label: the group, ``suffix``, and ``(= other group)`` when identical."""
        same = f" (= {self.same_as})" if self.same_as else ""
        return f"{self.label}{suffix}{same}"

    @property
    def style(self) -> dict:
        """Line style: the group's colour, dashed when identical to an earlier group.

        Several copies of one group get dashes that take turns, with gaps where the first
        group's line shows.
        """
        if not self.same_as:
            return {"color": self.colour}
        i, n = self.dash
        return {"color": self.colour, "linestyle": (4 * i, (4, 4 * n))}


def _groups(ok: pd.DataFrame, by: list[str]) -> tuple[list[_Group], int | None]:
    """The groups of the finished runs in legend order, coloured, identical ones marked.

    Returns:
        The groups and the legend's columns (see :func:`_palette`).
    """
    ok = _sorted_runs(ok, by)
    labels = group_labels(ok, by)
    parts = [(label, part) for label, part in ok.groupby(labels, sort=False)]
    keys = pd.DataFrame([part.iloc[0].reindex(by) for _, part in parts], columns=by)
    colours, columns = _palette(keys)
    groups = [
        _Group(label, part, colour) for (label, part), colour in zip(parts, colours, strict=True)
    ]
    copies: dict[tuple, list[_Group]] = {}
    for g in groups:
        digests = tuple(results_digest(d) for d in g.runs["run_dir"])
        if None not in digests:
            copies.setdefault(digests, []).append(g)
    for first, *rest in copies.values():
        for i, g in enumerate(rest):
            g.same_as, g.dash = first.label, (i, len(rest))
    return groups, columns


def _timeline_series(
    timelines: pd.DataFrame, groups: list[_Group], until: float | None
) -> tuple[dict, dict]:
    """Per group: its run's timeline or the mean of its runs' timelines (up to ``until``).

    Returns:
        Legend label -> frame, and legend label -> line style.
    """
    series, styles = {}, {}
    for g in groups:
        parts = [timelines[timelines["run_dir"] == d] for d in g.runs["run_dir"]]
        parts = [p.sort_values("time", kind="stable") for p in parts if len(p)]
        if not parts:
            continue
        if len(parts) == 1:
            label, frame = g.shown(), parts[0]
        else:
            end = max(float(p["time"].max()) for p in parts)
            grid = np.linspace(0.0, min(end, until or end), plots.GRID_POINTS)
            mean = {
                col: np.mean([plots.step_resample(p["time"], p[col], grid) for p in parts], axis=0)
                for col in ("allocated_gpus", "queue_length")
            }
            label = g.shown(f" (mean of {len(parts)} runs)")
            frame = pd.DataFrame({"time": grid, **mean})
        series[label], styles[label] = frame, g.style
    return series, styles


def _queue_panels(groups: list[_Group]) -> dict:
    """Per group (up to :data:`MAX_QUEUE_PANELS`): its first run's queues table if 2+ queues.

    A run whose results equal an earlier panel's is named in that panel's title instead.
    """
    panels: list[list] = []  # [title, (queues, capacity)]
    index: dict[str, int] = {}  # results digest -> its panel
    for g in groups:
        part = g.runs
        first = part.sort_values(["seed", "run_dir"] if "seed" in part else "run_dir").iloc[0]
        f = Path(first["run_dir"]) / "queues.parquet"
        capacity = first.get("cluster_gpus")
        if not f.is_file() or not capacity:
            continue
        seed = f" (seed {first['seed']})" if "seed" in first and pd.notna(first["seed"]) else ""
        title = f"{g.label}{seed}"
        digest = results_digest(first["run_dir"])
        if digest in index:
            panels[index[digest]][0] += f" = {title}"
            continue
        if len(panels) == MAX_QUEUE_PANELS:
            continue
        queues = pd.read_parquet(f)
        if queues["queue"].nunique() < 2:
            continue
        if digest is not None:
            index[digest] = len(panels)
        panels.append([title, (queues, float(capacity))])
    return dict(panels)


def _sorted_runs(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Runs ordered by their group keys (numbers as numbers), so groups keep one order."""
    cols = [c for c in [*by, "seed"] if c in runs.columns]
    try:
        return runs.sort_values(cols, kind="stable", na_position="last")
    except TypeError:  # a key column mixing numbers and text
        return runs.sort_values(cols, kind="stable", key=lambda c: c.astype(str))


def _figures(path: Path, ok: pd.DataFrame, by: list[str]) -> dict[str, Figure]:
    """The sweep's plots: file name -> figure."""
    groups, columns = _groups(ok, by)
    text = sweep_description(ok)
    jobs = load_tables(path, "jobs", columns=["jct", "wait_time", "status", "end_time"])
    jobs = jobs[jobs["status"] == "finished"]
    by_run = dict(tuple(jobs.groupby("run_dir", sort=False)))
    empty = jobs.iloc[:0]

    def pooled(g: _Group, col: str) -> np.ndarray:
        frames = [by_run.get(d, empty)[col] for d in g.runs["run_dir"]]
        return pd.concat(frames).to_numpy(dtype=float)

    styles = {g.shown(): g.style for g in groups}
    timelines = load_tables(path, "timeline")
    span = float(timelines["time"].max()) if len(timelines) else 1.0
    cut = plots.tail_cut((f["end_time"].to_numpy() for f in by_run.values()), span)
    series, line_styles = _timeline_series(timelines, groups, cut.limit if cut else None)
    capacities = ok["cluster_gpus"].dropna().unique() if "cluster_gpus" in ok else []
    figures = {
        "jct_cdf.png": plots.cdf_figure(
            {g.shown(): pooled(g, "jct") for g in groups},
            "Job completion time",
            "JCT CDF per group",
            text,
            styles,
            columns,
        ),
        "wait_cdf.png": plots.cdf_figure(
            {g.shown(): pooled(g, "wait_time") for g in groups},
            "Wait time",
            "Wait-time CDF per group",
            text,
            styles,
            columns,
        ),
        "timeline.png": plots.timeline_figure(
            series,
            capacity=float(capacities[0]) if len(capacities) == 1 else None,
            description=text,
            styles=line_styles,
            cut=cut,
            legend_columns=columns,
        ),
    }
    panels = _queue_panels(groups)
    if panels:
        figures["queues.png"] = plots.queue_share_figure(panels, description=text, cut=cut)
    return figures


def sweep_figures(path: str | Path, by: list[str] | None = None) -> dict[str, Figure]:
    """The plots of the report of the runs under ``path``: file name -> figure.

    What :func:`build_report` saves as PNG (``by``: group columns, default
    :func:`group_keys`).

    Raises:
        FileNotFoundError: ``path`` holds no finished run.
    """
    runs = load_runs(path)
    ok = runs[runs["run_status"] == "ok"] if len(runs) else runs
    if ok.empty:
        raise FileNotFoundError(f"{path}: no finished runs")
    return _figures(Path(path), ok, by or group_keys(runs))


def _plots(path: Path, out: Path, ok: pd.DataFrame, by: list[str]) -> list[Path]:
    return [plots.save_png(fig, out / name) for name, fig in _figures(path, ok, by).items()]


def _problems(runs: pd.DataFrame, root: Path) -> pd.DataFrame:
    bad = runs[runs["run_status"] != "ok"]
    rel = [str(Path(d).relative_to(root)) if Path(d) != root else "." for d in bad["run_dir"]]
    errors = bad["error"].fillna("") if "error" in bad else [""] * len(bad)
    return pd.DataFrame({"run": rel, "status": bad["run_status"].to_numpy(), "error": list(errors)})


def _blocks(
    root: Path, runs: pd.DataFrame, table: pd.DataFrame, by: list[str], level: float, images
) -> list[tuple[str, object]]:
    """The report as a list of (kind, content) blocks, rendered to Markdown and HTML."""
    blocks: list[tuple[str, object]] = [
        ("h1", "Sweep report"),
        ("p", f"{root}: {status_line(runs)}."),
        ("h2", "Summary per " + ", ".join(by)),
        (
            "p",
            f"Mean ± {100 * level:g} % confidence interval (Student t) over the finished runs "
            "of each group (seeds are replications); a value without ± comes from one run. "
            "Times are over finished jobs.",
        ),
        ("table", table),
    ]
    queues = queue_table(root, by, level)
    if len(queues):
        blocks += [
            ("h2", "Per queue"),
            (
                "p",
                "Mean ± confidence interval over the finished runs of each group: wait of the "
                "queue's finished jobs, its share of the cluster's GPU-seconds, preemptions "
                "of its jobs.",
            ),
            ("table", queues),
        ]
    names = {p.name for p in images}
    for file, heading, caption in _FIGURES:
        if file in names:
            blocks += [("h2", heading), ("p", caption), ("img", (heading, file))]
    problems = _problems(runs, root)
    if len(problems):
        blocks += [("h2", "Failed and incomplete runs"), ("table", problems)]
    return blocks


def _markdown(blocks: list[tuple[str, object]]) -> str:
    out = []
    for kind, content in blocks:
        if kind == "h1":
            out.append(f"# {content}")
        elif kind == "h2":
            out.append(f"## {content}")
        elif kind == "table":
            out.append(table_markdown(content))
        elif kind == "img":
            alt, file = content
            out.append(f"![{alt}]({file})")
        else:
            out.append(str(content))
    return "\n\n".join(out) + "\n"


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}td{white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%;border:1px solid #eee}"
)


def _html(blocks: list[tuple[str, object]], title: str) -> str:
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{html.escape(str(content))}</{kind}>")
        elif kind == "table":
            out.append(_table_html(content))
        elif kind == "img":
            alt, file = content
            out.append(f'<img src="{html.escape(file)}" alt="{html.escape(alt)}">')
        else:
            out.append(f"<p>{html.escape(str(content))}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_report(
    path: str | Path,
    out_dir: str | Path | None = None,
    by: list[str] | None = None,
    level: float = 0.95,
    plots: bool = True,
) -> Report:
    """Write the Markdown and HTML report of the runs under ``path``.

    Args:
        path: a multirun directory (or any tree of runs).
        out_dir: where to write (default ``path/report``).
        by: group columns (default :func:`group_keys`: policy + varying overrides).
        level: confidence level of the intervals.
        plots: draw the PNG plots (needs matplotlib).

    Returns:
        The paths written, the table and the runs.

    Raises:
        FileNotFoundError: ``path`` is not a directory or holds no run.
    """
    root = Path(path)
    runs = load_runs(root)
    if runs.empty:
        raise FileNotFoundError(f"{root}: no runs found (no summary.json or .hydra record)")
    by = by or group_keys(runs)
    out = Path(out_dir) if out_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    table = summary_table(runs, by, level)
    ok = runs[runs["run_status"] == "ok"]
    images = _plots(root, out, ok, by) if plots and len(ok) else []
    blocks = _blocks(root, runs, table, by, level, images)
    md, page = out / "report.md", out / "report.html"
    md.write_text(_markdown(blocks))
    page.write_text(_html(blocks, f"Sweep report: {root}"))
    return Report(markdown=md, html=page, images=images, table=table, runs=runs)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m experiments.compare DIR [--out OUT] [--by COL ...]``.

    Returns:
        The exit status: 0 done, 1 the report could not be written, 2 usage or input error
        (no runs under DIR, an unknown ``--by`` column, matplotlib missing for the plots),
        130 interrupted.
    """
    parser = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description="Summary table and plots (Markdown + HTML + PNG) of the runs under DIR.",
    )
    parser.add_argument("dir", type=Path, help="multirun directory (hydra.sweep.dir)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (DIR/report)")
    parser.add_argument(
        "--by", nargs="+", default=None, help="group columns (policy + varying overrides)"
    )
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (0.95)")
    parser.add_argument("--no-plots", action="store_true", help="only the table, no PNGs")
    args = parser.parse_args(argv)
    if not 0 < args.level < 1:
        parser.error(f"--level must lie in (0, 1), got {args.level}")
    try:
        report = build_report(args.dir, args.out, args.by, args.level, not args.no_plots)
    except (FileNotFoundError, KeyError, ImportError) as exc:
        # no runs there, an unknown --by column, matplotlib missing: the command's fault
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the report: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(status_line(report.runs))
    print(table_markdown(report.table))
    print(f"report: {report.markdown}\n        {report.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
