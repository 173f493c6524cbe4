"""Result tables a pandas user can rely on (issue 17): one schema whatever the trace.

Runs of several traces and extensions (the bundled Philly sample, a synthetic trace, Alibaba
openb with CPU-only pods, an inference service, node failures, a network fabric) are written
into one sweep-like tree; their files must have the pinned columns, order and types, and the
loaders must concatenate them cleanly.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hydra import compose, initialize_config_dir

from simulator.app import CONFIG_DIR, run_config
from simulator.output import schema
from simulator.output.results import (
    load_breakdowns,
    load_jobs,
    load_run,
    load_runs,
    load_tables,
    verify_run,
    write_run,
)

TEXT = pa.string()
CAT = pa.dictionary(pa.int32(), pa.string())
F64, I64 = pa.float64(), pa.int64()

JOBS = [
    ("job_id", TEXT),
    ("submit_time", F64),
    ("duration", F64),
    ("num_gpus", I64),
    ("gpu_milli", I64),
    ("gpu_type", CAT),
    ("num_cpus", F64),
    ("memory_gb", F64),
    ("kind", CAT),
    ("queue", CAT),
    ("priority", I64),
    ("pods", I64),
    ("gpus_per_pod", I64),
    ("start_time", F64),
    ("end_time", F64),
    ("wait_time", F64),
    ("jct", F64),
    ("status", CAT),
    ("nodes", pa.list_(pa.int32())),
    ("num_nodes", I64),
    ("gpu_seconds", F64),
    ("preemptions", I64),
    ("migrations", I64),
    ("restarts", I64),
    ("slowdown", F64),
    ("lost_seconds", F64),
    ("pending_reason", TEXT),
]
"""The pinned first columns of every jobs.parquet (schema version 2)."""

EXTENSION_COLUMNS = {
    "fabric": [
        ("fabric_tier", CAT),
        ("fabric_ideal_tier", CAT),
        ("bytes_nvlink", F64),
        ("bytes_leaf", F64),
        ("bytes_spine", F64),
        ("comm_fraction", F64),
        ("allreduce_bytes", F64),
    ],
    "serving": [("service", CAT), ("served_requests", I64)],
    "openb": [("qos", TEXT), ("pod_phase", TEXT)],  # the trace's own extra columns
}

TABLES = {
    "timeline": [
        ("time", F64),
        ("allocated_gpus", F64),
        ("queue_length", I64),
        ("running_jobs", I64),
    ],
    "queues": [("time", F64), ("queue", CAT), ("allocated_gpus", F64), ("queued_jobs", I64)],
    "requests": [
        ("service", CAT),
        ("request", I64),
        ("arrival_time", F64),
        ("prompt_tokens", I64),
        ("output_tokens", I64),
        ("replica", I64),
        ("queueing_delay", F64),
        ("ttft", F64),
        ("tpot", F64),
        ("e2e_latency", F64),
        ("first_token_time", F64),
        ("end_time", F64),
        ("status", CAT),
        ("restarts", I64),
        ("slo_met", pa.bool_()),
    ],
    "replicas": [
        ("time", F64),
        ("service", CAT),
        ("pending", I64),
        ("loading", I64),
        ("ready", I64),
        ("draining", I64),
        ("target", I64),
    ],
    "failures": [
        ("time", F64),
        ("node", I64),
        ("node_name", TEXT),
        ("event", CAT),
        ("jobs_killed", I64),
        ("lost_gpu_seconds", F64),
    ],
    "links": [
        ("time", F64),
        ("tier", CAT),
        ("link", I64),
        ("flows", I64),
        ("utilization", F64),
        ("peak_utilization", F64),
    ],
}

CASES = {
    "default": ["+policy=fifo", "trace.max_jobs=200"],
    "synthetic": ["+policy=fifo", "trace=synthetic", "trace.num_jobs=150"],
    "openb": ["+policy=fifo", "trace=alibaba_openb", "trace.max_jobs=300"],
    "serving": [
        "+policy=fifo",
        "trace.max_jobs=60",
        "serving=poisson_8b",
        "serving.requests.num_requests=300",
        "cluster.gpu_type=H100",
    ],
    "failures": ["+policy=fifo", "trace.max_jobs=150", "failures=exponential"],
    "fabric": ["+policy=fifo", "trace.max_jobs=60", "fabric=leaf_spine"],
}
"""Runs of the sweep-like tree: name -> overrides."""

KEYS = [
    "run_dir",
    "policy",
    "trace.max_jobs",
    "seed",
    "fabric",
    "failures",
    "trace",
    "serving",
    "serving.requests.num_requests",
    "cluster.gpu_type",
    "trace.num_jobs",
]
"""Run keys of the concatenated tables: run_dir, overrides (in order of first appearance over
the runs in natural order), policy and seed."""

RUN_TABLES = {
    "serving": {"requests", "replicas"},
    "failures": {"failures"},
    "fabric": {"links"},
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for name, overrides in CASES.items():
            extra = ["failures.mtbf_hours=2"] if name == "failures" else []
            cfg = compose("config", overrides=[*overrides, *extra, "sim.progress=false"])
            record = {".hydra/overrides.yaml": yaml.safe_dump(overrides)}
            run_config(cfg, root / name, record=record)
    return root


def arrow_columns(path) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in pq.read_schema(path)]


@pytest.mark.parametrize("name", list(CASES))
def test_jobs_parquet_has_the_pinned_schema_whatever_the_trace(sweep, name):
    path = sweep / name / "jobs.parquet"
    want = JOBS + EXTENSION_COLUMNS.get(name, [])
    assert arrow_columns(path) == want
    meta = pq.read_schema(path).metadata
    assert meta == {b"gpusim.schema_version": b"2"}
    jobs = pd.read_parquet(path)
    assert list(jobs.columns) == [c for c, _ in want]
    for col in ("gpu_type", "kind", "queue", "status"):
        assert isinstance(jobs[col].dtype, pd.CategoricalDtype), col
    assert list(jobs["status"].cat.categories) == list(schema.STATUS_CATEGORIES)
    assert list(jobs["kind"].cat.categories) == ["train", "infer"]
    assert list(jobs["queue"].cat.categories) == sorted(jobs["queue"].unique())
    assert pd.api.types.is_string_dtype(jobs["job_id"])
    assert jobs["job_id"].map(type).eq(str).all()
    assert jobs["job_id"].is_unique
    for col, t in want:
        if t == I64:
            assert jobs[col].dtype == np.int64, col
        elif t == F64:
            assert jobs[col].dtype == np.float64, col
    assert isinstance(jobs["nodes"].iloc[0], np.ndarray)


def test_canonical_defaults_are_filled_as_the_engine_read_them(sweep):
    syn = pd.read_parquet(sweep / "synthetic" / "jobs.parquet")  # no optional columns
    assert (syn["job_id"] == [str(i) for i in range(len(syn))]).all()  # ints, as text
    assert (syn["gpu_milli"] == np.where(syn["num_gpus"] > 0, 1000, 0)).all()
    assert (syn["queue"] == "default").all() and (syn["kind"] == "train").all()
    assert (syn["gpu_type"] == "").all() and (syn["priority"] == 0).all()
    assert (syn[["num_cpus", "memory_gb"]] == 0.0).all().all()
    assert (syn[["pods", "gpus_per_pod"]] == 0).all().all()
    serving = pd.read_parquet(sweep / "serving" / "jobs.parquet")
    replicas = serving[serving["service"] == "llm"]
    assert len(replicas) > 0 and (replicas["kind"] == "infer").all()
    assert (replicas["gpu_milli"] == 1000).all() and (replicas["pods"] == 0).all()
    assert set(serving["kind"]) == {"train", "infer"}
    openb = pd.read_parquet(sweep / "openb" / "jobs.parquet")
    cpu = openb[openb["num_gpus"] == 0]
    assert len(cpu) > 0 and (cpu["gpu_milli"] == 0).all() and (cpu["num_cpus"] > 0).all()


@pytest.mark.parametrize("table", list(TABLES))
def test_other_tables_have_pinned_types(sweep, table):
    runs = [n for n in CASES if table in RUN_TABLES.get(n, set()) | {"timeline", "queues"}]
    assert runs
    for name in runs:
        path = sweep / name / f"{table}.parquet"
        assert arrow_columns(path) == TABLES[table], (name, table)
        assert pq.read_schema(path).metadata == {b"gpusim.schema_version": b"2"}
        frame = pd.read_parquet(path)
        for col, t in TABLES[table]:
            if t == CAT:
                assert isinstance(frame[col].dtype, pd.CategoricalDtype), (name, col)
    failures = pd.read_parquet(sweep / "failures" / "failures.parquet")
    assert len(failures) > 0 and list(failures["event"].cat.categories) == ["down", "up"]
    requests = pd.read_parquet(sweep / "serving" / "requests.parquet")
    assert list(requests["status"].cat.categories) == ["unfinished", "finished", "rejected"]


def test_summary_carries_the_schema_version_and_the_manifest_holds(sweep):
    for name in CASES:
        run = sweep / name
        summary = json.loads((run / "summary.json").read_text())
        assert next(iter(summary)) == "schema_version" and summary["schema_version"] == 2
        verify_run(run)
        assert load_run(run).summary["schema_version"] == 2
    runs = load_runs(sweep)
    assert (runs["schema_version"] == 2).all() and runs["schema_version"].dtype == np.int64


def test_load_jobs_concatenates_every_trace_cleanly_and_round_trips(sweep, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mixed types" warning either
        jobs = load_jobs(sweep)
    sizes = {n: len(pd.read_parquet(sweep / n / "jobs.parquet")) for n in CASES}
    assert len(jobs) == sum(sizes.values())
    fixed = [c for c, _ in JOBS]
    assert list(jobs.columns[: len(KEYS)]) == KEYS
    assert list(jobs.columns[len(KEYS) : len(KEYS) + len(fixed)]) == fixed
    objects = [c for c in jobs.columns if jobs[c].dtype == object]
    assert objects == ["nodes"]  # arrays of node ids; nothing else of mixed types
    for col in ("policy", "trace", "fabric", "gpu_type", "kind", "queue", "status", "service"):
        assert isinstance(jobs[col].dtype, pd.CategoricalDtype), col
    queues = set().union(
        *(set(pd.read_parquet(sweep / n / "jobs.parquet")["queue"]) for n in CASES)
    )
    assert list(jobs["queue"].cat.categories) == sorted(queues)  # the union, sorted
    assert list(jobs["status"].cat.categories) == list(schema.STATUS_CATEGORIES)
    assert pd.api.types.is_string_dtype(jobs["job_id"])
    assert jobs["job_id"].map(type).eq(str).all()
    # columns only some runs have: nullable integers, NaN floats, missing text
    assert jobs["served_requests"].dtype == "Int64" and jobs["trace.max_jobs"].dtype == "Int64"
    serving = jobs["run_dir"].str.endswith("serving")
    assert jobs.loc[serving, "served_requests"].notna().all()
    assert jobs.loc[~serving, "served_requests"].isna().all()
    assert jobs["comm_fraction"].dtype == np.float64 and jobs["seed"].dtype == np.int64
    path = tmp_path / "all.parquet"
    jobs.to_parquet(path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), jobs)


def test_other_tables_concatenate_with_one_dtype_per_column(sweep):
    for table, columns in TABLES.items():
        frame = load_tables(sweep, table)
        assert len(frame) or table == "links", table  # no job of the fabric run crosses leaves
        for col, t in columns:
            if t == CAT:
                assert isinstance(frame[col].dtype, pd.CategoricalDtype), (table, col)
            elif t == I64:
                assert frame[col].dtype == np.int64, (table, col)
        assert not [c for c in frame.columns if frame[c].dtype == object], table


def test_load_runs_is_narrow_and_breakdowns_have_their_loader(sweep):
    runs = load_runs(sweep)
    assert len(runs) == len(CASES) and (runs["run_status"] == "ok").all()
    results = [c for c in runs.columns if c not in runs.attrs["overrides"]]
    assert not [c for c in results if c.split(".")[0] in ("queues", "kinds", "serving")]
    assert runs["jobs_total"].dtype == np.int64
    # only the run with failure injection has a failure count (named like its override)
    assert runs["summary.failures"].dtype == "Int64"
    assert runs["summary.failures"].notna().sum() == 1
    # run-level nested numbers stay, flattened (only the openb loader drops pending pods)
    assert runs["trace_report.dropped_pending"].dtype == "Int64"
    assert runs["partial"].dtype == bool and runs["avg_jct"].dtype == np.float64
    wide = load_runs(sweep, breakdowns=True)
    assert "queues.default.avg_jct" in wide.columns and "kinds.train.jobs" in wide.columns

    queues = load_breakdowns(sweep, by="queue")
    assert list(queues.columns[: len(KEYS) + 3]) == [*KEYS, "queue", "jobs", "finished"]
    assert isinstance(queues["queue"].dtype, pd.CategoricalDtype)
    assert queues["jobs"].dtype == np.int64 and queues["avg_jct"].dtype == np.float64
    for name in CASES:
        summary = json.loads((sweep / name / "summary.json").read_text())
        mine = queues[queues["run_dir"] == str(sweep / name)]
        assert list(mine["queue"]) == list(summary["queues"])
        assert mine["jobs"].sum() == summary["jobs_total"]
    kinds = load_breakdowns(sweep, by="kind")
    assert set(kinds["kind"]) == {"train", "infer"}
    services = load_breakdowns(sweep, by="service")
    assert list(services["service"]) == ["llm"] and services["requests"].tolist() == [300]
    assert services["p99_ttft"].dtype == np.float64
    with pytest.raises(ValueError, match="by must be one of"):
        load_breakdowns(sweep, by="tenant")
    # several directories at once
    two = load_runs([sweep / "openb", sweep / "default"])
    assert [d.rsplit("/", 1)[-1] for d in two["run_dir"]] == ["openb", "default"]
    assert len(load_breakdowns([sweep / "serving"], by="service")) == 1
    with pytest.raises(FileNotFoundError, match="nope: no such directory"):
        load_jobs([sweep, sweep / "nope"])


def test_a_file_trace_keeps_its_own_columns_after_the_fixed_ones(tmp_path):
    trace = pd.DataFrame(
        {
            "team": ["x", "y", "z"],
            "job_id": [7, 8, 9],
            "submit_time": [0.0, 1.0, 2.0],
            "duration": [10.0, 20.0, 5.0],
            "num_gpus": [1, 2, 0],
            "status": ["done", "done", "killed"],  # named like a result column
            "queue": ["a", None, "b"],
        }
    )
    trace.to_parquet(tmp_path / "trace.parquet")
    overrides = ["+policy=fifo", "trace=file", f"trace.path={tmp_path / 'trace.parquet'}"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "sim.progress=false"])
        summary = run_config(cfg, tmp_path / "run")
    path = tmp_path / "run" / "jobs.parquet"
    assert arrow_columns(path) == [*JOBS, ("team", TEXT), ("trace_status", TEXT)]
    jobs = pd.read_parquet(path)
    assert jobs["job_id"].tolist() == ["7", "8", "9"]
    assert jobs["trace_status"].tolist() == ["done", "done", "killed"]
    assert jobs["status"].tolist() == ["finished"] * 3
    assert jobs["queue"].tolist() == ["a", "default", "b"]  # an empty cell: the default
    assert summary["trace_report"] == {"renamed_status_to_trace_status": 3}


# ----------------------------------------------------------------------- unit level
def test_conform_jobs_orders_fixed_then_extension_then_trace_columns():
    frame = pd.DataFrame(
        {
            "job_id": [3, 1],
            "submit_time": [0.0, 1.0],
            "duration": [5.0, 5.0],
            "num_gpus": [1, 0],
            "gpu_milli": [np.nan, np.nan],
            "team": ["x", "y"],
            "trace_status": ["ok", "bad"],  # a trace column renamed by issue 18's rule
            "empty": [None, None],
        }
    )
    for col in schema.OUTPUT_COLUMNS:
        frame[col] = [0, 0] if col != "status" else ["finished", "queued"]
    frame["service"] = ["", "s"]
    out = schema.conform_jobs(frame, added=["service"])
    fixed = list(schema.JOB_COLUMNS)
    assert list(out.columns) == [*fixed, "service", "team", "trace_status", "empty"]
    assert out["job_id"].tolist() == ["3", "1"] and out["gpu_milli"].tolist() == [1000, 0]
    assert out["team"].tolist() == ["x", "y"] and out["trace_status"].tolist() == ["ok", "bad"]
    assert out["empty"].dtype == np.float64 and out["empty"].isna().all()
    assert list(out["service"].cat.categories) == ["", "s"]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['jct'"):
        schema.conform_jobs(frame.drop(columns=["jct"]))


def test_concat_unions_categories_and_makes_gaps_nullable():
    a = pd.DataFrame({"q": pd.Categorical(["b", "a"], categories=["a", "b"]), "n": [1, 2]})
    b = pd.DataFrame({"q": pd.Categorical(["c"]), "f": [None]})
    c = pd.DataFrame({"q": ["a"], "n": [3], "f": [0.5]})
    out = schema.concat_frames([a, b, c])
    assert list(out["q"].cat.categories) == ["a", "b", "c"]
    assert out["q"].tolist() == ["b", "a", "c", "a"]
    assert out["n"].dtype == "Int64" and out["n"].tolist() == [1, 2, pd.NA, 3]
    assert out["f"].dtype == np.float64
    with pytest.warns(UserWarning, match="column 'x' holds int and text"):
        mixed = schema.concat_frames([pd.DataFrame({"x": [1]}), pd.DataFrame({"x": ["a"]})])
    assert mixed["x"].tolist() == ["1", "a"]


def test_all_null_metrics_are_nan_not_none(tmp_path):
    jobs = pd.DataFrame({"job_id": ["a"], "jct": [1.0]})
    timeline = pd.DataFrame({"time": [0.0]})
    for k in range(2):
        summary = {"policy": "p", "avg_jct": None, "jobs_total": 1, "queues": {"q": {"jobs": 1}}}
        write_run(tmp_path / str(k), jobs, timeline, summary)
    runs = load_runs(tmp_path)
    assert runs["avg_jct"].dtype == np.float64 and runs["avg_jct"].isna().all()
    assert runs["jobs_total"].dtype == np.int64
    assert "queues.q.jobs" not in runs.columns
    assert load_runs(tmp_path, breakdowns=True)["queues.q.jobs"].tolist() == [1, 1]


def test_arrow_types_do_not_depend_on_the_number_of_categories():
    many = pd.DataFrame({"q": pd.Categorical([f"q{i}" for i in range(300)])})
    few = pd.DataFrame({"q": pd.Categorical(["a"]), "t": ["x"]})
    assert schema.arrow_table(many).schema.field("q").type == CAT
    assert schema.arrow_table(few).schema.field("t").type == TEXT
    empty = schema.conform_table("queues", pd.DataFrame({"queue": np.array([], dtype=object)}))
    assert schema.arrow_table(empty).schema.field("queue").type == CAT
