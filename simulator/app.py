"""Hydra entry point: ``python -m simulator +policy=NAME [overrides]``."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from simulator import metrics
from simulator.engine import Simulation
from simulator.results import ERROR_FILE, write_run

__all__ = ["main", "run_config", "available_policies"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


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


def run_config(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Build trace, cluster and policy from ``cfg``, simulate, write results, return summary."""
    cluster = instantiate(cfg.cluster, _convert_="all")
    trace, source, report = _trace_parts(instantiate(cfg.trace, _convert_="all"))
    policy = instantiate(cfg.policy, _convert_="all")
    sim_args = OmegaConf.to_container(cfg.sim, resolve=True)
    sim = Simulation(trace, cluster, policy, seed=int(cfg.seed), **sim_args).run()
    summary = metrics.summary(sim)
    summary["policy"] = _policy_name(cfg, policy)
    summary["trace"] = source
    summary["cluster"] = cluster.describe()
    summary["trace_report"] = report
    summary["queues"] = metrics.queue_summary(sim)
    summary["reject_reasons"] = dict(sim.reject_reasons)
    write_run(
        out_dir,
        metrics.job_frame(sim),
        metrics.timeline_frame(sim),
        summary,
        extra={"queues": metrics.queue_timeline_frame(sim)},
    )
    return summary


def format_summary(summary: dict) -> str:
    """A short human-readable table of the headline numbers."""

    def num(v: object, unit: str = "") -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.1f}{unit}" if abs(v) >= 100 else f"{v:.3f}{unit}"
        return f"{v:,}{unit}"

    rows = [
        ("policy", summary["policy"]),
        ("cluster", summary["cluster"]),
        (
            "jobs (finished/unschedulable/total)",
            f"{summary['jobs_finished']:,} / {summary['jobs_unschedulable']:,} / "
            f"{summary['jobs_total']:,}",
        ),
        (
            "avg / p50 / p99 JCT",
            " / ".join(num(summary[k], " s") for k in ("avg_jct", "p50_jct", "p99_jct")),
        ),
        ("avg / p99 wait", " / ".join(num(summary[k], " s") for k in ("avg_wait", "p99_wait"))),
        ("makespan", num(summary["makespan"], " s")),
        ("GPU utilization", num(summary["gpu_utilization"])),
        ("wall time", num(summary["wall_seconds"], " s")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> dict | None:
    """Run one simulation from the composed config (see README for options)."""
    if cfg.get("policy") is None:
        print(_no_policy_message(), file=sys.stderr)
        sys.exit(2)
    out_dir = HydraConfig.get().runtime.output_dir
    try:
        summary = run_config(cfg, out_dir)
    except Exception:
        Path(out_dir, ERROR_FILE).write_text(traceback.format_exc())
        raise
    if cfg.get("print_summary", True):
        print(format_summary(summary))
        print(f"results: {out_dir}")
    return summary
