"""The trace formats by name, and guessing a file's format from its name and header.

A format name is the module name under ``traces`` and the YAML name under ``configs/trace``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from traces.canonical import Trace, TraceError

__all__ = ["FORMATS", "detect", "load", "loader"]

FORMATS: Mapping[str, str] = MappingProxyType(
    {
        "file": "canonical job table (.csv / .parquet)",
        "philly": "Microsoft Philly job table (Pollux philly.csv)",
        "alibaba_openb": "Alibaba GPU-sharing pod lists (cluster-trace-gpu-v2023)",
        "alibaba_pai2020": "Alibaba PAI job + task tables (cluster-trace-gpu-v2020)",
        "azure_llm": "Azure LLM inference requests 2023",
        "gavel": "Gavel .trace files (Philly-derived)",
        "helios": "SenseTime Helios cluster_log.csv",
        "swf": "Standard Workload Format (.swf)",
        "mooncake": "Mooncake (Kimi) request traces with prefix-block hashes (.jsonl)",
        "acmetrace": "AcmeTrace Kalos/Seren job logs (NSDI'24), official or converted",
        "tiresias": "Tiresias simulator job traces (*_job.csv)",
    }
)
"""Format name -> description."""

_HEADERS = (
    ("philly", ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")),
    ("alibaba_openb", ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")),
    ("azure_llm", ("TIMESTAMP", "ContextTokens", "GeneratedTokens")),
    ("helios", ("job_id", "user", "vc", "gpu_num")),
    ("acmetrace", ("job_id", "user", "node_num", "gpu_num")),
    ("acmetrace", ("job_id", "arrival_time", "num_iteration")),
    ("tiresias", ("job_id", "num_gpu", "submit_time")),
)
"""(format, first header fields) pairs, tried in order."""


def loader(name: str) -> Callable[..., Trace]:
    """The ``load`` function of a format.

    Raises:
        ValueError: unknown format name (the message lists the known ones).
    """
    if name not in FORMATS:
        raise ValueError(f"unknown trace format {name!r}; known formats: {', '.join(FORMATS)}")
    return importlib.import_module(f"traces.{name}").load


def load(fmt: str, path: str | Path | None = None, **options: object) -> Trace:
    """Load a trace of format ``fmt`` with the format's and the common options.

    Args:
        fmt: format name (see :data:`FORMATS`), or ``"auto"`` to :func:`detect` it.
        path: the file (``None`` = the format's bundled sample, where it has one).
        **options: keyword options of the format's ``load``.

    Returns:
        The trace.
    """
    if fmt == "auto":
        if path is None:
            raise ValueError("format 'auto' needs a path")
        fmt = detect(path)
    return loader(fmt)(path, **options)


def detect(path: str | Path) -> str:
    """Guess the format of a trace file from its suffix, name and first line.

    Args:
        path: a file, or a folder holding the PAI tables.

    Returns:
        A format name.

    Raises:
        TraceError: the file does not exist.
        ValueError: the format cannot be told; pass it explicitly.
    """
    p = Path(path)
    if not p.exists():
        raise TraceError(f"{p}: file not found")
    suffixes = [s.lower() for s in p.suffixes]
    if p.is_dir() and (p / "pai_job_table.csv").is_file():
        return "alibaba_pai2020"
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "file"
    if suffixes and suffixes[-1] == ".swf":
        return "swf"
    if suffixes and suffixes[-1] == ".trace":
        return "gavel"
    if suffixes and suffixes[-1] == ".jsonl":
        return "mooncake"
    if p.name.startswith("pai_job_table"):
        return "alibaba_pai2020"
    if p.is_file():
        with p.open(encoding="utf-8", errors="replace") as f:
            first = tuple(c.strip() for c in f.readline().strip().split(","))
        if {"job_id", "submit_time", "duration", "num_gpus"} <= set(first):
            return "file"
        for name, header in _HEADERS:
            if first[: len(header)] == header:
                return name
    raise ValueError(
        f"{p}: cannot tell the trace format; give it explicitly (one of {', '.join(FORMATS)})"
    )
