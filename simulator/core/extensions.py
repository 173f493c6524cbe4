"""Optional parts of a run built from config: network fabric, failure injection, serving.

Each is an object built by Hydra from its config group (``fabric``, ``failures``,
``serving``; ``none`` = absent) and may implement any of these methods; the entry point calls
whichever exist, in this order:

* ``prepare(trace: DataFrame, cluster: ClusterSpec) -> DataFrame`` — add or change jobs before
  the run (e.g. dormant inference replicas with ``submit_time = inf``);
* ``processes() -> list[Callable[[Simulation], Generator]]`` — SimPy processes started with the
  run (failure injectors, autoscalers);
* ``setup(sim)``, ``on_start(j, placement, now)``, ``on_stop(j, now)`` — a network fabric
  (passed to :class:`~simulator.core.engine.Simulation` as ``fabric``; see there);
* ``job_columns(sim) -> dict[str, ndarray]`` — extra per-job columns for ``jobs.parquet``;
* ``summary(sim) -> dict`` — extra entries for ``summary.json``;
* ``tables(sim) -> dict[str, DataFrame]`` — extra result tables, written as ``NAME.parquet``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from simulator.core.cluster import ClusterSpec

__all__ = ["EXTENSION_GROUPS", "prepare_trace", "processes", "fabric_of", "collect_outputs"]

EXTENSION_GROUPS = ("fabric", "failures", "serving")
"""Config groups whose objects are extensions of a run."""


def prepare_trace(
    exts: Iterable[object], trace: pd.DataFrame, cluster: ClusterSpec
) -> pd.DataFrame:
    """Let each extension add or change jobs before the run.

    Raises:
        ValueError: an extension's rows gave two jobs the same ``job_id`` (the message names
            the id and the extension).
    """
    for ext in exts:
        if hasattr(ext, "prepare"):
            n = len(trace)
            trace = ext.prepare(trace, cluster)
            if len(trace) != n and "job_id" in trace.columns:
                dup = trace["job_id"].duplicated(keep="first")
                if dup.any():
                    k = int(np.flatnonzero(dup.to_numpy())[0])
                    raise ValueError(
                        f"{type(ext).__name__}: job id {trace['job_id'].iloc[k]!r} is used by "
                        f"two rows of the trace after the rows it added (job ids must be unique)"
                    )
    return trace


def processes(exts: Iterable[object]) -> tuple:
    """All SimPy process functions the extensions want started."""
    out: list = []
    for ext in exts:
        if hasattr(ext, "processes"):
            out.extend(ext.processes())
    return tuple(out)


def fabric_of(exts: Iterable[object]) -> object | None:
    """The extension that models the network (has ``on_start``), if any; at most one."""
    found = [e for e in exts if hasattr(e, "on_start")]
    if len(found) > 1:
        raise ValueError("more than one network fabric configured")
    return found[0] if found else None


def collect_outputs(
    exts: Iterable[object],
    sim: object,
    jobs: pd.DataFrame,
    summary: dict,
    tables: dict[str, pd.DataFrame],
) -> None:
    """Add the extensions' job columns, summary entries and tables (in place)."""
    for ext in exts:
        if hasattr(ext, "job_columns"):
            for name, values in ext.job_columns(sim).items():
                jobs[name] = values
        if hasattr(ext, "summary"):
            summary.update(ext.summary(sim))
        if hasattr(ext, "tables"):
            tables.update(ext.tables(sim))
