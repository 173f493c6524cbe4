"""Mooncake (FAST'25) request traces: loader, prefix reuse, request stream with block hashes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TRACES, simulate
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments import mooncake_reuse
from policies.priority import PriorityPolicy
from simulator.core.cluster import ClusterSpec
from simulator.models.serving import MooncakeRequests, PrefixRequestStream, RequestStream
from traces import formats, mooncake
from traces.canonical import TraceError
from traces.convert import main as convert_main
from traces.describe import main as describe_main

SHARED = TRACES / "mooncake-fast25"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _row(ts: float, n: int, out: int, ids: list[int]) -> str:
    return json.dumps({"timestamp": ts, "input_length": n, "output_length": out, "hash_ids": ids})


GOOD = [_row(0, 600, 5, [0, 1]), _row(1500, 512, 7, [0]), _row(2000, 1100, 1, [0, 1, 2])]


def _write(tmp_path: Path, lines: list[str], name: str = "t.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def naive_reuse(rows: list[tuple[int, list[int]]], block: int = 512) -> tuple[list, list, list]:
    """Obviously-correct reference: (prefix-hit blocks, prefix-hit tokens, seen blocks)."""
    seen: set[int] = set()
    hit_b, hit_t, any_b = [], [], []
    for n, ids in rows:
        k = 0
        while k < len(ids) and ids[k] in seen:
            k += 1
        hit_b.append(k)
        hit_t.append(min(k * block, n))
        any_b.append(sum(h in seen for h in ids))
        seen.update(ids)
    return hit_b, hit_t, any_b


# ---------------------------------------------------------------------------------- loader
def test_bundled_sample():
    trace = mooncake.load()
    jobs = trace.jobs
    assert len(jobs) == 300 and trace.report == {}
    assert (jobs["kind"] == "infer").all() and jobs["submit_time"].is_monotonic_increasing
    assert jobs["job_id"].iloc[0] == "mooncake_conversation_sample-0"
    assert jobs["prompt_tokens"].iloc[:3].tolist() == [6758, 7322, 7236]
    assert jobs["output_tokens"].iloc[:3].tolist() == [500, 490, 794]
    assert jobs["submit_time"].iloc[-1] == 102.0  # timestamp 102000 ms
    assert jobs["duration"].iloc[0] == pytest.approx(0.05 + 6758 * 1e-4 + 500 * 0.02)
    hashes, offsets = mooncake.hash_arrays(jobs["hash_ids"])
    assert hashes.dtype == np.int32 and offsets.dtype == np.int64
    assert hashes[: offsets[1]].tolist() == list(range(14))
    assert hashes[offsets[1] : offsets[2]].tolist() == [0, *range(14, 28)]
    assert (np.diff(offsets) == -(-jobs["prompt_tokens"].to_numpy() // 512)).all()


def test_sample_is_verbatim_prefix():
    path = SHARED / "conversation_trace.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    sample = mooncake.SAMPLE.read_bytes()
    assert path.read_bytes()[: len(sample)] == sample and sample.count(b"\n") == 300


def test_full_files_match_the_paper_table():
    # Mooncake FAST'25 paper, Table 2: requests 12,031 / 3,993; average input length 12,035 /
    # 15,325 tokens; average output length 343 / 149 tokens.
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    conv = mooncake.load(SHARED / "conversation_trace.jsonl").jobs
    syn = mooncake.load(SHARED / "synthetic_trace.jsonl").jobs
    assert (len(conv), len(syn)) == (12031, 3993)
    assert (
        round(conv["prompt_tokens"].mean()) == 12035 and round(syn["prompt_tokens"].mean()) == 15325
    )
    assert round(conv["output_tokens"].mean()) == 343 and round(syn["output_tokens"].mean()) == 149
    assert conv["submit_time"].max() == 3536.999 and syn["submit_time"].max() == 1022.025


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ('{"timestamp": 5, "output_length": 5, "hash_ids": [0]}', "column input_length: missing"),
        (
            '{"timestamp": 5, "input_length": null, "output_length": 5, "hash_ids": [0]}',
            "column input_length: missing",
        ),
        (_row(5, "many", 5, [0]), "column input_length: expected a whole number, got 'many'"),
        (_row(5, 12.5, 5, [0]), "column input_length: expected a whole number, got 12.5"),
        (_row(5, 100, True, [0]), "column output_length: expected a whole number, got True"),
        (_row("noon", 100, 5, [0]), "column timestamp: expected a number (ms), got 'noon'"),
        (_row(-1, 100, 5, [0]), "column timestamp: expected ms >= 0, got -1.0"),
        (_row(5, -100, 5, []), "column input_length: expected a token count >= 0, got -100"),
        (_row(5, 100, -5, [0]), "column output_length: expected a token count >= 0, got -5"),
        (_row(5, 1100, 5, [0, 1]), "column hash_ids: expected ceil(input_length / 512) = 3"),
        (_row(5, 100, 5, "abc"), "column hash_ids: expected a list of block hashes"),
        (_row(5, 600, 5, [0, None]), "column hash_ids: null block hash"),
        (_row(5, 600, 5, [0, 1.5]), "column hash_ids: expected whole-number hashes, got 1.5"),
        ("hello world", "not valid JSON"),
        ('{"timestamp": 5, "input_length": 6', "not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object, got list"),
    ],
)
def test_broken_rows_name_row_line_column(tmp_path, bad, expected):
    # a blank line before the bad request: data row 2 is file line 3
    p = _write(tmp_path, [GOOD[0], "", bad, GOOD[2]])
    with pytest.raises(TraceError) as err:
        mooncake.load(str(p))
    assert str(err.value).startswith(f"{p}: row 2 (line 3)"), str(err.value)
    assert expected in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "file is empty"),
        (b"\n\n  \n", "no requests in the file"),
        (bytes(range(256)) * 4, "not a UTF-8 text file"),
        (b"timestamp,input_length\n0,1\n", r"row 1 \(line 1\): not valid JSON"),
        ('{"timestamp": 0}\n'.encode("utf-16"), "not a UTF-8 text file"),
    ],
    ids=["empty", "blank", "garbage", "csv", "utf16"],
)
def test_broken_files(tmp_path, content, words):
    p = tmp_path / "t.jsonl"
    p.write_bytes(content)
    with pytest.raises(TraceError, match=words) as err:
        mooncake.load(str(p))
    assert str(err.value).startswith(str(p))


def test_missing_file_and_bad_block_size(tmp_path):
    with pytest.raises(TraceError, match="file not found"):
        mooncake.load(tmp_path / "none.jsonl")
    p = _write(tmp_path, GOOD)
    with pytest.raises(TraceError, match=r"row 1 \(line 1\), column hash_ids: expected ceil"):
        mooncake.load(p, block_tokens=256)
    with pytest.raises(ValueError, match="block_tokens"):
        mooncake.load(p, block_tokens=0)


def test_extra_fields_ignored_and_crlf(tmp_path):
    rows = [r[:-1] + ', "extra": "x"}' for r in GOOD]
    p = tmp_path / "t.jsonl"
    p.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    jobs = mooncake.load(p).jobs
    assert jobs["prompt_tokens"].tolist() == [600, 512, 1100] and "extra" not in jobs


def test_options(tmp_path):
    p = _write(tmp_path, GOOD)
    t = mooncake.load(p, start=1.0, time_scale=2.0)
    assert t.jobs["submit_time"].tolist() == [0.0, 0.25] and t.report == {"filtered_window": 1}
    h, o = mooncake.hash_arrays(t.jobs["hash_ids"])  # rows and their hashes stay together
    assert h.tolist() == [0, 0, 1, 2] and o.tolist() == [0, 1, 4]
    assert "hash_ids" not in mooncake.load(p, keep_hashes=False).jobs
    t = mooncake.load(max_jobs=10, sample_frac=0.5, seed=1)
    assert len(t.jobs) == 10 and t.report == {"sampled_out": 150, "truncated_max_jobs": 140}
    jobs = mooncake.load(p, num_gpus=2, gpu_type="H100", queue="chat").jobs
    assert set(jobs["queue"]) == {"chat"} and (jobs["num_gpus"] == 2).all()


def test_zero_duration_rule(tmp_path):
    p = _write(tmp_path, [GOOD[0], _row(10, 0, 0, [])])
    t = mooncake.load(p, base_duration=0.0, zero_duration="repair", min_duration=0.5)
    assert t.jobs["duration"].iloc[1] == 0.5 and t.report == {"repaired_zero_duration": 1}
    t = mooncake.load(p, base_duration=0.0)
    assert len(t.jobs) == 1 and t.report == {"dropped_zero_duration": 1}


def test_cache_convert_and_file_roundtrips(tmp_path):
    direct = mooncake.load(mooncake.SAMPLE)
    for _ in range(2):  # first call parses and stores, second reads the cache
        cached = mooncake.load(mooncake.SAMPLE, cache_dir=tmp_path / "cache")
        assert isinstance(cached.jobs["hash_ids"].dtype, pd.ArrowDtype)
        pd.testing.assert_frame_equal(cached.jobs, direct.jobs)
    want = mooncake.hash_arrays(direct.jobs["hash_ids"].iloc[:40])
    for out in ("m.parquet", "m.csv"):
        assert convert_main([str(mooncake.SAMPLE), str(tmp_path / out), "--max-jobs", "40"]) == 0
        back = formats.load("file", tmp_path / out)
        assert back.report == ({"truncated_max_jobs": 260} if out.endswith("parquet") else {})
        got = mooncake.hash_arrays(back.jobs["hash_ids"])
        assert all((a == b).all() for a, b in zip(got, want, strict=True)), out
        assert len(RequestStream.from_frame(back.jobs)) == 40


def test_detect_and_describe(capsys):
    assert formats.detect(mooncake.SAMPLE) == "mooncake"
    assert describe_main([str(mooncake.SAMPLE)]) == 0
    assert "prefix reuse  8.1 % of prompt tokens (8.0 % of blocks)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- reuse
def test_prefix_reuse_exact_small_case():
    # r0 [a b], r1 [a c] hits a, r2 [a b d] hits a b, r3 [x b] hits nothing in its prefix but
    # has b seen elsewhere (possible only when hashes do not name their prefix)
    hashes = np.array([1, 2, 1, 3, 1, 2, 4, 9, 2])
    offsets = np.array([0, 2, 4, 7, 9])
    r = mooncake.prefix_reuse(hashes, offsets, np.array([1000, 600, 1300, 1024]))
    assert r.blocks.tolist() == [2, 2, 3, 2]
    assert r.hit_blocks.tolist() == [0, 1, 2, 0]
    assert r.hit_tokens.tolist() == [0, 512, 1024, 0]
    assert r.seen_blocks.tolist() == [0, 1, 2, 1]
    assert r.token_share == pytest.approx(1536 / 3924) and r.block_share == pytest.approx(3 / 9)
    full = mooncake.prefix_reuse(np.array([5, 6, 5, 6]), np.array([0, 2, 4]), np.array([700, 700]))
    assert full.hit_tokens.tolist() == [0, 700]  # a whole prompt, partial last block included
    empty = mooncake.prefix_reuse(np.zeros(0, int), np.array([0, 0, 0]), np.array([0, 0]))
    assert empty.hit_blocks.tolist() == [0, 0] and empty.token_share == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_prefix_reuse_matches_naive_on_random_requests(seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(200):
        k = int(rng.integers(0, 6))
        ids = rng.integers(0, 12, k).tolist()
        rows.append((k * 512 - int(rng.integers(0, 512)) if k else 0, ids))
    counts = [len(ids) for _, ids in rows]
    hashes = np.array([h for _, ids in rows for h in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    r = mooncake.prefix_reuse(hashes, offsets, np.array([n for n, _ in rows]))
    hit_b, hit_t, any_b = naive_reuse(rows)
    assert r.hit_blocks.tolist() == hit_b and r.hit_tokens.tolist() == hit_t
    assert r.seen_blocks.tolist() == any_b


def test_reuse_of_the_full_traces_next_to_the_paper():
    # The paper's Table 2 "Cache Ratio" is 40 % (conversation) and 66 % (synthetic); with one
    # unbounded cache we measure 37.4 % and 65.1 % of input tokens (exact counts below, checked
    # against the naive loop), i.e. within 3 and 1 percentage points.
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    expected = {
        "conversation_trace": (54_098_411, 0.40, 0.03),
        "synthetic_trace": (39_852_661, 0.66, 0.01),
    }
    for stem, (tokens, paper, tol) in expected.items():
        path = SHARED / f"{stem}.jsonl"
        rows = [(r["input_length"], r["hash_ids"]) for r in map(json.loads, path.open())]
        naive = sum(naive_reuse(rows)[1])
        stream = MooncakeRequests(path).load()
        reuse = stream.prefix_reuse()
        assert int(reuse.hit_tokens.sum()) == naive == tokens, stem
        assert (reuse.seen_blocks == reuse.hit_blocks).all()  # hashes name their prefix
        assert abs(reuse.token_share - paper) < tol, (stem, reuse.token_share)


def test_experiment_script(tmp_path, capsys):
    assert mooncake_reuse.main([str(mooncake.SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert (
        "| mooncake_conversation_sample | 300 | 4,269,971 | 345,966 | 8.1 % | 8.0 % | 0 | n/a |"
        in out
    )
    assert mooncake_reuse.main([str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.jsonl: file not found" in err
    bad = _write(tmp_path, ["nope"])
    assert mooncake_reuse.main([str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: row 1 (line 1): not valid JSON")
    with pytest.raises(SystemExit) as stop:
        mooncake_reuse.main(["--help"])
    assert stop.value.code == 0 and "Table 2" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- streams
def test_prefix_stream_sorts_hashes_with_requests():
    s = PrefixRequestStream(
        np.array([2.0, 1.0, 1.0]),
        np.array([600, 100, 1200]),
        np.array([3, 1, 2]),
        block_hashes=np.array([7, 8, 9, 10, 11, 12]),
        block_offsets=np.array([0, 2, 3, 6]),
    )
    assert s.arrival.tolist() == [1.0, 1.0, 2.0] and s.prompt_tokens.tolist() == [100, 1200, 600]
    assert [s.blocks(i).tolist() for i in range(3)] == [[9], [10, 11, 12], [7, 8]]
    assert s.num_blocks.tolist() == [1, 3, 2] and s.block_offsets.tolist() == [0, 1, 4, 6]


@pytest.mark.parametrize(
    ("hashes", "offsets", "words"),
    [
        ([1, 2], [0, 2], "one entry per request plus one"),
        ([1, 2], [1, 1, 2], "starting at 0"),
        ([1, 2], [0, 2, 1], "must not decrease"),
        ([1, 2], [0, 1, 3], "end at len"),
        ([1.5, 2.0], [0, 1, 2], "integer array"),
    ],
)
def test_prefix_stream_rejects_bad_offsets(hashes, offsets, words):
    with pytest.raises(ValueError, match=words):
        PrefixRequestStream(
            [0.0, 1.0], [1, 1], [1, 1], block_hashes=np.array(hashes), block_offsets=offsets
        )


def test_mooncake_requests_and_from_frame():
    s = MooncakeRequests(max_requests=50, offset_s=10.0, time_scale=2.0).load()
    trace = mooncake.load(max_jobs=50, time_scale=2.0)
    assert isinstance(s, PrefixRequestStream) and len(s) == 50 and s.block_tokens == 512
    assert s.report == {"truncated_max_jobs": 250}
    np.testing.assert_allclose(s.arrival, trace.jobs["submit_time"] + 10.0)
    h, o = mooncake.hash_arrays(trace.jobs["hash_ids"])
    assert (s.block_hashes == h).all() and (s.block_offsets == o).all()
    via_frame = RequestStream.from_frame(trace.jobs)  # serving=from_trace keeps the hashes
    assert isinstance(via_frame, PrefixRequestStream) and (via_frame.block_hashes == h).all()
    plain = RequestStream.from_frame(trace.jobs.drop(columns="hash_ids"))
    assert type(plain) is RequestStream
    r = s.prefix_reuse()
    ref = mooncake.prefix_reuse(h, o, trace.jobs["prompt_tokens"].to_numpy())
    assert (r.hit_tokens == ref.hit_tokens).all()


def test_mooncake_service_config_serves_the_sample():
    cfg = OmegaConf.load(CONFIGS / "serving" / "mooncake_conv.yaml")
    cfg.requests.max_requests = 60
    svc = instantiate(cfg, _convert_="all")
    cluster = ClusterSpec.homogeneous(4, 8, "H100")
    jobs = svc.prepare(pd.DataFrame(), cluster)
    sim = simulate(
        jobs,
        cluster,
        PriorityPolicy(non_preemptible_threshold=100),
        processes=svc.processes(),
        check_invariants=False,
    )
    s = svc.summary(sim)["serving"]["chat"]
    assert s["requests"] == 60 and s["finished"] == 60 and s["rejected"] == 0


def test_trace_config_builds():
    cfg = OmegaConf.load(CONFIGS / "trace" / "mooncake.yaml")
    trace = instantiate(cfg, _convert_="all")
    assert len(trace.jobs) == 300 and math.isclose(trace.jobs["submit_time"].max(), 102.0)
