"""Hydra callbacks of ``python -m simulator`` (registered in ``configs/config.yaml``).

:class:`SweepSummary` reports a multirun as it goes and when it ends:

* after each run, one log line: its overrides and outcome (``ok`` with headline numbers,
  ``skipped``, or ``FAILED`` with the error), written by the process that ran it (a joblib
  worker, a SLURM job), so it also lands in that run's log file;
* at the end of the sweep, in the launching process: a status count and the summary table per
  policy (mean ± CI across seeds, :func:`simulator.output.report.summary_table`), printed and
  written to ``sweep_summary.md`` beside ``runs.csv`` (the
  :func:`simulator.output.results.load_runs` table) in the sweep directory. If any run
  failed the command then exits with status 1, after every run had its chance (failed runs
  are recorded by the app, not raised, in a multirun).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from simulator.output import formats as fmt
from simulator.output.report import status_line, summary_table, table_markdown
from simulator.output.results import load_runs
from simulator.output.rundir import RunDirBusy, RunLock

__all__ = ["RunDirLock", "SweepSummary", "job_line", "sweep_text"]

log = logging.getLogger("simulator.sweep")


def job_line(job_return: JobReturn, num: int | None = None) -> str:
    """One line about a finished job: its number, overrides and outcome."""
    overrides = " ".join(job_return.overrides or [])
    head = f"#{num} {overrides}" if num is not None else overrides
    try:
        value = job_return.return_value
    except Exception as exc:  # Hydra re-raises the job's exception here
        return f"{head}: FAILED ({type(exc).__name__}: {' '.join(str(exc).split())})"
    if not isinstance(value, dict):
        return f"{head}: done"
    if value.get("run_status") == "failed":
        return f"{head}: FAILED ({' '.join(str(value.get('error', '')).split())})"
    state = "skipped (results exist)" if value.get("skipped") else "ok"
    numbers = []
    if value.get("avg_jct") is not None:
        numbers.append(f"avg JCT {fmt.seconds(value['avg_jct'])}")
    if value.get("gpu_utilization") is not None:
        numbers.append(f"GPU util {fmt.share(value['gpu_utilization'])}")
    if value.get("wall_seconds") is not None and not value.get("skipped"):
        numbers.append(f"{fmt.seconds(value['wall_seconds'])} simulating")
    return f"{head}: {state}" + (f", {', '.join(numbers)}" if numbers else "")


def sweep_text(runs: pd.DataFrame, sweep_dir: str | Path) -> str:
    """Markdown summary of a sweep from its :func:`~simulator.output.results.load_runs` table."""
    lines = [f"# Sweep {sweep_dir}", "", status_line(runs)]
    if (runs["run_status"] == "ok").any():
        lines += ["", table_markdown(summary_table(runs))]
    bad = runs[runs["run_status"] != "ok"]
    if len(bad):
        lines += ["", "Not finished:"]
        errors = bad["error"] if "error" in bad else [None] * len(bad)
        for run_dir, status, err in zip(bad["run_dir"], bad["run_status"], errors, strict=True):
            detail = f": {err}" if isinstance(err, str) and err else ""
            lines.append(f"- {run_dir} ({status}){detail}")
    return "\n".join(lines) + "\n"


class SweepSummary(Callback):
    """Per-run status lines and an end-of-sweep summary (see the module docstring).

    Args:
        write_files: write ``sweep_summary.md`` and ``runs.csv`` into the sweep directory.
        fail_on_error: exit with status 1 at the end of a sweep in which a run failed.
    """

    def __init__(self, write_files: bool = True, fail_on_error: bool = True) -> None:
        self.write_files = write_files
        self.fail_on_error = fail_on_error
        self._failed_on_input = 0  # runs of this sweep that could not start (bad config/input)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Single run: fail with one line when the output directory cannot be created.

        Hydra creates it after this hook and would show a traceback instead.
        """
        out = Path(str(config.hydra.run.dir))
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(
                f"error: cannot create the output directory {out}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            sys.exit(1)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Log the outcome of one run of a multirun."""
        try:
            hydra_cfg = HydraConfig.get()
        except ValueError:
            return
        if hydra_cfg.mode == RunMode.MULTIRUN:
            log.info(job_line(job_return, hydra_cfg.job.get("num")))
            try:
                value = job_return.return_value
            except Exception:  # noqa: BLE001 - the run raised: not an input error
                value = None
            if isinstance(value, dict) and value.get("input_error"):
                self._failed_on_input += 1

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Print and write the sweep's summary; exit 1 if a run failed."""
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        runs = load_runs(sweep_dir)
        text = sweep_text(runs, sweep_dir)
        print(text, end="", flush=True)
        if self.write_files:
            (sweep_dir / "sweep_summary.md").write_text(text)
            runs.to_csv(sweep_dir / "runs.csv", index=False)
            print(f"sweep summary: {sweep_dir / 'sweep_summary.md'}", flush=True)
        failed = int((runs["run_status"] == "failed").sum())
        if failed and self.fail_on_error:
            if self._failed_on_input >= failed:
                print(
                    f"{failed} run(s) could not start (bad config or input, above): see "
                    "error.txt in their directories",
                    file=sys.stderr,
                )
                sys.exit(2)
            print(f"{failed} run(s) failed: see error.txt in their directories", file=sys.stderr)
            sys.exit(1)


class RunDirLock(Callback):
    """Single run: take the run directory's lock before Hydra writes anything into it.

    A second ``python -m simulator`` into a directory that a running one holds is refused with
    one line naming the directory and the holder's pid (exit status 1), before its Hydra
    record could overwrite the first run's. The lock is held until the run ends (the app and
    :func:`~simulator.output.results.write_run` take it again, re-entrantly; the runs of a
    multirun take it in the app, one directory each).
    """

    def __init__(self) -> None:
        self._lock: RunLock | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Take the lock of ``hydra.run.dir``, or exit with one line saying who holds it."""
        out = Path(str(config.hydra.run.dir))
        try:
            self._lock = RunLock(out).acquire()
        except RunDirBusy as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
        except OSError as exc:
            print(
                f"error: cannot write into the output directory {out}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            sys.exit(1)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Let the directory go."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
