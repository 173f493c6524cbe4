"""Azure LLM inference trace 2023 (Splitwise, ISCA'24): one row per inference request.

File format (``AzureLLMInferenceTrace_{code,conv}.csv`` of Azure/AzurePublicDataset): CSV with
header ``TIMESTAMP,ContextTokens,GeneratedTokens``; ``TIMESTAMP`` is a naive wall clock with 7
fractional digits (``2023-11-16 18:15:46.6805900``). ``traces/data/azure_llm_conv_sample.csv``
is a verbatim 2,000-row excerpt of the conversation trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from traces.cache import cached_read
from traces.canonical import Trace, finish, validate
from traces.tables import check, duration_rule, numbers, read_csv_table, timestamps

__all__ = ["COLUMNS", "SAMPLE", "TIME_FORMAT", "load", "read"]

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
"""Header of the Azure LLM inference CSV files."""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
"""Format of ``TIMESTAMP`` (up to 9 fractional digits are kept, to the nanosecond)."""

SAMPLE = Path(__file__).resolve().parent / "data" / "azure_llm_conv_sample.csv"
"""Bundled 2,000-request sample of the conversation trace, used when ``path`` is None."""


def read(
    path: str | Path | None = None,
    *,
    base_duration: float = 0.05,
    prefill_s_per_token: float = 1.0e-4,
    decode_s_per_token: float = 0.02,
    num_gpus: int = 1,
    gpu_type: str = "",
    queue: str = "default",
    zero_duration: str = "drop",
    min_duration: float = 1.0,
) -> Trace:
    """Read an Azure LLM inference CSV in full (no trace options applied); see :func:`load`.

    Args:
        path: the CSV; ``None`` = the bundled sample.
        base_duration: see :func:`load`.
        prefill_s_per_token: see :func:`load`.
        decode_s_per_token: see :func:`load`.
        num_gpus: see :func:`load`.
        gpu_type: see :func:`load`.
        queue: see :func:`load`.
        zero_duration: see :func:`load`.
        min_duration: see :func:`load`.

    Returns:
        The canonical trace with its report.
    """
    for name, value in (
        ("base_duration", base_duration),
        ("prefill_s_per_token", prefill_s_per_token),
        ("decode_s_per_token", decode_s_per_token),
    ):
        if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
            raise ValueError(
                f"azure_llm option {name} must be a number >= 0 (seconds), got {value!r}"
            )
    p = SAMPLE if path is None else Path(path)
    source = str(p)
    table, lines = read_csv_table(
        p, required=COLUMNS, dtype={"TIMESTAMP": str}, what="Azure LLM inference CSV"
    )
    report: dict[str, int] = {}
    submit = timestamps(table, "TIMESTAMP", source, lines, fmt=TIME_FORMAT)
    tokens = {}
    for col in ("ContextTokens", "GeneratedTokens"):
        tokens[col] = numbers(table, col, source, lines, integer=True)
        check(tokens[col] >= 0, table[col], source, col, "expected a token count >= 0", lines)
        check(tokens[col] < 2**53, table[col], source, col, "expected a token count < 2**53", lines)
    prompt, output = tokens["ContextTokens"], tokens["GeneratedTokens"]
    duration = base_duration + prompt * prefill_s_per_token + output * decode_s_per_token
    duration, keep = duration_rule(
        duration,
        source,
        "ContextTokens, GeneratedTokens",
        lines,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
    )
    jobs = pd.DataFrame(
        {
            "job_id": f"{p.stem}-" + pd.Series(np.arange(len(table)).astype(str)),
            "submit_time": submit,
            "duration": duration,
            "num_gpus": np.full(len(table), num_gpus, dtype=np.int64),
            "gpu_type": gpu_type,
            "kind": "infer",
            "queue": queue,
            "prompt_tokens": prompt.astype(np.int64),
            "output_tokens": output.astype(np.int64),
        }
    )
    if not keep.all():
        jobs, lines = jobs.loc[keep].reset_index(drop=True), lines[keep]
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def load(
    path: str | Path | None = None,
    *,
    base_duration: float = 0.05,
    prefill_s_per_token: float = 1.0e-4,
    decode_s_per_token: float = 0.02,
    num_gpus: int = 1,
    gpu_type: str = "",
    queue: str = "default",
    zero_duration: str = "drop",
    min_duration: float = 1.0,
    cache_dir: str | None = None,
    start: float | str | None = None,
    end: float | str | None = None,
    rebase: bool = True,
    sample_frac: float | None = None,
    max_jobs: int | None = None,
    time_scale: float = 1.0,
    queues: Iterable[str] | str | None = None,
    min_gpus: int | None = None,
    max_gpus: int | None = None,
    seed: int = 0,
) -> Trace:
    """Load an Azure LLM inference trace as canonical ``infer`` jobs (one request = one job).

    Column derivation:

    - ``job_id`` = ``"<file stem>-<r>"``, r = 0-based data row.
    - ``submit_time`` = ``TIMESTAMP``: a naive wall clock (no time zone is given upstream) read
      as UTC, in Unix seconds before rebasing; with the default ``rebase=True`` it is seconds
      from the first request (float64 Unix seconds keep ~0.25 µs of the 100 ns resolution).
    - ``duration`` is a **placeholder**: the trace has no latency. It is
      ``base_duration + ContextTokens * prefill_s_per_token + GeneratedTokens *
      decode_s_per_token`` (defaults 0.05 s + 0.1 ms per prompt token + 20 ms per output
      token); engines with a serving model compute the real service time from the token counts.
    - ``prompt_tokens`` = ``ContextTokens``, ``output_tokens`` = ``GeneratedTokens`` (extra
      int64 columns).
    - ``kind`` = "infer"; ``num_gpus`` / ``gpu_type`` / ``queue`` are the options of the same
      name (the trace has no model or hardware); ``gpu_milli`` 1000, ``num_cpus``/``memory_gb``
      0, ``priority`` 0.

    Every row is a request that arrived; the trace has no notion of unfinished requests.
    Negative or missing token counts and unparseable timestamps are errors naming row, line and
    column; a zero placeholder duration (only possible with all rates 0) follows
    ``zero_duration``.

    Args:
        path: Azure LLM CSV; ``None`` = bundled ``traces/data/azure_llm_conv_sample.csv``.
        base_duration: seconds of the placeholder duration independent of tokens.
        prefill_s_per_token: placeholder seconds per prompt token.
        decode_s_per_token: placeholder seconds per generated token.
        num_gpus: GPUs given to every request.
        gpu_type: GPU model required by every request ("" = any).
        queue: queue name of every request.
        zero_duration: ``drop``, ``repair`` or ``error`` for zero placeholder durations.
        min_duration: seconds given to repaired zero-duration requests.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep requests at or after this time (Unix seconds or date-time string, UTC).
        end: keep requests before this time (Unix seconds or date-time string, UTC).
        rebase: shift times so that the first kept request arrives at 0.
        sample_frac: keep this fraction of the requests, chosen at random with ``seed``.
        max_jobs: keep the first N requests by arrival time.
        time_scale: divide inter-arrival times by this factor (2 = twice the request rate).
        queues: keep only these queues.
        min_gpus: keep requests with at least this many GPUs.
        max_gpus: keep requests with at most this many GPUs.
        seed: seed of the sampling RNG.

    Returns:
        The trace with its report of dropped/repaired/filtered rows.
    """
    options = {
        "base_duration": base_duration,
        "prefill_s_per_token": prefill_s_per_token,
        "decode_s_per_token": decode_s_per_token,
        "num_gpus": num_gpus,
        "gpu_type": gpu_type,
        "queue": queue,
        "zero_duration": zero_duration,
        "min_duration": min_duration,
    }
    trace = cached_read("azure_llm", read, path, options, cache_dir)
    return finish(
        trace,
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
