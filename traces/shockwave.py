"""Shockwave (NSDI'23) job traces: 12-field Gavel-style lines with a dynamic batch-size mode.

File format (``scheduler/traces/reproduce/*.trace`` of uw-mad-dash/shockwave): tab-separated,
no header, one job per line, ``job_id`` = 0-based line number. Fields: ``job_type, command,
working_directory, num_steps_arg, needs_data_dir, total_steps, scale_factor, mode,
priority_weight, SLO, duration, arrival_time``. ``command`` is data only: it is read as text
and never used.

**Dynamic adaptation.** A job trains for ``num_epochs = ceil(total_steps / ceil(N / B))``
epochs (``N`` the model's dataset size, ``B`` the initial batch size). Its mode sets the batch
size of every epoch (the rules of Shockwave's ``scheduler/utils.py``, restated as data in
:data:`GNS_SCHEDULE` and :func:`accordion_schedule`):

- ``static``: ``B`` throughout;
- ``accordion``: the model's largest batch size in every epoch outside its critical regime and
  past the first 30 % of epochs;
- ``gns``: the batch size doubles in steps from hard-coded epochs, capped per model.

An epoch at batch size ``b`` takes ``(N / b) / T_v100(<model> (batch size b), scale_factor)``
seconds; the job's ``duration`` is the sum over its epochs (the isolated, adapted run time on
V100s that Shockwave's driver uses), unless ``adaptation=False`` (then the trace's own
``duration`` field, the static time at ``B``).

Simplification: the engine runs a job at one speed per GPU type. Its work is the adapted
duration in V100 seconds; on other GPU types it runs at the speed ratio of its *initial* job
type. On Shockwave's all-V100 cluster (``32:0:0``) that is exact for progress; only policies
that look at raw steps/s (max-sum throughput) see the initial batch size's steps/s
(``ref_steps_per_s``) throughout.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.models.throughput import ThroughputTable, load_throughputs
from traces.canonical import Trace, finish, validate
from traces.errors import TraceError
from traces.tables import check_file

__all__ = ["DATASET_SIZE", "GNS_SCHEDULE", "accordion_schedule", "batch_schedule", "load"]

FIELDS = (
    "job_type",
    "command",
    "working_directory",
    "num_steps_arg",
    "needs_data_dir",
    "total_steps",
    "scale_factor",
    "mode",
    "priority_weight",
    "SLO",
    "duration",
    "arrival_time",
)

# samples per epoch (Shockwave's dataset_len / model_dataset_mapping, as its SOURCE.md lists)
DATASET_SIZE = {
    "ResNet-18": 50000,  # CIFAR-10
    "ResNet-50": 100000,  # ImageNet subset
    "Transformer": 10000,  # Multi30k
    "LM": 59675,  # Wikitext-2
    "Recommendation": 117907,  # ML-20M
}
MAX_BATCH = {
    "ResNet-18": 256,
    "ResNet-50": 128,
    "Transformer": 128,
    "LM": 80,
    "Recommendation": 8192,
}
"""Largest batch size per model (Accordion's target, GNS's cap)."""

_N = None  # "to the last epoch"
# GNS: (model, initial B, scale factor) -> segments (first epoch, end epoch or _N, factor);
# applies when num_epochs > the first segment's first epoch. Facts from Shockwave's
# scheduler/utils.py::get_gns_bs_pattern (its loops: the first segment reaches the last epoch,
# later segments stop one epoch short of it; the result is capped at MAX_BATCH).
GNS_SCHEDULE: dict[tuple[str, int, int], tuple[tuple[int, int | None, int], ...]] = {
    ("ResNet-18", 16, 1): ((31, 41, 2), (41, 51, 4), (51, 71, 8), (71, _N, 16)),
    ("ResNet-18", 32, 1): ((21, 31, 2), (31, 51, 4), (51, _N, 8)),
    ("ResNet-18", 64, 1): ((11, 31, 2), (31, _N, 4)),
    ("ResNet-18", 128, 1): ((11, _N, 2),),
    ("ResNet-18", 16, 2): ((21, 31, 2), (31, 91, 4), (91, 111, 8), (111, _N, 16)),
    ("ResNet-18", 32, 2): ((11, 21, 2), (21, 41, 4), (41, _N, 8)),
    ("ResNet-18", 64, 2): ((21, 41, 2), (41, _N, 4)),
    ("ResNet-18", 128, 2): ((41, _N, 2),),
    ("ResNet-18", 16, 4): ((11, 21, 2), (21, 81, 4), (81, 91, 8), (91, _N, 16)),
    ("ResNet-18", 32, 4): ((21, 31, 2), (31, 61, 4), (61, _N, 8)),
    ("ResNet-18", 64, 4): ((11, 61, 2), (61, _N, 4)),
    ("ResNet-18", 128, 4): ((11, _N, 2),),
    ("ResNet-50", 64, 1): ((101, _N, 2),),
    ("ResNet-50", 32, 2): ((101, 111, 2), (111, _N, 4)),
    ("ResNet-50", 64, 2): ((81, _N, 2),),
    ("ResNet-50", 32, 4): ((131, 221, 2), (221, _N, 4)),
    ("ResNet-50", 64, 4): ((191, _N, 2),),
    ("LM", 5, 1): ((31, 41, 2), (41, 61, 4), (61, 71, 8), (71, _N, 16)),
    ("LM", 10, 1): ((11, 21, 2), (21, 41, 4), (41, _N, 8)),
    ("LM", 20, 1): ((11, 41, 2), (41, _N, 4)),
    ("LM", 40, 1): ((11, _N, 2),),
    ("LM", 5, 2): ((31, 51, 2), (51, 61, 4), (61, 71, 8), (71, _N, 16)),
    ("LM", 10, 2): ((11, 31, 2), (31, 41, 4), (41, _N, 8)),
    ("LM", 20, 2): ((31, 41, 2), (41, _N, 4)),
    ("LM", 40, 2): ((11, _N, 2),),
    ("LM", 5, 4): ((11, 31, 2), (31, 71, 4), (71, 91, 8), (91, _N, 16)),
    ("LM", 10, 4): ((11, 31, 2), (31, 61, 4), (61, _N, 8)),
    ("LM", 20, 4): ((11, 61, 2), (61, _N, 4)),
    ("LM", 40, 4): ((61, _N, 2),),
    ("Recommendation", 512, 1): ((21, 41, 2), (41, 71, 4), (71, 91, 8), (91, _N, 16)),
    ("Recommendation", 1024, 1): ((21, 51, 2), (51, 91, 4), (91, _N, 8)),
    ("Recommendation", 2048, 1): ((21, 41, 2), (41, _N, 4)),
    ("Recommendation", 4096, 1): ((41, _N, 2),),
}


def _critical_epochs(model: str, batch: int) -> set[int]:
    """Accordion's critical regime (epochs kept at the initial batch size), per model."""
    if model == "ResNet-18":
        regime = 20 if batch == 256 else 10
        return set(range(regime)) | set(range(150, 160)) | set(range(250, 260))
    if model == "ResNet-50":
        return {x for x in range(600) if x % 30 < 10}
    if model == "LM":
        return set(range(10))
    if model == "Recommendation":
        regime = {512: 30, 1024: 30, 2048: 40}.get(batch, 10)
        return set(range(regime)) | set(range(60, 70)) | set(range(80, 90))
    return set()


def accordion_schedule(model: str, batch: int, num_epochs: int) -> list[int]:
    """Accordion's batch size per epoch (Shockwave's ``get_accordion_bs_pattern`` rules)."""
    if model not in ("ResNet-18", "ResNet-50", "LM", "Recommendation"):
        return [batch] * num_epochs  # Transformer, CycleGAN, A3C never change
    critical = _critical_epochs(model, batch)
    big = MAX_BATCH[model]
    return [
        big if (e not in critical and e > num_epochs * 0.3) else batch for e in range(num_epochs)
    ]


def gns_schedule(model: str, batch: int, scale_factor: int, num_epochs: int) -> list[int]:
    """GNS's batch size per epoch (:data:`GNS_SCHEDULE`), capped at :data:`MAX_BATCH`."""
    out = [batch] * num_epochs
    if model not in MAX_BATCH or model == "Transformer":
        return out
    segments = GNS_SCHEDULE.get((model, batch, scale_factor), ())
    if segments and num_epochs > segments[0][0]:
        for i, (a, b, factor) in enumerate(segments):
            stop = num_epochs if b is None else min(b, num_epochs)
            if i > 0:
                stop = min(stop, num_epochs - 1)
            for e in range(a, stop):
                out[e] = batch * factor
    return [min(b, MAX_BATCH[model]) for b in out]


def batch_schedule(mode: str, model: str, batch: int, scale_factor: int, epochs: int) -> list[int]:
    """Batch size of every epoch for an adaptation ``mode`` (static, accordion, gns)."""
    if mode == "static":
        return [batch] * epochs
    if mode == "accordion":
        return accordion_schedule(model, batch, epochs)
    if mode == "gns":
        return gns_schedule(model, batch, scale_factor, epochs)
    raise ValueError(f"unknown adaptation mode {mode!r} (static, accordion, gns)")


_JOB_TYPE = re.compile(r"^(\S+) \(batch size (\d+)\)$")


def _adapted(row: dict, table: ThroughputTable, where: str) -> tuple[float, int, float]:
    """(adapted duration s, epochs, initial steps/s) of one trace row on V100s."""
    m = _JOB_TYPE.match(row["job_type"])
    if m is None or m.group(1) not in DATASET_SIZE:
        raise TraceError(f"{where}: job_type {row['job_type']!r} is not '<model> (batch size B)'")
    model, batch = m.group(1), int(m.group(2))
    sf, size = int(row["scale_factor"]), DATASET_SIZE[model]
    epochs = math.ceil(int(row["total_steps"]) / math.ceil(size / batch))
    total = 0.0
    for b in batch_schedule(row["mode"], model, batch, sf, epochs):
        tput = table.throughput(f"{model} (batch size {b})", "v100", sf)
        if tput <= 0:
            raise TraceError(f"{where}: 0 steps/s on v100 for {model} at batch size {b}")
        total += (size / b) / tput
    return total, epochs, table.throughput(row["job_type"], "v100", sf)


def read(path: str | Path, throughputs: str | Path | None = None, adaptation: bool = True) -> Trace:
    """The whole trace as a canonical table (see the module docstring)."""
    p = check_file(path)
    tput = Path(throughputs) if throughputs is not None else p.parent / "tacc_throughputs.json"
    table = load_throughputs(tput)
    rows = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines()):
        fields = line.split("\t")
        where = f"{p}: line {i + 1}"
        if len(fields) != len(FIELDS):
            raise TraceError(
                f"{where}: expected {len(FIELDS)} tab-separated fields, got {len(fields)}"
            )
        row = dict(zip(FIELDS, fields, strict=True))
        try:
            sf, steps = int(row["scale_factor"]), int(row["total_steps"])
            arrival, static = float(row["arrival_time"]), float(row["duration"])
        except ValueError as exc:
            raise TraceError(f"{where}: {exc}") from None
        if sf < 1 or steps < 1:
            raise TraceError(f"{where}: scale_factor and total_steps must be >= 1")
        if adaptation:
            duration, epochs, ref = _adapted(row, table, where)
        else:
            duration, epochs, ref = static, -1, table.throughput(row["job_type"], "v100", sf)
        rows.append(
            {
                "job_id": i,
                "submit_time": arrival,
                "duration": duration,
                "num_gpus": sf,
                "job_type": row["job_type"],
                "mode": row["mode"],
                "total_steps": steps,
                "num_epochs": epochs,
                "static_duration": static,
                "ref_steps_per_s": ref,
            }
        )
    if not rows:
        raise TraceError(f"{p}: no jobs")
    frame = validate(pd.DataFrame(rows), str(p), lines=np.arange(1, len(rows) + 1))
    return Trace(frame, str(p), {})


def load(
    path: str | Path,
    throughputs: str | Path | None = None,
    adaptation: bool = True,
    *,
    start: float | str | None = None,
    end: float | str | None = None,
    rebase: bool = False,
    sample_frac: float | None = None,
    max_jobs: int | None = None,
    time_scale: float = 1.0,
    queues: Iterable[str] | str | None = None,
    min_gpus: int | None = None,
    max_gpus: int | None = None,
    seed: int = 0,
) -> Trace:
    """Load a Shockwave trace.

    Args:
        path: the ``.trace`` file (12 fields).
        throughputs: ``tacc_throughputs.json``; None = next to the trace.
        adaptation: durations from the batch-size schedule of each job's mode (Shockwave's
            driver); False = the trace's static ``duration`` field.
        start: keep jobs arriving at or after this time (seconds, before rebasing).
        end: keep jobs arriving before this time (seconds, before rebasing).
        rebase: shift times so that the first kept job arrives at 0 (off by default: the
            shipped trace starts at 0).
        sample_frac: keep this fraction of the jobs, chosen at random with ``seed``.
        max_jobs: keep the first N jobs by arrival time.
        time_scale: divide inter-arrival times by this factor (2 = twice the load).
        queues: keep only these queues.
        min_gpus: keep jobs with at least this many GPUs.
        max_gpus: keep jobs with at most this many GPUs.
        seed: seed of the sampling RNG.

    Raises:
        TraceError: a malformed line (file and line named), an unknown job type or mode, or a
            (job type, scale factor) missing from the throughput table.
    """
    return finish(
        read(path, throughputs, adaptation),
        start=start,
        end=end,
        rebase=rebase,
        sample_frac=sample_frac,
        max_jobs=max_jobs,
        time_scale=time_scale,
        queues=queues,
        min_gpus=min_gpus,
        max_gpus=max_gpus,
        seed=seed,
    )
