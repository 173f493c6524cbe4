"""Where the time goes: the phases of a million-job run, and the work of every compiled pass.

Usage::

    python -m experiments.profile_passes                         # both parts, every policy
    python -m experiments.profile_passes --parts passes --policies tiresias srtf --jobs 4000
    python -m experiments.profile_passes --markdown docs/performance.md

**Phases** (``--parts phases``): one ``python -m simulator`` process on the benchmark's
million-job trace (``experiments.bench``: 1,024 x 8 GPUs, offered load 90 %), compiled and
warm, under ``cProfile``; its wall time split into start-up (imports), Hydra (composing the
config, instantiating the trace), building the simulation (job table, cluster, loading the
compiled loop from Numba's cache), simulating, the result frames and writing the files.

**Passes** (``--parts passes``): a compiled pass is one Numba function; a sampling profiler
sees it as one block of machine code. This script runs the *same* code as plain Python instead
(``NUMBA_DISABLE_JIT=1``: the compiled pass and loop, not the policy's Python reference) under
``cProfile``, each run in a process of its own, and reports for the functions of ``policies/``
and ``simulator/core/`` how often each is called per job and its share of the profiled time.
Call counts are exact and are the algorithm's work whatever the compiler does; the time
shares are those of the interpreted code and only rank the functions. The workload is the
benchmark's deep-queue case (``experiments.bench``: synthetic trace, offered load 150 % of
16 x 8 GPUs), shortened to ``--jobs`` jobs.
"""

from __future__ import annotations

import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from experiments._cli import parser, provenance, run, write_markdown
from experiments.bench import all_policies, write_trace

ROOT = Path(__file__).resolve().parents[1]


def profile(trace: Path, nodes: int, policy: str, out: Path) -> pstats.Stats:
    """Run the simulator on ``trace`` as plain Python under cProfile; its stats."""
    prof = out / "run.prof"
    args = [
        sys.executable,
        "-m",
        "cProfile",
        "-o",
        str(prof),
        "-m",
        "simulator",
        f"+policy={policy}",
        "trace=file",
        f"trace.path={trace}",
        f"cluster.num_nodes={nodes}",
        "cluster.gpus_per_node=8",
        "cluster.nodes_per_rack=32",
        f"hydra.run.dir={out}",
        "sim.progress=false",
        "print_summary=false",
    ]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run(args, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return pstats.Stats(str(prof))


def rows(stats: pstats.Stats, jobs: int, top: int) -> list[tuple[str, float, float]]:
    """``(function, calls per job, share of the core's time)`` of the busiest core functions."""
    core = {}
    for (file, _line, name), (_cc, nc, tt, _ct, _callers) in stats.stats.items():
        rel = Path(file)
        try:
            rel = rel.resolve().relative_to(ROOT)
        except ValueError:
            continue
        if rel.parts[0] not in ("policies", "simulator") or (
            rel.parts[0] == "simulator" and rel.parts[1] != "core"
        ):
            continue
        if name.startswith("<") or rel.name in ("engine.py", "hooks.py", "jit.py"):
            continue
        core[f"{rel.with_suffix('').as_posix().replace('/', '.')}.{name}"] = (nc, tt)
    total = sum(tt for _nc, tt in core.values()) or 1.0
    busiest = sorted(core.items(), key=lambda kv: -kv[1][1])[:top]
    return [(fn, nc / jobs, tt / total) for fn, (nc, tt) in busiest]


PHASES = (  # (label, (file suffix, function)) measured by their cumulative time
    ("building the simulation", ("simulator/core/engine.py", "__init__")),
    ("simulating", ("simulator/core/engine.py", "run")),
    ("result frames", ("simulator/output/metrics.py", "job_frame")),
    ("result frames", ("simulator/output/metrics.py", "timeline_frame")),
    ("result frames", ("simulator/output/metrics.py", "summary")),
    ("result frames", ("simulator/output/schema.py", "conform_jobs")),
    ("result frames", ("simulator/output/schema.py", "conform_table")),
    ("writing the files", ("simulator/output/results.py", "write_run")),
)


def phases(policy: str, extra: tuple[str, ...], work: Path) -> list[tuple[str, float]]:
    """Seconds per phase of one warm million-job run of ``policy`` under cProfile."""
    from experiments.bench import run_simulator

    trace = write_trace(work, 1_000_000, 1024)
    run_simulator(write_trace(work, 2_000, 16), 16, policy, work / "warm", extra)  # compile
    out = work / f"phases_{policy}"
    out.mkdir(exist_ok=True)
    args = [
        sys.executable, "-m", "cProfile", "-o", str(out / "run.prof"), "-m", "simulator",
        f"+policy={policy}", "trace=file", f"trace.path={trace}", "cluster.num_nodes=1024",
        "cluster.gpus_per_node=8", "cluster.nodes_per_rack=32", f"hydra.run.dir={out}",
        "sim.progress=false", "print_summary=false", *extra,
    ]  # fmt: skip
    subprocess.run(args, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    st = pstats.Stats(str(out / "run.prof")).stats

    def cum(suffix: str, name: str) -> float:
        return sum(v[3] for (f, _l, n), v in st.items() if n == name and f.endswith(suffix))

    total = max(v[3] for v in st.values())  # the module's own frame: the whole process
    app = cum("simulator/app.py", "run_app")  # the Hydra task (main() wraps Hydra)
    hydra = cum("hydra/_internal/utils.py", "_run_hydra")
    out_rows: dict[str, float] = {}
    for label, (suffix, name) in PHASES:
        out_rows[label] = out_rows.get(label, 0.0) + cum(suffix, name)
    built = cum("simulator/app.py", "build_inputs")  # the CLI builds before run_config
    ran = cum("simulator/app.py", "run_config")
    load = built - out_rows["building the simulation"]
    rows = [
        ("start-up: Python, imports", total - hydra),
        ("Hydra: config, callbacks", hydra - app),
        ("loading the trace, policy, cluster config", load),
        *out_rows.items(),
        ("other (run directory, lock, manifest)", app - built - ran),
    ]
    return [*rows, ("total (under cProfile)", total)]


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--parts", nargs="*", default=["phases", "passes"], help="what to profile")
    p.add_argument("--phase-runs", nargs="*", default=["gang"],
                   help="POLICY[:OVERRIDE,...] runs whose phases are shown")  # fmt: skip
    p.add_argument("--policies", nargs="*", default=None, help="default: every policy")
    p.add_argument("--jobs", type=int, default=3000, help="jobs of the deep-queue trace")
    p.add_argument("--top", type=int, default=5, help="functions shown per policy")
    args = p.parse_args(argv)
    policies = args.policies or all_policies()
    work = Path(tempfile.mkdtemp(prefix="gpusim-profile-"))
    body = [provenance("experiments.profile_passes", argv)]
    if "phases" in args.parts:
        runs = []
        for spec in args.phase_runs:
            name, _, extra = spec.partition(":")
            runs.append(
                (spec.replace(":", " "), phases(name, tuple(filter(None, extra.split(","))), work))
            )
        lines = [
            "Phases of a warm 1,000,000-job run on 1,024 x 8 GPUs (benchmark trace), seconds, "
            "under cProfile (which slows the Python phases; the compiled loop runs at full speed):",
            "",
            "| phase | " + " | ".join(f"`{label}`" for label, _ in runs) + " |",
            "|---|" + "---:|" * len(runs),
        ]
        for i, (phase, _) in enumerate(runs[0][1]):
            lines.append(f"| {phase} | " + " | ".join(f"{r[i][1]:.2f}" for _, r in runs) + " |")
        print("\n".join(lines), flush=True)
        body.append("\n".join(lines))
    if "passes" in args.parts:
        body.append("\n".join(passes(policies, args.jobs, args.top, work)))
    if args.markdown:
        write_markdown(args.markdown, "profile_passes", "\n\n".join(body))
    else:
        print("\n" + "\n\n".join(body))


def passes(policies: list[str], jobs: int, top: int, work: Path) -> list[str]:
    """The table of the busiest core functions per policy on the deep-queue trace."""
    trace = write_trace(work, jobs, 16, load=1.5)
    lines = [
        f"Deep queue, {jobs:,} jobs offered 150 % of 16 x 8 GPUs, the compiled passes run "
        "as plain Python under cProfile (calls per job exact; time shares rank functions "
        "of the interpreted code):",
        "",
        "| policy | function | calls / job | share of time |",
        "|---|---|---:|---:|",
    ]
    for name in policies:
        out = work / name
        out.mkdir()
        for fn, per_job, share in rows(profile(trace, 16, name, out), jobs, top):
            lines.append(f"| {name} | `{fn}` | {per_job:,.1f} | {100 * share:.0f} % |")
            print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    run(main)
