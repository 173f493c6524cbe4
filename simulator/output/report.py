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
import html
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.output import plots
from simulator.output.plots import time_unit
from simulator.output.results import load_runs, load_tables, mean_ci

__all__ = [
    "Report",
    "build_report",
    "group_keys",
    "group_labels",
    "main",
    "status_line",
    "summary_table",
    "table_markdown",
]

METRICS = (
    ("jobs_finished", "finished jobs", "count"),
    ("avg_jct", "avg JCT", "time"),
    ("p50_jct", "p50 JCT", "time"),
    ("p99_jct", "p99 JCT", "time"),
    ("avg_wait", "avg wait", "time"),
    ("p99_wait", "p99 wait", "time"),
    ("gpu_utilization", "GPU utilization (%)", "percent"),
    ("makespan", "makespan", "time"),
)
"""Summary columns of the report table: (metric, header, kind of number)."""

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


def group_labels(runs: pd.DataFrame, by: list[str]) -> pd.Series:
    """Legend label per run: the policy, then ``key=value`` for the other group keys."""

    def label(row: pd.Series) -> str:
        parts = [str(row[k]) if k == "policy" else f"{k}={row[k]}" for k in by]
        return ", ".join(parts)

    if runs.empty:
        return pd.Series(dtype=str)
    return runs.apply(label, axis=1)


def _number(value: float, kind: str, div: float) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if kind == "percent":
        return f"{100 * value:.1f}"
    if kind == "count":
        return f"{value:,.0f}"
    v = value / div
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}"


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
        if f"{metric}_mean" not in stats:
            continue
        means, cis = stats[f"{metric}_mean"], stats[f"{metric}_ci"]
        peak = float(means.max()) if means.notna().any() else 0.0
        div, unit = time_unit(peak) if kind == "time" else (1.0, "")
        cells = []
        for m, c in zip(means, cis, strict=True):
            cell = _number(m, kind, div)
            if math.isfinite(c) and cell != "-":
                cell += f" ± {_number(c, kind, div)}"
            cells.append(cell)
        table[f"{header} ({unit})" if unit else header] = cells
    return table.reset_index(drop=True)


def status_line(runs: pd.DataFrame) -> str:
    """``6 runs: 5 ok, 1 failed, 0 incomplete``."""
    counts = runs["run_status"].value_counts()
    parts = [f"{int(counts.get(s, 0))} {s}" for s in ("ok", "failed", "incomplete")]
    return f"{len(runs)} runs: " + ", ".join(parts)


def table_markdown(table: pd.DataFrame) -> str:
    """A pipe table (cells with ``|`` escaped)."""

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join([head, rule, *body])


def _table_html(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in table.to_numpy()
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"


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


def _timeline_series(path: Path, runs: pd.DataFrame, labels: pd.Series) -> dict:
    """Per group: the run's timeline, or the mean of its runs' timelines on a common grid."""
    timelines = load_tables(path, "timeline")
    series = {}
    for label, dirs in runs.groupby(labels, sort=False)["run_dir"]:
        parts = [timelines[timelines["run_dir"] == d] for d in dirs]
        parts = [p.sort_values("time", kind="stable") for p in parts if len(p)]
        if not parts:
            continue
        if len(parts) == 1:
            series[label] = parts[0]
            continue
        grid = np.linspace(0.0, max(float(p["time"].max()) for p in parts), plots.GRID_POINTS)
        mean = {
            col: np.mean([plots.step_resample(p["time"], p[col], grid) for p in parts], axis=0)
            for col in ("allocated_gpus", "queue_length")
        }
        series[f"{label} (mean of {len(parts)} runs)"] = pd.DataFrame({"time": grid, **mean})
    return series


def _queue_panels(runs: pd.DataFrame, labels: pd.Series) -> dict:
    """Per group (up to :data:`MAX_QUEUE_PANELS`): its first run's queues table if 2+ queues."""
    panels = {}
    for label, part in runs.groupby(labels, sort=False):
        first = part.sort_values(["seed", "run_dir"] if "seed" in part else "run_dir").iloc[0]
        f = Path(first["run_dir"]) / "queues.parquet"
        capacity = first.get("cluster_gpus")
        if not f.is_file() or not capacity:
            continue
        queues = pd.read_parquet(f)
        if queues["queue"].nunique() < 2:
            continue
        seed = f" (seed {first['seed']})" if "seed" in first and pd.notna(first["seed"]) else ""
        panels[f"{label}{seed}"] = (queues, float(capacity))
        if len(panels) == MAX_QUEUE_PANELS:
            break
    return panels


def _sorted_runs(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Runs ordered by their group keys (numbers as numbers), so groups keep one order."""
    cols = [c for c in [*by, "seed"] if c in runs.columns]
    try:
        return runs.sort_values(cols, kind="stable", na_position="last")
    except TypeError:  # a key column mixing numbers and text
        return runs.sort_values(cols, kind="stable", key=lambda c: c.astype(str))


def _plots(path: Path, out: Path, ok: pd.DataFrame, by: list[str]) -> list[Path]:
    ok = _sorted_runs(ok, by)
    labels = group_labels(ok, by)
    jobs = load_tables(path, "jobs", columns=["jct", "wait_time", "status"])
    jobs = jobs[jobs["status"] == "finished"]
    label_of = dict(zip(ok["run_dir"], labels, strict=True))
    jobs = jobs.assign(group=jobs["run_dir"].map(label_of))
    order = list(dict.fromkeys(labels))
    jct = {g: jobs.loc[jobs["group"] == g, "jct"].to_numpy() for g in order}
    wait = {g: jobs.loc[jobs["group"] == g, "wait_time"].to_numpy() for g in order}
    capacities = ok["cluster_gpus"].dropna().unique() if "cluster_gpus" in ok else []
    images = [
        plots.cdf_plot(jct, "Job completion time", "JCT CDF per group", out / "jct_cdf.png"),
        plots.cdf_plot(wait, "Wait time", "Wait-time CDF per group", out / "wait_cdf.png"),
        plots.timeline_plot(
            _timeline_series(path, ok, labels),
            out / "timeline.png",
            capacity=float(capacities[0]) if len(capacities) == 1 else None,
        ),
    ]
    panels = _queue_panels(ok, labels)
    if panels:
        images.append(plots.queue_share_plot(panels, out / "queues.png"))
    return images


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
