"""Mooncake (Kimi / Moonshot AI, FAST'25) request traces: JSON Lines with prefix-block hashes.

File format (``FAST25-release/traces/*.jsonl`` of kvcache-ai/Mooncake): one JSON object per line,
``{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, ...]}``:
``timestamp`` = arrival in milliseconds from the first request, ``input_length`` /
``output_length`` = prompt / output tokens, ``hash_ids`` = remapped hashes of the prompt's
512-token blocks (``ceil(input_length / 512)`` of them; the last block may be partial). A hash
names a block *and its whole prefix*, so equal ids across requests mark reusable prefix KV
cache. ``traces/data/mooncake_conversation_sample.jsonl`` holds the first 300 requests of the
conversation trace (see ``traces/data/README.md``).

Besides the loader this module computes the prefix reuse of a request sequence with an
unbounded cache (:func:`prefix_reuse`), the reference count a simulated prefix cache must equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from traces.cache import cached_read
from traces.canonical import Trace, TraceError, finish, validate
from traces.errors import row_error
from traces.tables import check_file, duration_rule

__all__ = [
    "BLOCK_TOKENS",
    "FIELDS",
    "SAMPLE",
    "PrefixReuse",
    "RequestTable",
    "hash_arrays",
    "load",
    "parse",
    "prefix_reuse",
    "read",
]

BLOCK_TOKENS = 512
"""Tokens per prefix block of the Mooncake traces."""

FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")
"""Fields of every request object."""

SAMPLE = Path(__file__).resolve().parent / "data" / "mooncake_conversation_sample.jsonl"
"""Bundled first 300 requests of ``conversation_trace.jsonl``, used when ``path`` is None."""

_SCHEMA = pa.schema(
    [
        ("timestamp", pa.float64()),
        ("input_length", pa.int64()),
        ("output_length", pa.int64()),
        ("hash_ids", pa.list_(pa.int64())),
    ]
)
_WHAT = "Mooncake request trace (JSON Lines: timestamp, input_length, output_length, hash_ids)"


@dataclass(frozen=True)
class RequestTable:
    """The columns of a Mooncake file, one entry per request in file order.

    Attributes:
        timestamp_ms: arrival, milliseconds (float64).
        input_length: prompt tokens (int64).
        output_length: output tokens (int64).
        hashes: every request's block hashes, concatenated (int32 when all ids fit, else int64).
        offsets: request ``i`` has ``hashes[offsets[i]:offsets[i + 1]]`` (int64, ``n + 1``).
        lines: ``(n, 2)`` int array of 1-based ``(data row, file line)`` (blank lines skipped).
    """

    timestamp_ms: np.ndarray
    input_length: np.ndarray
    output_length: np.ndarray
    hashes: np.ndarray
    offsets: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return int(self.input_length.size)


def parse(path: str | Path, *, block_tokens: int = BLOCK_TOKENS) -> RequestTable:
    """Read and check a Mooncake JSONL file.

    The file is parsed by Arrow's JSON reader; when that fails, the file is read again line by
    line to name the first bad row.

    Args:
        path: the ``.jsonl`` file.
        block_tokens: tokens per hash block (512 in the Mooncake traces).

    Returns:
        The request columns.

    Raises:
        TraceError: missing/empty/non-UTF-8 file, a line that is not a JSON object, a missing
            or null field, a value of the wrong type (``timestamp`` a number, the lengths whole
            numbers, ``hash_ids`` a list of whole numbers), a negative or non-finite value, or
            a hash list whose length is not ``ceil(input_length / block_tokens)``; each names
            the file, the row, the line and the field.
    """
    if isinstance(block_tokens, bool) or not isinstance(block_tokens, int) or block_tokens < 1:
        raise ValueError(f"block_tokens must be a whole number >= 1, got {block_tokens!r}")
    p = check_file(path)
    try:
        table = pa_json.read_json(
            p,
            parse_options=pa_json.ParseOptions(
                explicit_schema=_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        _scan(p)  # raises the precise error
        raise TraceError(
            f"{p}: cannot read as JSON Lines ({exc}) (expected format: {_WHAT})"
        ) from exc
    if table.num_rows == 0:
        raise TraceError(f"{p}: no requests in the file")
    lines = _data_lines(p, table.num_rows)
    return _columns(p, table, lines, block_tokens)


def _columns(p: Path, table: pa.Table, lines: np.ndarray, block_tokens: int) -> RequestTable:
    source = str(p)
    cols = {}
    for name in FIELDS:
        col = table.column(name)
        if col.null_count:
            nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False))
            raise row_error(source, nulls, name, "missing value (absent or null)", lines)
        cols[name] = col.combine_chunks()
    ts = cols["timestamp"].to_numpy()
    _check(np.isfinite(ts) & (ts >= 0), ts, source, "timestamp", "expected ms >= 0", lines)
    inp = cols["input_length"].to_numpy()
    out = cols["output_length"].to_numpy()
    _check(inp >= 0, inp, source, "input_length", "expected a token count >= 0", lines)
    _check(out >= 0, out, source, "output_length", "expected a token count >= 0", lines)
    hashes = cols["hash_ids"]
    if hashes.values.null_count:
        counts = np.asarray(hashes.value_lengths().to_numpy())
        owner = np.repeat(np.arange(len(counts)), counts)
        null_rows = np.unique(owner[hashes.flatten().is_null().to_numpy(zero_copy_only=False)])
        raise row_error(source, null_rows, "hash_ids", "null block hash in the list", lines)
    counts = np.asarray(hashes.value_lengths().to_numpy(), dtype=np.int64)
    want = -(-inp // block_tokens)
    bad = counts != want
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise row_error(
            source,
            bad,
            "hash_ids",
            f"expected ceil(input_length / {block_tokens}) = {want[k]} block hashes for "
            f"input_length {inp[k]}, got {counts[k]}",
            lines,
        )
    flat = hashes.flatten().to_numpy()
    info = np.iinfo(np.int32)
    if flat.size == 0 or (flat.min() >= info.min and flat.max() <= info.max):
        flat = flat.astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return RequestTable(ts.astype(np.float64), inp, out, flat, offsets, lines)


def _check(
    ok: np.ndarray, vals: np.ndarray, source: str, field: str, why: str, lines: np.ndarray
) -> None:
    bad = ~np.asarray(ok, dtype=bool)
    if bad.any():
        first = vals[int(np.flatnonzero(bad)[0])]
        raise row_error(source, bad, field, f"{why}, got {first.item()!r}", lines)


def _data_lines(p: Path, n: int) -> np.ndarray:
    """``(row, line)`` pairs of the non-blank lines (Arrow skips blank lines).

    Counts newlines in 16 MiB chunks; only a file with blank lines is read line by line.
    """
    newlines, last = 0, b"\n"
    with p.open("rb") as f:
        while chunk := f.read(1 << 24):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    rows = np.arange(1, n + 1, dtype=np.int64)
    if newlines + (last != b"\n") == n:  # no blank line: row r is line r
        return np.column_stack([rows, rows])
    with p.open("rb") as f:
        content = [k for k, text in enumerate(f, start=1) if text.strip()]
    if len(content) != n:  # Arrow and this count disagree on what is blank: stay truthful
        content = rows
    return np.column_stack([rows, np.asarray(content, dtype=np.int64)])


def _scan(p: Path) -> None:
    """Read the file line by line and raise a TraceError for the first bad request."""
    row = 0
    try:
        with p.open(encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                row += 1
                _scan_line(p, text, row, number)
    except UnicodeDecodeError as exc:
        raise TraceError(f"{p}: not a UTF-8 text file ({exc.reason})") from exc
    if row == 0:
        raise TraceError(f"{p}: no requests in the file")


def _scan_line(p: Path, text: str, row: int, line: int) -> None:
    where = f"{p}: row {row} (line {line})"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno}) (expected format: {_WHAT})"
        ) from exc
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for name in FIELDS:
        if obj.get(name) is None:
            raise TraceError(f"{where}, column {name}: missing value (absent or null)")
    ts = obj["timestamp"]
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise TraceError(f"{where}, column timestamp: expected a number (ms), got {ts!r}")
    for name in ("input_length", "output_length"):
        v = obj[name]
        if isinstance(v, bool) or not isinstance(v, int) or not -(2**63) <= v < 2**63:
            raise TraceError(f"{where}, column {name}: expected a whole number, got {v!r}")
    ids = obj["hash_ids"]
    if not isinstance(ids, list):
        raise TraceError(f"{where}, column hash_ids: expected a list of block hashes, got {ids!r}")
    for v in ids:
        if isinstance(v, bool) or not isinstance(v, int) or not -(2**63) <= v < 2**63:
            raise TraceError(f"{where}, column hash_ids: expected whole-number hashes, got {v!r}")


def read(
    path: str | Path | None = None,
    *,
    block_tokens: int = BLOCK_TOKENS,
    keep_hashes: bool = True,
    base_duration: float = 0.05,
    prefill_s_per_token: float = 1.0e-4,
    decode_s_per_token: float = 0.02,
    num_gpus: int = 1,
    gpu_type: str = "",
    queue: str = "default",
    zero_duration: str = "drop",
    min_duration: float = 1.0,
) -> Trace:
    """Read a Mooncake JSONL file in full (no trace options applied); see :func:`load`.

    Args:
        path: the ``.jsonl`` file; ``None`` = the bundled sample.
        block_tokens: see :func:`load`.
        keep_hashes: see :func:`load`.
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
    p = SAMPLE if path is None else Path(path)
    req = parse(p, block_tokens=block_tokens)
    source, report = str(p), {}
    n = len(req)
    duration = (
        base_duration
        + req.input_length * prefill_s_per_token
        + req.output_length * decode_s_per_token
    )
    duration, keep = duration_rule(
        duration,
        source,
        "input_length, output_length",
        req.lines,
        zero_duration=zero_duration,
        min_duration=min_duration,
        report=report,
    )
    jobs = pd.DataFrame(
        {
            "job_id": f"{p.stem}-" + pd.Series(np.arange(n).astype(str)),
            "submit_time": req.timestamp_ms / 1000.0,
            "duration": duration,
            "num_gpus": np.full(n, num_gpus, dtype=np.int64),
            "gpu_type": gpu_type,
            "kind": "infer",
            "queue": queue,
            "prompt_tokens": req.input_length,
            "output_tokens": req.output_length,
        }
    )
    if keep_hashes:
        jobs["hash_ids"] = _hash_column(req.hashes, req.offsets)
    lines = req.lines
    if not keep.all():
        jobs, lines = jobs.loc[keep].reset_index(drop=True), lines[keep]
    return Trace(jobs=validate(jobs, source, lines=lines), source=source, report=report)


def _hash_column(hashes: np.ndarray, offsets: np.ndarray) -> pd.arrays.ArrowExtensionArray:
    """A list column backed by one flat Arrow buffer (no Python objects per request)."""
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(hashes))
    return pd.arrays.ArrowExtensionArray(lists)


def hash_arrays(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The flat hashes and offsets of a ``hash_ids`` column (as :func:`load` builds it).

    Also accepts the column read back from Parquet (an array per row) or from a CSV written by
    :mod:`traces.convert` (JSON text per row, ``[0, 14, 15]``).

    Args:
        column: one list of block hashes per request.

    Returns:
        ``(hashes, offsets)``: request ``i`` has ``hashes[offsets[i]:offsets[i + 1]]``; hashes
        int32 when every id fits, else int64; offsets int64 of length ``len(column) + 1``.

    Raises:
        ValueError: a row is not a list of whole numbers (e.g. the text of a CSV file).
    """
    if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
        column = _parsed_text(column)
    try:
        arr = pa.array(column, from_pandas=True)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
            raise TypeError(f"got Arrow type {arr.type}")
        if not pa.types.is_integer(arr.type.value_type):
            raise TypeError(f"got list items of type {arr.type.value_type}")
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise ValueError(f"hash_ids column is not a list of whole numbers per row ({exc})") from exc
    if arr.null_count:
        raise ValueError("hash_ids column has empty (null) rows")
    counts = np.asarray(arr.value_lengths().to_numpy(), dtype=np.int64)
    flat = np.asarray(arr.flatten().to_numpy(), dtype=np.int64)
    info = np.iinfo(np.int32)
    if flat.size == 0 or (flat.min() >= info.min and flat.max() <= info.max):
        flat = flat.astype(np.int32)
    return flat, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _parsed_text(column: pd.Series) -> pd.Series | list:
    """JSON-text rows (``"[0, 1]"``) parsed into lists; other rows are left as they are."""
    if not len(column) or not isinstance(column.iloc[0], str):
        return column
    try:
        return [json.loads(v) if isinstance(v, str) else v for v in column]
    except json.JSONDecodeError as exc:
        raise ValueError(f"hash_ids column: a row is not a JSON list ({exc.msg})") from exc


def load(
    path: str | Path | None = None,
    *,
    block_tokens: int = BLOCK_TOKENS,
    keep_hashes: bool = True,
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
    """Load a Mooncake request trace as canonical ``infer`` jobs (one request = one job).

    Column derivation:

    - ``job_id`` = ``"<file stem>-<r>"``, r = 0-based data row.
    - ``submit_time`` = ``timestamp / 1000`` (seconds; the files start at 0).
    - ``prompt_tokens`` = ``input_length``, ``output_tokens`` = ``output_length`` (int64).
    - ``hash_ids`` (with ``keep_hashes``): the request's block hashes, a list column backed by
      one flat Arrow int buffer plus offsets (``pandas.ArrowDtype(large_list<int32|int64>)``);
      :func:`hash_arrays` returns them as NumPy arrays. Parquet output keeps the lists; CSV
      output turns them into text.
    - ``duration`` is a **placeholder** (the trace has no latency), as for ``azure_llm``:
      ``base_duration + input_length * prefill_s_per_token + output_length *
      decode_s_per_token``; a serving model computes service times from the token counts.
    - ``kind`` = "infer"; ``num_gpus`` / ``gpu_type`` / ``queue`` as the options of the same
      name; ``gpu_milli`` 1000, ``num_cpus`` / ``memory_gb`` 0, ``priority`` 0.

    Every line is a request that arrived. Requests with equal timestamps keep their file order.
    A zero placeholder duration (only with all rates 0) follows ``zero_duration``.

    Args:
        path: Mooncake ``.jsonl``; ``None`` = the bundled sample
            ``traces/data/mooncake_conversation_sample.jsonl``.
        block_tokens: tokens per hash block; every request must have
            ``ceil(input_length / block_tokens)`` hashes.
        keep_hashes: add the ``hash_ids`` column.
        base_duration: seconds of the placeholder duration independent of tokens.
        prefill_s_per_token: placeholder seconds per prompt token.
        decode_s_per_token: placeholder seconds per output token.
        num_gpus: GPUs given to every request.
        gpu_type: GPU model required by every request ("" = any).
        queue: queue name of every request.
        zero_duration: ``drop``, ``repair`` or ``error`` for zero placeholder durations.
        min_duration: seconds given to repaired zero-duration requests.
        cache_dir: store/reuse the parsed table as Parquet here (see :mod:`traces.cache`).
        start: keep requests at or after this time (seconds from the file's time 0).
        end: keep requests before this time (seconds).
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
        "block_tokens": block_tokens,
        "keep_hashes": keep_hashes,
        "base_duration": base_duration,
        "prefill_s_per_token": prefill_s_per_token,
        "decode_s_per_token": decode_s_per_token,
        "num_gpus": num_gpus,
        "gpu_type": gpu_type,
        "queue": queue,
        "zero_duration": zero_duration,
        "min_duration": min_duration,
    }
    trace = cached_read("mooncake", read, path, options, cache_dir)
    if keep_hashes and not isinstance(trace.jobs["hash_ids"].dtype, pd.ArrowDtype):
        jobs = trace.jobs.copy()  # read back from the Parquet cache as Python lists
        jobs["hash_ids"] = _hash_column(*hash_arrays(jobs["hash_ids"]))
        trace = Trace(jobs=jobs, source=trace.source, report=trace.report)
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


@dataclass(frozen=True)
class PrefixReuse:
    """Prefix reuse of a request sequence with an unbounded cache shared by all requests.

    A block of request ``r`` is *reusable* when an earlier request (``r' < r`` in the given
    order) had the same hash; the reusable prefix of ``r`` is its leading run of reusable
    blocks (a prefix cache stops at the first miss).

    Attributes:
        blocks: hash blocks per request.
        input_tokens: prompt tokens per request.
        hit_blocks: blocks of the reusable prefix per request.
        hit_tokens: tokens of the reusable prefix per request (``min(hit_blocks x B, input)``).
        seen_blocks: blocks seen in earlier requests anywhere in the request (>= hit_blocks;
            equal for hashes that name their whole prefix, as Mooncake's do).
        block_tokens: tokens per block ``B``.
    """

    blocks: np.ndarray
    input_tokens: np.ndarray
    hit_blocks: np.ndarray
    hit_tokens: np.ndarray
    seen_blocks: np.ndarray
    block_tokens: int

    @property
    def token_share(self) -> float:
        """Share of all input tokens in reusable prefixes (0 when there are no tokens)."""
        total = int(self.input_tokens.sum())
        return float(self.hit_tokens.sum() / total) if total else 0.0

    @property
    def block_share(self) -> float:
        """Share of all blocks in reusable prefixes (0 when there are no blocks)."""
        total = int(self.blocks.sum())
        return float(self.hit_blocks.sum() / total) if total else 0.0


def prefix_reuse(
    hashes: np.ndarray,
    offsets: np.ndarray,
    input_tokens: np.ndarray,
    block_tokens: int = BLOCK_TOKENS,
) -> PrefixReuse:
    """Reusable prefix of every request, with an unbounded cache that all requests share.

    Requests are taken in the given order (a stream sorted by arrival, ties in file order); a
    request never hits its own blocks, so two requests at the same instant count as one after
    the other, the ideal of a cache that already holds everything computed earlier.

    Args:
        hashes: every request's block hashes, concatenated.
        offsets: int array of ``n + 1`` offsets into ``hashes``.
        input_tokens: prompt tokens per request.
        block_tokens: tokens per block.

    Returns:
        Per-request counts (see :class:`PrefixReuse`).
    """
    hashes = np.asarray(hashes)
    offsets = np.asarray(offsets, dtype=np.int64)
    tokens = np.asarray(input_tokens, dtype=np.int64)
    counts = np.diff(offsets)
    n, total = counts.size, int(offsets[-1])
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    position = np.arange(total, dtype=np.int64) - offsets[owner]
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    seen = owner[first][inverse.ravel()] < owner
    hit_blocks = counts.copy()
    miss = np.flatnonzero(~seen)
    missed, first_miss = np.unique(owner[miss], return_index=True)
    hit_blocks[missed] = position[miss[first_miss]]
    return PrefixReuse(
        blocks=counts,
        input_tokens=tokens,
        hit_blocks=hit_blocks,
        hit_tokens=np.minimum(hit_blocks * int(block_tokens), tokens),
        seen_blocks=np.bincount(owner, weights=seen, minlength=n).astype(np.int64),
        block_tokens=int(block_tokens),
    )
