"""Hydra entry point: ``python -m simulator +policy=NAME [overrides]``."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import NamedTuple

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from simulator import limits
from simulator.core import extensions
from simulator.core.engine import Simulation
from simulator.core.extensions import EXTENSION_GROUPS
from simulator.core.gpus import GPU_SPECS
from simulator.core.interrupts import GracefulStop
from simulator.output import formats as fmt
from simulator.output import metrics, plots, schema
from simulator.output.results import (
    ERROR_FILE,
    MANIFEST_FILE,
    SUMMARY_FILE,
    RunDirError,
    adopt_record,
    verify_run,
    write_run,
)
from simulator.output.rundir import RunDirBusy, RunLock

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "RunInputs",
    "available_policies",
    "build_inputs",
    "config_key",
    "input_error",
    "main",
    "run_config",
]

log = logging.getLogger(__name__)

RUN_CONTROL_KEYS = ("print_summary", "plots", "skip_existing")
"""Top-level options that change what is printed or drawn, never the simulated results."""

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

EXIT_FAILED = 1
"""Exit status of a run that failed (in a sweep: at least one run failed)."""
EXIT_USAGE = 2
"""Exit status of a usage or input error: bad override, bad or missing input file, no policy."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C or SIGTERM (128 + SIGINT)."""

LAUNCHER_PLUGINS = {
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "ray_aws": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "sweep"),
    "local_joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "sweep"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "sweep"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "sweep"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "sweep"),
}
"""``hydra/launcher=NAME`` -> (plugin module, its distribution, the project extra with it)."""

EXTRA_NOTES = {
    "ray": " in an environment without the sweep extra (the Ray plugin pins cloudpickle 2.2, "
    "which joblib >= 1.5 refuses)",
}


def available_policies() -> list[str]:
    """Names of the policy configs shipped in ``configs/policy``."""
    return sorted(p.stem for p in (CONFIG_DIR / "policy").glob("*.yaml"))


def _no_policy_message() -> str:
    names = ", ".join(available_policies())
    return (
        "No scheduling policy chosen. Choose one with +policy=NAME, for example\n"
        "    python -m simulator +policy=gang\n"
        f"Available policies: {names}\n"
        "Your own class: python -m simulator +policy._target_=mypkg.MyPolicy"
    )


def _trace_parts(obj: object) -> tuple[pd.DataFrame, str, dict]:
    """Accept a ``traces.canonical.Trace`` or a bare DataFrame from the trace config."""
    if isinstance(obj, pd.DataFrame):
        return obj, "dataframe", {}
    return obj.jobs, str(getattr(obj, "source", "")), dict(getattr(obj, "report", {}) or {})


def _policy_name(cfg: DictConfig, policy: object) -> str:
    try:
        choice = HydraConfig.get().runtime.choices.get("policy")
    except ValueError:
        choice = None
    return choice or getattr(policy, "name", None) or type(policy).__name__


def config_key(cfg: DictConfig) -> str:
    """Hash of everything in ``cfg`` that can change a run's results.

    Stored in ``summary.json`` as ``config_key``; ``skip_existing=true`` skips a run only when
    its directory holds results with the same key. Output options (``print_summary``,
    ``plots``, ``skip_existing``, ``sim.progress``) and ``sim.reference_passes`` (same results
    either way) are left out. Changes to the code or to a trace file's contents are not seen.
    """
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("hydra", None)
    for key in RUN_CONTROL_KEYS:
        data.pop(key, None)
    if isinstance(data.get("sim"), dict):
        data["sim"].pop("progress", None)
        data["sim"].pop("reference_passes", None)  # same results (tests/test_compiled_passes.py)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RunInputs(NamedTuple):
    """A run built from its config, not yet simulated (:func:`build_inputs`)."""

    cluster: object
    source: str
    report: dict
    policy: object
    extensions: list
    simulation: Simulation


def build_inputs(cfg: DictConfig) -> RunInputs:
    """Build the cluster, trace, policy, extensions and simulation of ``cfg``, checking sizes.

    Sizes and memory are checked before anything big is built; the ``sim.*`` options are
    checked by :class:`~simulator.core.engine.Simulation`. An error raised here is the
    config's or an input file's (exit status 2 on the command line, see :func:`input_error`),
    never the simulation's.
    """
    _check_cluster_size(cfg)
    cluster = instantiate(cfg.cluster, _convert_="all")
    _warn_unknown_gpus(cluster)
    trace, source, report = _trace_parts(instantiate(cfg.trace, _convert_="all"))
    policy = instantiate(cfg.policy, _convert_="all")
    exts = [instantiate(cfg[g], _convert_="all") for g in EXTENSION_GROUPS if cfg.get(g)]
    trace = extensions.prepare_trace(exts, trace, cluster)
    limits.check_cluster(len(trace), cluster, record_events=bool(cfg.sim.record_events))
    sim_args = OmegaConf.to_container(cfg.sim, resolve=True)
    sim = Simulation(
        trace,
        cluster,
        policy,
        seed=cfg.seed,
        fabric=extensions.fabric_of(exts),
        processes=extensions.processes(exts),
        **sim_args,
    )
    return RunInputs(cluster, source, report, policy, exts, sim)


def input_error(exc: BaseException) -> bool:
    """Whether an error of :func:`build_inputs` means a bad config or input (not a bug).

    Bad values (``ValueError``, including ``TraceError``; ``TypeError``, ``LookupError``),
    unreadable or missing files (``OSError``), a run too big for the memory
    (``MemoryLimitError``), a ``_target_`` that cannot be imported, a missing mandatory
    value (``???``): the user fixes the command line. Anything else is a failure (status 1).
    """
    cause = exc
    while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__
    return isinstance(
        cause,
        ValueError
        | TypeError
        | LookupError
        | OSError
        | MemoryError
        | ImportError
        | OmegaConfBaseException
        | InstantiationException,
    )


def run_config(
    cfg: DictConfig,
    out_dir: str | Path,
    stop: GracefulStop | None = None,
    record: dict[str, str] | None = None,
    inputs: RunInputs | None = None,
) -> dict:
    """Build trace, cluster and policy from ``cfg``, simulate, write results, return summary.

    ``stop``: a held :class:`~simulator.core.interrupts.GracefulStop`; a signal received while
    loading makes the run stop at its first event (results marked partial). ``record``: the
    Hydra record files of the run, rewritten with the results (see
    :func:`~simulator.output.results.write_run`). ``inputs``: what :func:`build_inputs`
    returned for ``cfg``, not run yet (built here if None).
    """
    cluster, source, report, policy, exts, sim = inputs or build_inputs(cfg)
    sim = sim.run(stop)
    summary = metrics.summary(sim)
    summary["policy"] = _policy_name(cfg, policy)
    summary["trace"] = source
    summary["cluster"] = cluster.describe()
    summary["trace_report"] = report
    summary["queues"] = metrics.queue_summary(sim)
    summary["kinds"] = metrics.kind_summary(sim)
    summary["reject_reasons"] = dict(sim.reject_reasons)
    summary["unschedulable_reasons"] = sim.unschedulable_reasons
    summary["pending_reasons"] = sim.pending.summary()
    summary["config_key"] = config_key(cfg)
    jobs = metrics.job_frame(sim)
    trace_columns = set(jobs.columns)
    tables = {"queues": metrics.queue_timeline_frame(sim)}
    if sim.pending:
        tables["pending"] = sim.pending.rows(sim.jobs.job_ids)
    extensions.collect_outputs(exts, sim, jobs, summary, tables)
    # the tables as written: the columns and dtypes of simulator.output.schema
    jobs = schema.conform_jobs(jobs, added=[c for c in jobs.columns if c not in trace_columns])
    timeline = schema.conform_table("timeline", metrics.timeline_frame(sim))
    tables = {name: schema.conform_table(name, frame) for name, frame in tables.items()}
    write_run(out_dir, jobs, timeline, summary, extra=tables, record=record)
    return summary


def _warn_unknown_gpus(cluster: object) -> None:
    """Warn about GPU models of the cluster that are not in the GPU table (a typo?)."""
    models = getattr(cluster, "gpu_models", ())
    unknown = sorted({m for m in models if m and m not in GPU_SPECS})
    if unknown:
        log.warning(
            "cluster: GPU model(s) %s not in the GPU table of simulator/core/gpus.py (a "
            "typo?); jobs asking for a known model never run on those nodes. Known: %s",
            ", ".join(unknown),
            ", ".join(GPU_SPECS),
        )


def _check_flags(cfg: DictConfig) -> None:
    """The top-level on/off options must be booleans (``plots=maybe`` is not "on")."""
    for key in RUN_CONTROL_KEYS:
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")


def _check_cluster_size(cfg: DictConfig) -> None:
    """Refuse absurd homogeneous clusters before building them (key named, memory checked)."""
    c = cfg.cluster
    if "num_nodes" not in c or "gpus_per_node" not in c:
        return
    sizes = {}
    for key, low in (("num_nodes", 1), ("gpus_per_node", 0)):
        v = c[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v < 2**31:
            raise ValueError(
                f"cluster.{key}: expected an integer >= {low} (and < 2**31), got {v!r}"
            )
        sizes[key] = v
    limits.check(0, sizes["num_nodes"], sizes["gpus_per_node"])


def format_summary(summary: dict) -> str:
    """A short human-readable table of the headline numbers.

    Numbers have one format per kind (:mod:`simulator.output.formats`): counts and seconds
    with thousands separators, seconds with one decimal, shares as percentages with one
    decimal, request latencies in milliseconds.
    """
    rows = [
        ("policy", summary["policy"]),
        ("cluster", summary["cluster"]),
        (
            "jobs (finished/unfinished/total)",
            " / ".join(
                fmt.count(summary[k]) for k in ("jobs_finished", "jobs_unfinished", "jobs_total")
            ),
        ),
        *_other_outcomes(summary),
        *_serving_rows(summary),
        (
            "avg / p50 / p99 JCT",
            " / ".join(fmt.seconds(summary[k]) for k in ("avg_jct", "p50_jct", "p99_jct")),
        ),
        ("avg / p99 wait", " / ".join(fmt.seconds(summary[k]) for k in ("avg_wait", "p99_wait"))),
        ("makespan", fmt.seconds(summary["makespan"])),
        ("GPU utilization", fmt.share(summary["gpu_utilization"])),
        *_failure_rows(summary),
        (
            "wall time",
            fmt.seconds(summary["wall_seconds"])
            + (f" ({summary['engine']} pass)" if summary.get("engine") else ""),
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _other_outcomes(summary: dict) -> list[tuple[str, str]]:
    """A row for the jobs that ended neither finished nor unfinished, when there are any."""
    names = {"dormant": "dormant (replica slots never used)"}
    parts = [
        f"{fmt.count(summary[f'jobs_{k}'])} {names.get(k, k)}"
        for k in ("unschedulable", "rejected", "failed", "dormant")
        if summary.get(f"jobs_{k}")
    ]
    return [("jobs otherwise", ", ".join(parts))] if parts else []


def _serving_rows(summary: dict) -> list[tuple[str, str]]:
    """One row per inference service: requests, SLO attainment, p99 TTFT."""
    rows = []
    for name, s in (summary.get("serving") or {}).items():
        rows.append(
            (
                f"serving {name}",
                f"{fmt.count(s.get('finished', 0))} / {fmt.count(s.get('requests', 0))} "
                f"requests, SLO met {fmt.share(s.get('slo_attainment'))}, "
                f"p99 TTFT {fmt.millis(s.get('p99_ttft'))}",
            )
        )
    return rows


def _failure_rows(summary: dict) -> list[tuple[str, str]]:
    """Summary rows of a run with failure injection (none otherwise)."""
    if "failures" not in summary:
        return []
    return [
        (
            "failures / repairs",
            f"{fmt.count(summary['failures'])} / {fmt.count(summary.get('repairs', 0))}",
        ),
        (
            "jobs killed / failed",
            f"{fmt.count(summary.get('jobs_killed', 0))} / {fmt.count(summary['jobs_failed'])}",
        ),
        (
            "lost GPU-hours / goodput",
            f"{fmt.gpu_hours(summary.get('lost_gpu_hours'))} / {fmt.share(summary.get('goodput'))}",
        ),
    ]


def _existing_summary(cfg: DictConfig, out_dir: Path) -> dict | None:
    """The summary already in ``out_dir`` if it came from this very config, else None.

    The directory must hold one complete run (its tables and summary match its manifest; the
    Hydra record is this invocation's, rewritten by Hydra, and is adopted into the manifest).
    """
    try:
        summary = json.loads((out_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    try:
        verify_run(out_dir, record=False)
    except RunDirError as exc:
        log.warning("%s: running again", exc)
        return None
    if isinstance(summary, dict) and summary.get("config_key") == config_key(cfg):
        adopt_record(out_dir)
        return summary
    log.warning("%s holds results of another config: running again", out_dir)
    return None


def _skip(cfg: DictConfig, out_dir: Path, summary: dict) -> dict:
    if cfg.get("plots") and not (out_dir / "jct_cdf.png").is_file():
        plots.plot_run(out_dir)
    if cfg.get("print_summary", True):
        print(format_summary(summary))
        print(f"results: {out_dir} (existing, skipped: skip_existing=true)")
    return {**summary, "skipped": True}


def _quiet_parallel_progress(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """Turn the progress bar off under a parallel launcher unless ``sim.progress=true``.

    Parallel runs share one terminal, where their bars would garble each other.
    """
    launcher = hydra_cfg.runtime.choices.get("hydra/launcher")
    if hydra_cfg.mode == RunMode.MULTIRUN and launcher != "basic":
        if cfg.sim.get("progress") is None:
            cfg.sim.progress = False


def _root_cause(exc: BaseException) -> str:
    """The message of the error a user caused (Hydra wraps errors of ``_target_`` calls)."""
    cause = exc
    while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause) or type(cause).__name__
    return (
        text
        if isinstance(cause, ValueError | OSError | MemoryError)
        else (f"{type(cause).__name__}: {text}")
    )


def _write_error(out_dir: Path, text: str) -> None:
    try:
        Path(out_dir, ERROR_FILE).write_text(text)
    except OSError:
        pass  # the output directory itself is the problem; the message says so


def _sigterm_interrupts() -> None:
    """Make SIGTERM (SLURM's cancel/time limit) stop the run like Ctrl-C does.

    Under :class:`~simulator.core.interrupts.GracefulStop` the engine then stops between two
    events, marks unfinished jobs and the results are written marked ``partial: true``. Left
    alone when another handler is installed (e.g. by submitit) or outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, signal.default_int_handler)


STALE_FILES = (
    MANIFEST_FILE,  # first: the directory no longer claims to hold a complete run
    SUMMARY_FILE,
    ERROR_FILE,
    *plots.RUN_PLOTS,
)
"""Files of an earlier run removed when a run starts in the same directory (old tables go
when the new ones are written, see :func:`~simulator.output.results.write_run`)."""


def _clear_stale(out_dir: Path) -> None:
    """A rerun in the same directory: old markers and plots must not describe the new run."""
    for name in STALE_FILES:
        (out_dir / name).unlink(missing_ok=True)


def _hydra_record(cfg: DictConfig, hydra_cfg: DictConfig) -> dict[str, str]:
    """The text of the run's Hydra record files, as Hydra wrote them for this run."""
    sub = hydra_cfg.output_subdir
    if sub is None:
        return {}
    return {
        f"{sub}/config.yaml": OmegaConf.to_yaml(cfg),
        f"{sub}/hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),
        f"{sub}/overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task),
    }


def missing_launcher(args: list[str]) -> str | None:
    """The one-line error for a ``hydra/launcher=NAME`` whose plugin is not installed, or None.

    Args:
        args: the command-line arguments (overrides).
    """
    for arg in args:
        key, sep, name = arg.lstrip("+").partition("=")
        if not sep or key != "hydra/launcher" or name not in LAUNCHER_PLUGINS:
            continue
        module, dist, extra = LAUNCHER_PLUGINS[name]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return (
                f"hydra/launcher={name} needs Hydra's launcher plugin {dist}, which is not "
                f'installed: pip install -e ".[{extra}]"{EXTRA_NOTES.get(extra, "")}'
            )
    return None


_UNESCAPED_EQUALS = re.compile(r"(?<!\\)=")


def escape_equals(args: list[str]) -> list[str]:
    r"""Overrides whose value holds a bare ``=`` (``trace.path=/d/seed=0/x.trace``), escaped.

    Hydra's grammar refuses an unquoted ``=`` in a value; a folder named ``seed=0`` (Gavel's
    traces) would need quoting (``'trace.path="/d/seed=0/x.trace"'``). An override that Hydra
    cannot parse as given, has no quotes, and parses once each ``=`` of its value is escaped
    (``seed\=0``, Hydra's own escape) is passed on escaped; everything else is left as it is
    (Hydra then reports what is wrong). Sweeps keep working:
    ``trace.path=/d/seed=0/x,/d/seed=1/x`` is two paths.

    Args:
        args: the command-line arguments.

    Returns:
        The arguments, with such overrides escaped.
    """
    parser = None
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if arg.startswith("-") or not sep or "=" not in value or "'" in arg or '"' in arg:
            out.append(arg)
            continue
        parser = parser or OverridesParser.create()
        try:
            parser.parse_override(arg)
            out.append(arg)
            continue
        except HydraException:
            pass
        escaped = key + "=" + _UNESCAPED_EQUALS.sub(r"\\=", value)
        try:
            parser.parse_override(escaped)
        except HydraException:
            escaped = arg
        out.append(escaped)
    return out


def main() -> None:
    """``python -m simulator [overrides]``: one run or a sweep, with the exit status rule.

    Exit status: 0 done; 1 the run failed (in a sweep: a run failed); 2 usage or input error
    (no policy, a bad override or value, a bad or missing input file, a launcher whose plugin
    is not installed); 130 interrupted. Hydra itself exits with 1 on a config it cannot
    compose (an unknown key or choice, an override it cannot parse); that becomes 2 here.
    """
    missing = missing_launcher(sys.argv[1:])
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    sys.argv[1:] = escape_equals(sys.argv[1:])
    try:
        run_app()
    except SystemExit as exc:
        # Hydra reports an error it caught (printed already) with sys.exit(1) inside its
        # handler, so the error is the exit's context; our own exits carry their status
        if exc.code == EXIT_FAILED and isinstance(
            exc.__context__, HydraException | OmegaConfBaseException
        ):
            raise SystemExit(EXIT_USAGE) from None
        raise


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def run_app(cfg: DictConfig) -> dict | None:
    """Run one simulation from the composed config (see README for options).

    In a multirun a failing run leaves ``error.txt`` and returns ``{"run_status": "failed"}``
    so that the other runs go on (the sweep callback then exits with status 1); a single run
    exits with status 2 when its config or inputs are wrong, 1 when it fails later.
    ``skip_existing=true`` returns the existing summary (with ``skipped: True``) when the
    output directory already holds the results of this config.
    """
    if cfg.get("policy") is None:
        print(_no_policy_message(), file=sys.stderr)
        sys.exit(EXIT_USAGE)
    try:
        _check_flags(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    record = _hydra_record(cfg, hydra_cfg)
    try:
        lock = RunLock(out_dir).acquire()
    except (RunDirBusy, OSError) as exc:
        # nothing of this run goes into a directory it does not hold (no error.txt either)
        text = (
            str(exc)
            if isinstance(exc, RunDirBusy)
            else (f"cannot write into the output directory {out_dir}: {exc.strerror or exc}")
        )
        if not multirun:
            print(f"error: {text}", file=sys.stderr)
            sys.exit(EXIT_FAILED)
        log.error("run not started (the sweep goes on): %s", text)
        return {"run_status": "failed", "error": text}
    try:
        return _run_locked(cfg, hydra_cfg, out_dir, record)
    finally:
        lock.release()


def _run_locked(
    cfg: DictConfig, hydra_cfg: DictConfig, out_dir: Path, record: dict[str, str]
) -> dict | None:
    """The body of :func:`main` once the run directory is held."""
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if cfg.get("plots"):
        try:
            plots.require_matplotlib()  # before simulating, not after
        except ImportError as exc:
            if multirun:
                raise
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
    if cfg.get("skip_existing"):
        done = _existing_summary(cfg, out_dir)
        if done is not None:
            return _skip(cfg, out_dir, done)
    _quiet_parallel_progress(cfg, hydra_cfg)
    _clear_stale(out_dir)
    _sigterm_interrupts()
    # held until the end: a signal after the results are written only sets a flag, and the
    # run then exits with status 130 saying its results are complete
    with GracefulStop() as stop:
        building = True  # an error while building is the config's or an input's (status 2)
        try:
            inputs = build_inputs(cfg)
            building = False
            summary = run_config(cfg, out_dir, stop, record=record, inputs=inputs)
        except KeyboardInterrupt:
            # a second Ctrl-C / SIGTERM: the user wants out now
            print(
                f"aborted by a second interrupt: no results written in {out_dir}",
                file=sys.stderr,
            )
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            _write_error(out_dir, traceback.format_exc())
            if not multirun:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                print(f"error: {_root_cause(exc)}", file=sys.stderr)
                sys.exit(EXIT_USAGE if building and input_error(exc) else EXIT_FAILED)
            if building and input_error(exc):
                # a bad config or input: one line (the traceback is in error.txt)
                log.error("run could not start (the sweep goes on): %s", _root_cause(exc))
                return {"run_status": "failed", "error": str(_root_cause(exc)), "input_error": True}
            log.error("run failed (the sweep goes on):\n%s", traceback.format_exc())
            return {"run_status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        try:
            if cfg.get("plots"):
                plots.plot_run(out_dir)
            if cfg.get("print_summary", True):
                print(format_summary(summary))
                print(f"results: {out_dir}")
        except KeyboardInterrupt:
            pass  # a second signal while printing: the results are written
    if summary.get("partial"):
        print(
            f"interrupted: partial results (summary.json has partial: true) in {out_dir}",
            file=sys.stderr,
        )
    elif stop.requested:
        print(
            f"interrupted after the simulation ended: the results in {out_dir} are complete",
            file=sys.stderr,
        )
    if stop.requested and not multirun:
        sys.exit(EXIT_INTERRUPTED)
    return summary
