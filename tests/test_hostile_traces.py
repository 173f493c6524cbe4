"""Hostile input for every trace loader in ``traces.formats.FORMATS`` and the failure trace.

Each format starts from a small valid file (real rows of the bundled samples where there are
some, else rows built to the published schema) that loads. Each case then breaks it the way
files get broken in practice: empty, blank or header-only files, truncation mid-row, latin-1
bytes, UTF-16, a UTF-8 byte-order mark, binary garbage, NUL bytes, numbers too large for a
float or an int64, NaN and infinities, a repeated header line, duplicated column names, ragged
rows, an unbalanced quote, a megabyte-long field, CRLF line ends.

Every case must end, within a time limit, in one of:

* a ``ValueError`` (``traces.TraceError`` is one) whose message names the file; or
* a loaded trace that is a valid canonical table (finite times, durations > 0, GPU counts
  >= 0) with no more jobs than the file has data lines, where corrupted values were either
  rejected or dropped/repaired *and counted* in ``trace.report``.

Anything else (another exception type, a message that does not say which file, a hang, or a
corrupt value loaded silently) fails. Loader defects found here are ``xfail(strict=True)``
with the reason, and listed in ``docs/KNOWN_ISSUES.md`` for the loader owners.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from simulator.limits import TimeLimitError, time_limit
from simulator.models.failures import TraceFailures
from traces import FORMATS, load, validate

DATA = Path(__file__).resolve().parents[1] / "traces" / "data"

# Loaders cast floats beyond the int64 range (defects L1, L4, L7 below); NumPy warns, the cases
# assert on the outcome.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")


def sample(name: str, rows: int) -> str:
    with (DATA / name).open(encoding="utf-8") as f:
        return "".join(f.readline() for _ in range(rows + 1))


@dataclass
class Format:
    """A loader, a valid file for it, and where its number and text fields are."""

    name: str
    filename: str
    text: str
    sep: str = ","
    header: bool = True
    numbers: dict[str, int] = field(default_factory=dict)  # label -> field index
    text_field: int = 0
    optional: frozenset[str] = frozenset()  # number labels where an empty/NaN cell is legal
    extra: dict[str, str] = field(default_factory=dict)  # more files next to the trace
    options: dict = field(default_factory=dict)

    def write(self, folder: Path, content: bytes) -> tuple[Path, Path]:
        """Write the (broken) file and its companions; return (loader path, broken file)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.extra.items():
            (folder / name).write_text(text)
        target = folder / self.filename
        target.write_bytes(content)
        return (folder if self.name == "alibaba_pai2020" else target), target

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


GAVEL_TPUT = {
    "v100": {
        "('ResNet-18 (batch size 32)', 1)": {"null": 10.0},
        "('A3C', 1)": {"null": 2.0},
        "('A3C', 2)": {"null": 3.0},
    }
}
SWF_HEADER = "; Version: 2.2\n; UnixStartTime: 1506902400\n;\n"

FORMATS_UNDER_TEST = {
    f.name: f
    for f in (
        Format(
            "file",
            "jobs.csv",
            "job_id,submit_time,duration,num_gpus,queue\n"
            + "".join(f"j{k},{10 * k},{100 + k},{1 + k % 4},team-{k % 3}\n" for k in range(8)),
            numbers={"submit_time": 1, "duration": 2, "num_gpus": 3},
            text_field=4,
        ),
        Format(
            "philly",
            "philly.csv",
            sample("philly_sample.csv", 8),
            numbers={"duration": 1, "num_gpus": 2},
            text_field=4,
        ),
        Format(
            "alibaba_openb",
            "openb_pod_list_default.csv",
            sample("openb_pod_sample.csv", 8),
            numbers={
                "cpu_milli": 1,
                "num_gpu": 3,
                "gpu_milli": 4,
                "creation_time": 8,
                "deletion_time": 9,
            },
            text_field=0,
        ),
        Format(
            "azure_llm",
            "AzureLLMInferenceTrace_conv.csv",
            sample("azure_llm_conv_sample.csv", 8),
            numbers={"ContextTokens": 1, "GeneratedTokens": 2},
            text_field=0,
        ),
        Format(
            "helios",
            "cluster_log.csv",
            "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,"
            "duration,queue\n"
            + "".join(
                f"{1425511 + k},u{k},vc{k % 2},{1 + k % 4},8,1,COMPLETED,2020-06-09 18:4{k}:01,"
                f"2020-06-09 18:4{k}:05,2020-06-09 19:4{k}:05,3600,4\n"
                for k in range(8)
            ),
            numbers={"gpu_num": 3, "cpu_num": 4, "duration": 10},
            text_field=1,
            optional=frozenset({"cpu_num", "duration"}),
        ),
        Format(
            "alibaba_pai2020",
            "pai_job_table.csv",
            "".join(
                f"job{k},inst{k},user{k % 2},Terminated,{1000 + 10 * k}.0,{2000 + 10 * k}.0\n"
                for k in range(8)
            ),
            header=False,
            numbers={"start_time": 4, "end_time": 5},
            text_field=2,
            optional=frozenset({"end_time"}),
            extra={
                "pai_task_table.csv": "".join(
                    f"job{k},worker,1.0,Terminated,{1005 + 10 * k}.0,{2000 + 10 * k}.0,600.0,"
                    f"29.3,{50 * (1 + k % 3)}.0,V100\n"
                    for k in range(8)
                )
            },
        ),
        Format(
            "gavel",
            "6214e9.trace",
            "".join(
                f"{'A3C' if k % 2 else 'ResNet-18 (batch size 32)'}\tpython3 main.py\t"
                f"--num_steps\t1\t{100 * (k + 1)}\t{50.0 * k}\t1\n"
                for k in range(8)
            ),
            sep="\t",
            header=False,
            numbers={"total_steps": 4, "arrival_time": 5, "scale_factor": 6},
            text_field=1,
            extra={"simulation_throughputs.json": json.dumps(GAVEL_TPUT)},
        ),
        Format(
            "acmetrace",
            "converted_kalos_trace.csv",
            sample("acmetrace_kalos_converted_sample.csv", 8),
            numbers={
                "arrival_time": 1,
                "num_iteration": 2,
                "gpu_workers": 5,
                "gpu_per_worker": 7,
                "cpu_per_gpu_worker": 8,
                "tensorsizes": 10,
            },
            text_field=0,
        ),
        Format(
            "tiresias",
            "60_job.csv",
            sample("tiresias_60_job.csv", 8).replace("\r\n", "\n"),
            numbers={"num_gpu": 1, "submit_time": 2, "iterations": 3, "duration": 5},
            text_field=4,
        ),
        Format(
            # JSON Lines: the comma-split fields below are pieces of a JSON object, so every
            # case that edits one breaks the JSON (tests/test_traces_mooncake.py edits values)
            "mooncake",
            "conversation_trace.jsonl",
            sample("mooncake_conversation_sample.jsonl", 7),
            header=False,
            text_field=4,
        ),
        Format(
            "swf",
            "log.swf",
            SWF_HEADER
            + "".join(
                f"{k + 1} {30 * k} 10 {600 + k} 8 -1 -1 8 900 -1 1 3 1 -1 {1 + k % 2} -1 -1 -1\n"
                for k in range(8)
            ),
            sep=" ",
            header=False,
            numbers={"submit": 1, "run_time": 3, "procs": 4},
            text_field=12,
        ),
    )
}


def test_every_loader_is_under_test_and_its_base_file_loads(tmp_path):
    assert set(FORMATS) == set(FORMATS_UNDER_TEST), "a new format needs a base file here"
    for fmt in FORMATS_UNDER_TEST.values():
        path, _ = fmt.write(tmp_path / fmt.name, fmt.text.encode())
        trace = load(fmt.name, path, **fmt.options)
        assert len(trace.jobs) == 8, fmt.name


# ---------------------------------------------------------------------------------- cases
def first_data_line(fmt: Format) -> int:
    lines = fmt.lines
    k = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith(";"))
    return k + 1 if fmt.header else k


def set_field(fmt: Format, index: int, value: str, line: int | None = None) -> bytes:
    lines = fmt.lines
    k = first_data_line(fmt) + 1 if line is None else line
    parts = lines[k].split(fmt.sep)
    parts[index] = value
    lines[k] = fmt.sep.join(parts)
    return ("\n".join(lines) + "\n").encode()


def truncated(fmt: Format) -> bytes:
    lines = fmt.lines
    k = first_data_line(fmt) + 3
    cut = sum(len(line) + 1 for line in lines[:k]) + len(lines[k]) // 2
    return fmt.text.encode()[:cut]


def header_only(fmt: Format) -> bytes:
    if fmt.name == "swf":
        return SWF_HEADER.encode()
    return (fmt.lines[0] + "\n").encode() if fmt.header else b"\n"


def repeated_header(fmt: Format, where: int) -> bytes:
    lines = fmt.lines
    lines.insert(where, lines[first_data_line(fmt) - 1] if fmt.header else lines[0])
    return ("\n".join(lines) + "\n").encode()


def duplicated_column(fmt: Format) -> bytes:
    lines = fmt.lines
    names = lines[0].split(fmt.sep)
    names[1] = names[0]
    lines[0] = fmt.sep.join(names)
    return ("\n".join(lines) + "\n").encode()


def ragged(fmt: Format, extra: bool) -> bytes:
    lines = fmt.lines
    k = first_data_line(fmt) + 2
    parts = lines[k].split(fmt.sep)
    lines[k] = fmt.sep.join(parts + ["7"] if extra else parts[:-2])
    return ("\n".join(lines) + "\n").encode()


MUST_FAIL = "error"
"""The case may only end in an error naming the file."""
ERROR_OR_COUNTED = "counted"
"""An error, or a load that dropped/repaired the bad row and counted it in the report."""
ANY_VALID = "valid"
"""An error, or a load of a valid canonical table (the content is legal, if odd)."""

CASES: dict[str, tuple[Callable[[Format], bytes], str]] = {
    "empty": (lambda f: b"", MUST_FAIL),
    "blank_lines": (lambda f: b"\n\n\n", MUST_FAIL),
    "header_only": (header_only, MUST_FAIL),
    "truncated_mid_row": (truncated, ANY_VALID),
    "latin1_text": (
        lambda f: (
            set_field(f, f.text_field, "Z\u00fcrich-\u00e9t\u00e9").decode().encode("latin-1")
        ),
        ANY_VALID,
    ),
    "utf16": (lambda f: f.text.encode("utf-16"), MUST_FAIL),
    "utf8_bom": (lambda f: b"\xef\xbb\xbf" + f.text.encode(), ANY_VALID),
    "binary_garbage": (lambda f: np.random.default_rng(0).bytes(4096), MUST_FAIL),
    "nul_bytes": (lambda f: set_field(f, f.text_field, "ab\x00cd"), ANY_VALID),
    "repeated_header_line": (lambda f: repeated_header(f, 1 + first_data_line(f)), MUST_FAIL),
    "duplicated_column_name": (duplicated_column, MUST_FAIL),
    "extra_field": (lambda f: ragged(f, True), MUST_FAIL),
    "missing_fields": (lambda f: ragged(f, False), ERROR_OR_COUNTED),
    "unbalanced_quote": (lambda f: set_field(f, f.text_field, '"abc'), ANY_VALID),
    "megabyte_field": (lambda f: set_field(f, f.text_field, "x" * 1_000_000), ANY_VALID),
    "crlf": (lambda f: f.text.replace("\n", "\r\n").encode(), ANY_VALID),
}
for _value, _label, _rule in (
    ("1e309", "overflow_float", ERROR_OR_COUNTED),
    ("99999999999999999999999", "overflow_int", ANY_VALID),
    ("1e300", "huge", ANY_VALID),
    ("-1e300", "huge_negative", ERROR_OR_COUNTED),
    ("nan", "nan", ERROR_OR_COUNTED),
    ("NaN", "NaN", ERROR_OR_COUNTED),
    ("inf", "inf", ERROR_OR_COUNTED),
    ("-inf", "minus_inf", ERROR_OR_COUNTED),
    ("0x1A", "hex", ERROR_OR_COUNTED),
    ("1,5", "decimal_comma", ERROR_OR_COUNTED),
):
    CASES[_label] = ((lambda v: lambda f: v)(_value), _rule)
NUMBER_CASES = {
    "overflow_float",
    "overflow_int",
    "huge",
    "huge_negative",
    "nan",
    "NaN",
    "inf",
    "minus_inf",
    "hex",
    "decimal_comma",
}
NOT_APPLICABLE = {
    # formats without a header line have no header to repeat or duplicate
    (name, case)
    for name in ("alibaba_pai2020", "gavel", "swf", "mooncake")
    for case in ("duplicated_column_name", "repeated_header_line")
}

KNOWN_DEFECTS: dict[tuple[str, str], str] = {}
"""(format, case) -> reason, for loader misbehaviour found here (xfail strict)."""


def case_ids() -> list:
    out = []
    for fmt in FORMATS_UNDER_TEST.values():
        for case in CASES:
            targets = [f"{case}:{col}" for col in fmt.numbers] if case in NUMBER_CASES else [case]
            for target in targets:
                if (fmt.name, case) in NOT_APPLICABLE:
                    continue
                reason = KNOWN_DEFECTS.get((fmt.name, target))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                out.append(pytest.param(fmt.name, target, marks=marks, id=f"{fmt.name}-{target}"))
    return out


def content(fmt: Format, target: str) -> tuple[bytes, str]:
    case, _, column = target.partition(":")
    make, rule = CASES[case]
    if column:
        value = make(fmt)
        if value.lower() == "nan" and column in fmt.optional:
            rule = ANY_VALID  # NaN reads as an empty cell, which this column may have
        return set_field(fmt, fmt.numbers[column], value), rule
    return make(fmt), rule


def data_lines(raw: bytes) -> int:
    return raw.count(b"\n") + 1


@pytest.mark.parametrize(("fmt_name", "target"), case_ids())
def test_hostile_trace_file(tmp_path, fmt_name, target):
    fmt = FORMATS_UNDER_TEST[fmt_name]
    raw, rule = content(fmt, target)
    base = load(fmt_name, fmt.write(tmp_path / "base", fmt.text.encode())[0], **fmt.options)
    path, broken = fmt.write(tmp_path / "broken", raw)
    try:
        with time_limit(30):
            trace = load(fmt_name, path, **fmt.options)
    except TimeLimitError:
        pytest.fail(f"{fmt_name} loader hangs on {target}")
    except ValueError as exc:  # traces.TraceError is a ValueError
        message = str(exc)
        assert broken.name in message or str(path) in message, (
            f"error does not name the file: {exc!r}"
        )
        assert "\n" not in message.strip(), f"multi-line error: {message!r}"
        return
    assert rule != MUST_FAIL, f"{fmt_name} loaded a broken file ({target}): {trace.report}"
    jobs = trace.jobs
    assert len(jobs) <= data_lines(raw)
    for col in ("submit_time", "duration"):
        values = jobs[col].to_numpy(dtype=np.float64)
        assert np.isfinite(values).all() and (values >= 0).all(), f"{col}: {values}"
    gpus = jobs["num_gpus"].to_numpy()
    assert (gpus >= 0).all(), f"num_gpus wrapped around: {gpus}"
    for col in jobs.columns:  # a float cast to int64 beyond its range becomes INT64_MIN
        if jobs[col].dtype.kind == "i":
            assert (jobs[col] != np.iinfo(np.int64).min).all(), f"{col} wrapped: {jobs[col]}"
    validate(jobs, "loaded")  # the loader's output passes the canonical checks again
    if rule == ERROR_OR_COUNTED:
        counted = {k: v for k, v in trace.report.items() if v > base.report.get(k, 0)}
        assert counted, (
            f"{fmt_name} accepted {target} silently: {len(jobs)} jobs, report {trace.report}"
        )


# ---------------------------------------------------------------------------------- failures
FAILURE_TRACE = "node,down_time,up_time\nnode-0,10,20\n1,30,\n"


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"", MUST_FAIL),
        (b"node,down_time,up_time\n", MUST_FAIL),
        (FAILURE_TRACE.encode("utf-16"), MUST_FAIL),
        (np.random.default_rng(1).bytes(2048), MUST_FAIL),
        (FAILURE_TRACE.replace("10,20", "1e309,20").encode(), MUST_FAIL),
        (FAILURE_TRACE.replace("10,20", "nan,20").encode(), MUST_FAIL),
        (FAILURE_TRACE.replace("10,20", "10,inf").encode(), MUST_FAIL),
        (FAILURE_TRACE.replace("10,20", "10,-1").encode(), MUST_FAIL),
        (FAILURE_TRACE.replace("node-0", "n\xf6de").encode("latin-1"), MUST_FAIL),
        (b"node,node,up_time\n0,1,2\n", MUST_FAIL),
        (FAILURE_TRACE.encode()[:-5], ANY_VALID),
        (FAILURE_TRACE.replace("\n", "\r\n").encode(), ANY_VALID),
        (b"\xef\xbb\xbf" + FAILURE_TRACE.encode(), ANY_VALID),
        (FAILURE_TRACE.replace("1,30,", "99999999999999999999,30,").encode(), ANY_VALID),
    ],
    ids=[
        "empty",
        "header_only",
        "utf16",
        "binary",
        "overflow",
        "nan",
        "inf",
        "negative",
        "latin1",
        "duplicated_column",
        "truncated",
        "crlf",
        "bom",
        "huge_node_index",
    ],
)
def test_hostile_failure_trace(tmp_path, raw, rule):
    from simulator.core.cluster import ClusterSpec

    path = tmp_path / "failures.csv"
    path.write_bytes(raw)
    try:
        with time_limit(30):
            injector = TraceFailures(path)
            nodes = injector.nodes(ClusterSpec.homogeneous(2, 1, "H100"))
    except ValueError as exc:
        assert str(path) in str(exc), repr(exc)
        return
    assert rule != MUST_FAIL, "a broken failure trace loaded"
    assert ((nodes >= 0) & (nodes < 2)).all()
