"""FGD's main experiment (Weng et al., ATC'23, Fig. 9) on the Alibaba openb trace.

"Workload inflation": pods arrive one at a time in trace order and never finish; once the
trace is used up, pods are resampled from it (uniformly, with replacement, seeded) until the
GPUs requested by all arrived pods reach ``ratio`` (130 %) of the cluster's GPUs. A pod that
fits on no node fails and is skipped (``Reject``). The result is the share of the cluster's GPU
capacity allocated after each 1 % step of arrived GPU request, averaged over seeds, for FGD and
the five baselines of the paper.

Run everything in-process (prints the table, writes a CSV and a PNG plot if matplotlib is
installed)::

    python -m experiments.fgd_openb --seeds 10 --out outputs/fgd_openb [--markdown FILE]

or as a Hydra sweep (60 runs, one per scoring and seed) and then summarise it::

    python -m simulator -m +experiment=fgd_openb
    python -m experiments.fgd_openb --runs multirun/DATE/TIME

It needs the full openb pod list (``openb_pod_list_default.csv``, 8,152 pods, not shipped):
``--pods FILE``, else ``alibaba-openb-gpu-v2023/`` in ``--shared DIR`` (default
``$GPUSIM_TRACES``, else ``../shared/traces``); without it the script stops with one line and
status 2. ``--shuffle`` shuffles the trace's pods per seed before inflating (the paper's
artifact runs with shuffled pods); ``--exact-scores`` ranks nodes by exact score values instead
of the artifact's integer 0-100 Kubernetes scores (see :mod:`policies.fragmentation`);
``--tie-break`` chooses how equal scores are broken (default ``ranking``: one random node
ranking per run, the artifact's rule; ``random``: per placement). ``--markdown FILE`` writes
the table between the ``fgd_openb`` markers of FILE (``fgd_openb_shuffled`` with
``--shuffle``, ``fgd_openb_ties_random`` with ``--tie-break random``; all in
docs/policies.md).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import _cli
from policies.fgd import TIE_BREAKS, FgdPolicy
from simulator.core.engine import Simulation
from traces.alibaba_openb import load as load_openb
from traces.errors import TraceError
from traces.inventories import alibaba_openb

NAME = "fgd_openb"
PODS = "alibaba-openb-gpu-v2023/openb_pod_list_default.csv"
"""The pod list, relative to the traces folder (``--shared``)."""
SHOWN = (80, 85, 88, 90, 92, 94, 96, 98, 100, 105, 110, 115, 120, 125, 130)
"""Steps (arrived GPU request, % of capacity) of the printed table."""
SCORINGS = ("random", "dotprod", "gpu_clustering", "gpu_packing", "bestfit", "fgd")
STEPS = np.arange(0, 131)
NEVER = 1.0e9
"""Duration of every pod, s: nothing finishes during the experiment."""


def inflated_openb(
    path: str | Path | None = None,
    ratio: float = 1.3,
    capacity_gpus: float = 6212.0,
    shuffle: bool = False,
    seed: int = 0,
    **loader_options,
) -> pd.DataFrame:
    """The inflated pod sequence as a canonical trace: pod ``k`` arrives at ``t = k`` s.

    Args:
        path: openb pod list (None = the bundled sample).
        ratio: stop once the arrived GPU request reaches ``ratio x capacity_gpus``.
        capacity_gpus: GPUs of the cluster the pods are sized against.
        shuffle: shuffle the trace's pods (seeded) before inflating.
        seed: seed of the shuffle and of the resampling.
        **loader_options: passed to :func:`traces.alibaba_openb.load` (e.g. ``pending``).

    Returns:
        Trace rows with ``submit_time`` 0, 1, 2, ... and a ``duration`` nobody reaches.

    Raises:
        TraceError: ``path`` is given and does not exist (the message says where the pod list
            comes from and how to point at it).
    """
    if path is not None and not Path(path).exists():
        raise TraceError(
            f"{path}: the FGD experiment needs the Alibaba openb pod list "
            "(openb_pod_list_default.csv of alibaba/clusterdata, cluster-trace-gpu-v2023), "
            "not found there; set GPUSIM_TRACES to the folder holding "
            "alibaba-openb-gpu-v2023/, or pass trace.path=FILE"
        )
    pods = load_openb(path, **loader_options).jobs.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    if shuffle:
        pods = pods.iloc[rng.permutation(len(pods))].reset_index(drop=True)
    req = (pods["num_gpus"] * pods["gpu_milli"].fillna(1000) / 1000.0).to_numpy()
    target = ratio * capacity_gpus
    total = req.sum()
    extra = []
    while total < target:
        k = int(rng.integers(len(pods)))
        extra.append(k)
        total += req[k]
    base = np.arange(len(pods))
    if req.sum() > target:  # the trace alone is more than enough: cut it
        base = base[: int(np.searchsorted(np.cumsum(req), target - 1e-9)) + 1]
    order = np.concatenate([base, np.asarray(extra, dtype=np.int64)])
    out = pods.iloc[order].reset_index(drop=True)
    copy = np.concatenate([np.zeros(len(base), dtype=int), np.arange(1, len(extra) + 1)])
    out["job_id"] = [f"{j}#{c}" if c else str(j) for j, c in zip(out["job_id"], copy, strict=True)]
    out["submit_time"] = np.arange(len(out), dtype=np.float64)
    out["duration"] = NEVER
    return out


def allocation_curve(jobs: pd.DataFrame, capacity_gpus: float, steps=STEPS) -> np.ndarray:
    """Percent of GPU capacity allocated when the arrived GPU request first reaches each step.

    ``jobs`` holds one row per pod with ``submit_time``, ``num_gpus``, ``gpu_milli`` and
    ``start_time`` (NaN = the pod was rejected). Since nothing finishes, the allocation after
    pod ``k`` is the request of the started pods among the first ``k``. Step ``s`` (percent)
    reads the allocation after the first pod whose arrival brings the arrived request to ``s``
    percent of the capacity or more (NaN if the workload never reaches it).
    """
    f = jobs.sort_values("submit_time", kind="stable")
    req = (f["num_gpus"] * f["gpu_milli"].fillna(1000) / 1000.0).to_numpy()
    started = f["start_time"].notna().to_numpy()
    arrived = np.cumsum(req) / capacity_gpus * 100.0
    alloc = np.cumsum(req * started) / capacity_gpus * 100.0
    idx = np.searchsorted(arrived, np.asarray(steps, dtype=np.float64) - 1e-9, side="left")
    out = np.full(len(idx), np.nan)
    ok = idx < len(alloc)
    out[ok] = alloc[idx[ok]]
    return out


def simulate_one(
    pods: pd.DataFrame, scoring: str, seed: int, integer_scores: bool, tie_break: str = "ranking"
):
    """One scoring on one inflated workload; returns the finished simulation."""
    spec = alibaba_openb()
    policy = FgdPolicy(
        scoring=scoring, on_no_fit="reject", integer_scores=integer_scores, tie_break=tie_break
    )
    return Simulation(pods, spec, policy, seed=seed, until=float(len(pods)) + 1.0).run()


def run_all(
    pods_path: Path,
    seeds: int,
    scorings=SCORINGS,
    ratio: float = 1.3,
    shuffle: bool = False,
    integer_scores: bool = True,
    tie_break: str = "ranking",
) -> pd.DataFrame:
    """Curves of every scoring and seed: rows ``(scoring, seed)``, one column per step."""
    capacity = float(alibaba_openb().total_gpus)
    rows, index = [], []
    for seed in range(seeds):
        pods = inflated_openb(pods_path, ratio, capacity, shuffle, seed, pending="keep")
        for scoring in scorings:
            t0 = time.perf_counter()
            sim = simulate_one(pods, scoring, seed, integer_scores, tie_break)
            jobs = pd.DataFrame(
                {
                    "submit_time": sim.jobs.submit,
                    "num_gpus": sim.jobs.num_gpus,
                    "gpu_milli": sim.jobs.milli,
                    "start_time": sim.jobs.start,
                }
            )
            rows.append(allocation_curve(jobs, capacity))
            index.append((scoring, seed))
            print(
                f"seed {seed} {scoring:>14}: {rows[-1][-1]:6.2f} % allocated at {ratio:.0%} "
                f"({len(pods)} pods, {time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
    return pd.DataFrame(
        rows, index=pd.MultiIndex.from_tuples(index, names=["scoring", "seed"]), columns=list(STEPS)
    )


def curves_from_runs(root: Path) -> pd.DataFrame:
    """Curves of a finished Hydra sweep (``+experiment=fgd_openb``)."""
    from simulator.output.results import load_jobs

    cols = ["submit_time", "num_gpus", "gpu_milli", "start_time"]
    jobs = load_jobs(root, columns=cols)
    if jobs.empty:
        raise _cli.MissingInput(f"{root}: no finished runs of +experiment=fgd_openb")
    key = "policy.scoring" if "policy.scoring" in jobs.columns else "policy"
    capacity = float(alibaba_openb().total_gpus)
    rows, index = [], []
    for (scoring, seed), part in jobs.groupby([key, "seed"], sort=True):
        rows.append(allocation_curve(part, capacity))
        index.append((scoring, seed))
    return pd.DataFrame(
        rows, index=pd.MultiIndex.from_tuples(index, names=["scoring", "seed"]), columns=list(STEPS)
    )


def summarise(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds: one row per scoring, one column per step (percent)."""
    order = [s for s in SCORINGS if s in curves.index.get_level_values(0)]
    return curves.groupby(level="scoring").mean().reindex(order)


def plot(mean: pd.DataFrame, path: Path) -> bool:
    """Write the curves as a PNG; False if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    for name, row in mean.iterrows():
        ax.plot(row.index.astype(float), row.to_numpy(), label=name, lw=1.6)
    ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("arrived workload (% of cluster GPU capacity)")
    ax.set_ylabel("GPU allocation rate (%)")
    ax.set_xlim(80, 130)
    ax.set_ylim(80, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    ax.set_title("Alibaba openb, workload inflation")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(__doc__, shared=True, name=NAME)
    p.add_argument(
        "--pods", type=Path, default=None, help=f"openb pod list (default: --shared/{PODS})"
    )
    p.add_argument("--seeds", type=_cli.positive_int, default=10)
    p.add_argument("--ratio", type=_cli.positive_float, default=1.3)
    p.add_argument("--shuffle", action="store_true", help="shuffle pods per seed (artifact)")
    p.add_argument("--exact-scores", action="store_true", help="exact instead of integer scores")
    p.add_argument("--tie-break", choices=TIE_BREAKS, default="ranking")
    p.add_argument("--scorings", nargs="+", choices=SCORINGS, default=list(SCORINGS))
    p.add_argument("--runs", type=Path, help="summarise a finished +experiment=fgd_openb sweep")
    p.add_argument("--out", type=Path, default=Path("outputs/fgd_openb"))
    args = p.parse_args(argv)
    # the docs show the artifact's setting and two variants, each in a block of its own
    block = (
        NAME
        + ("_shuffled" if args.shuffle else "")
        + (f"_ties_{args.tie_break}" if args.tie_break != "ranking" else "")
    )
    _cli.check_markdown(p, args, block)
    t0 = time.perf_counter()
    if args.runs is not None:
        curves = curves_from_runs(_cli.need(args.runs, "sweep directory", "give --runs DIR"))
        setup = f"Summarised from the sweep `{args.runs.name}`."
    else:
        pods = args.pods or _cli.need(_cli.shared_dir(args) / PODS, "openb pod list")
        _cli.need(pods, "openb pod list", "pass --pods FILE")
        curves = run_all(
            pods,
            args.seeds,
            args.scorings,
            args.ratio,
            args.shuffle,
            not args.exact_scores,
            args.tie_break,
        )
        setup = (
            f"Alibaba openb pod list ({Path(pods).name}), pods "
            f"{'shuffled per seed' if args.shuffle else 'in trace order'}, inflated to "
            f"{args.ratio:.0%} of the GPUs of `cluster=alibaba_openb` "
            f"({alibaba_openb().total_gpus:,} GPUs); a pod that fits nowhere is rejected; "
            f"{'exact' if args.exact_scores else 'integer 0-100'} scores; ties: "
            f"`tie_break={args.tie_break}`."
        )
    mean = summarise(curves)
    args.out.mkdir(parents=True, exist_ok=True)
    mean.T.rename_axis("arrived_pct").to_csv(args.out / "allocation_curve.csv", float_format="%.3f")
    seeds = curves.index.get_level_values(1).nunique()
    curve = mean[list(SHOWN)].T.rename_axis("arrived %")
    print(f"GPU allocation (% of capacity) vs arrived GPU request, mean of {seeds} seeds")
    print(curve.to_string(float_format=lambda v: f"{v:6.2f}"))
    ends = end_table(curves, mean)
    print(f"\nat {SHOWN[-1]} % (mean, min..max over seeds):")
    print(ends.to_string(index=False))
    if plot(mean, args.out / "allocation_curve.png"):
        print(f"plot: {args.out / 'allocation_curve.png'}")
    else:
        print("plot skipped: matplotlib is not installed (pip install matplotlib)")
    print(
        f"table: {args.out / 'allocation_curve.csv'}   wall time {time.perf_counter() - t0:.0f} s"
    )
    config = f"{setup} Mean of {seeds} seeds (seeds 0..{seeds - 1})."
    tables = (
        "GPU allocation (% of the cluster's GPUs) when the arrived GPU request reaches each "
        "step:\n\n" + _markdown(curve),
        f"At {SHOWN[-1]} % arrived:\n\n" + _markdown(ends.set_index("scoring")),
    )
    body = _cli.markdown_block(f"experiments.{NAME}", argv, config, *tables)
    _cli.emit(args, block, body, argv, script=NAME)
    return 0


def _markdown(table: pd.DataFrame) -> str:
    """A pipe table of ``table`` (index as the first column), numbers with 2 decimals."""
    cells = table.map(lambda v: f"{v:.2f}" if isinstance(v, float) else str(v))
    cells.index = cells.index.astype(str)
    return cells.reset_index().to_markdown(
        index=False, tablefmt="pipe", stralign="right", disable_numparse=True
    )


def end_table(curves: pd.DataFrame, mean: pd.DataFrame) -> pd.DataFrame:
    """Allocation at the last step per scoring: mean and range over seeds."""
    last = SHOWN[-1]
    spread = curves[last].groupby(level="scoring").agg(["min", "max"]).reindex(mean.index)
    return pd.DataFrame(
        {
            "scoring": mean.index,
            "allocated % (mean)": [f"{v:.2f}" for v in mean[last]],
            "min..max over seeds": [
                f"{lo:.2f}..{hi:.2f}" for lo, hi in zip(spread["min"], spread["max"], strict=True)
            ],
        }
    )


if __name__ == "__main__":
    _cli.run(main)
