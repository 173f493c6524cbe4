"""Throughput-table loader (real and broken files) and the default speedup from the GPU table."""

from __future__ import annotations

import json
import math

import pytest
from conftest import TRACES

from simulator.core.gpus import gpu_spec
from simulator.models.throughput import ThroughputTable, default_speedup, load_throughputs
from traces.errors import TraceError

GAVEL = TRACES / "gavel-philly-derived" / "simulation_throughputs.json"
TACC = TRACES / "shockwave-tacc32" / "tacc_throughputs.json"
WORKERS = (
    "k80",
    "p100",
    "v100",
    "v100_unconsolidated",
    "p100_unconsolidated",
    "k80_unconsolidated",
)


def _real(path):
    if not path.is_file():
        pytest.skip(f"missing {path}")
    return load_throughputs(path)


@pytest.mark.parametrize("path", [GAVEL, TACC], ids=["gavel", "tacc"])
def test_real_file_shape(path):
    t = _real(path)
    assert t.worker_types == WORKERS  # file order
    assert len(t.job_types) == 26
    assert "ResNet-18 (batch size 32)" in t.job_types and "A3C" in t.job_types
    # 83 keys per worker type, 77 for k80_unconsolidated; 10,338 co-located pair entries skipped
    assert sum(len(t.scale_factors(j, "v100")) for j in t.job_types) == 83
    assert sum(len(t.scale_factors(j, "k80_unconsolidated")) for j in t.job_types) == 77
    assert t.skipped_pairs == 10338
    assert t.scale_factors("ResNet-50 (batch size 64)", "v100") == (1, 2, 4, 8)
    assert t.scale_factors("A3C", "v100") == (1,)
    assert t.source == str(path)


def test_gavel_spot_values():
    t = _real(GAVEL)
    assert t.throughput("ResNet-18 (batch size 16)", "v100", 1) == 32.353384328946916
    assert t.throughput("ResNet-50 (batch size 64)", "v100", 1) == 4.394774823323071
    assert t.throughput("ResNet-50 (batch size 64)", "v100", 4) == 9.451949566394442
    assert t.throughput("ResNet-50 (batch size 64)", "p100", 4) == 10.36465731519379
    assert t.throughput("ResNet-50 (batch size 64)", "k80", 1) == 0.6190282202246573
    assert t.throughput("Transformer (batch size 128)", "p100") == 3.0735350560514787
    assert t.throughput("A3C", "v100") == 7.175767179667988
    # the three zeros in Gavel's table are kept (k80, ResNet-50 batch 128, 2/4/8 GPUs)
    assert t.throughput("ResNet-50 (batch size 128)", "k80", 2) == 0.0


def test_tacc_spot_values():
    t = _real(TACC)
    assert t.throughput("ResNet-18 (batch size 32)", "v100", 1) == 42.97497938
    assert t.throughput("LM (batch size 20)", "v100", 2) == 90.36947305
    assert t.throughput("ResNet-50 (batch size 64)", "v100", 4) == 11.63777067
    assert t.throughput("Transformer (batch size 128)", "v100") == 1.15052174
    assert t.throughput("A3C", "k80") == 3.5357143756878346
    # SOURCE.md pitfall: v100 is 0.0 for A3C, CycleGAN, Transformer (batch size 256)
    for job in ("A3C", "CycleGAN", "Transformer (batch size 256)"):
        assert t.throughput(job, "v100") == 0.0


def test_real_lookup_errors_name_file_and_key():
    t = _real(TACC)
    with pytest.raises(TraceError, match=r"tacc_throughputs\.json: no worker type 'h100' \(has"):
        t.throughput("A3C", "h100")
    with pytest.raises(TraceError, match=r"\['v100'\]: no entry for \('A3C', 2\) \(scale factors"):
        t.throughput("A3C", "v100", 2)
    with pytest.raises(TraceError, match="no such job type"):
        t.throughput("GPT-5", "v100")
    assert not t.has("A3C", "v100", 2) and t.has("A3C", "v100", 1)
    assert t.throughput("A3C", "k80", 1.0) == t.throughput("A3C", "k80")
    with pytest.raises(ValueError, match="scale_factor must be an integer"):
        t.throughput("ResNet-50 (batch size 64)", "v100", 2.5)


def test_matrix_rows_and_columns():
    data = {
        "a": {"('J', 1)": {"null": 1.0}, "('J', 2)": {"null": 1.5}},
        "b": {"('J', 1)": {"null": 3.0}, "('J', 2)": {"null": 5.0}},
    }
    t = ThroughputTable.from_mapping(data)
    m = t.matrix([("J", 2), ("J", 1)], ["b", "a"])
    assert m.tolist() == [[5.0, 1.5], [3.0, 1.0]]


def test_table_is_immutable():
    t = ThroughputTable.from_mapping({"a": {"('J', 1)": {"null": 1.0}}})
    with pytest.raises(AttributeError):
        t.source = "x"
    with pytest.raises(TypeError):
        t._rates[("a", "J", 1)] = 2.0


def _write(tmp_path, text, name="tput.json"):
    p = tmp_path / name
    p.write_text(text if isinstance(text, str) else json.dumps(text))
    return p


GOOD_ENTRY = {"null": 2.0, "('J', 1)": [1.0, 1.0]}


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("{not json", r"not valid JSON"),
        ("[]", r"expected a non-empty JSON object of worker types"),
        ({"v100": []}, r"\['v100'\]: expected a non-empty object of jobs"),
        (
            {"v100": {"('J', 1)": {"null": -1.0}}},
            r"\['v100'\]\[\"\('J', 1\)\"\]\[\"null\"\]: "
            r"expected a finite throughput >= 0 steps/s, got -1.0",
        ),
        ('{"v100": {"(\'J\', 1)": {"null": NaN}}}', r"\[\"null\"\]: .* got nan"),
        ('{"v100": {"(\'J\', 1)": {"null": Infinity}}}', r"\[\"null\"\]: .* got inf"),
        ({"v100": {"('J', 1)": {"null": "3"}}}, r"got '3'"),
        ({"v100": {"('J', 1)": {"null": True}}}, r"got True"),
        ({"v100": {"('J', 1)": {"('K', 1)": [1, 2]}}}, r"expected an object with a \"null\""),
        ({"v100": {"('J', 1)": 3.0}}, r"expected an object with a \"null\""),
        ({"v100": {"J": GOOD_ENTRY}}, r"\['v100'\]\['J'\]: expected a key"),
        ({"v100": {"('J', 0)": GOOD_ENTRY}}, r"\['v100'\]\[\"\('J', 0\)\"\]: expected a key"),
        ({"v100": {"('J', 1.5)": GOOD_ENTRY}}, r"expected a key"),
        ({"v100": {"(1, 1)": GOOD_ENTRY}}, r"expected a key"),
        (
            {"v100": {"('J', 1)": GOOD_ENTRY, '("J", 1)': GOOD_ENTRY}},
            r"duplicate of another key for \('J', 1\)",
        ),
        (
            '{"v100": {"(\'J\', 1)": {"null": 1}}, "v100": {"(\'J\', 1)": {"null": 2}}}',
            r"duplicate key 'v100'",
        ),
    ],
)
def test_broken_files(tmp_path, content, pattern):
    p = _write(tmp_path, content)
    with pytest.raises(TraceError, match=pattern) as err:
        load_throughputs(p)
    assert str(err.value).startswith(f"{p}: ")


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(TraceError, match=r"nope\.json: file not found"):
        load_throughputs(tmp_path / "nope.json")
    with pytest.raises(TraceError, match=r"empty\.json: file is empty"):
        load_throughputs(_write(tmp_path, "", "empty.json"))


def test_zero_kept_and_pairs_counted(tmp_path):
    p = _write(
        tmp_path, {"v100": {"('J', 1)": {"null": 0, "('J', 1)": [0, 0]}, "('J', 4)": GOOD_ENTRY}}
    )
    t = load_throughputs(p)
    assert t.throughput("J", "v100") == 0.0 and t.throughput("J", "v100", 4) == 2.0
    assert t.skipped_pairs == 2 and t.job_types == ("J",)


def test_default_speedup_endpoints_and_mix():
    v, p = gpu_spec("V100"), gpu_spec("P100")
    assert default_speedup("V100", "P100", 1.0) == pytest.approx(v.peak_tflops / p.peak_tflops)
    assert default_speedup("V100", "P100", 0.0) == pytest.approx(v.hbm_gbps / p.hbm_gbps)
    assert default_speedup("H100", "H100", 0.3) == pytest.approx(1.0)
    # time-weighted mix, by hand: 125/21.2 and 900/732
    half = 1.0 / (0.5 * 21.2 / 125 + 0.5 * 732 / 900)
    assert default_speedup("V100", "P100", 0.5) == pytest.approx(half)
    # not reciprocal: the compute fraction is the share of the step time on the *reference* GPU
    slower = 1.0 / (0.5 * 125 / 21.2 + 0.5 * 900 / 732)
    assert default_speedup("P100", "V100", 0.5) == pytest.approx(slower)
    assert default_speedup("v100-16gb", "P100", 0.5) == pytest.approx(half)  # alias
    # monotone in the compute fraction when FLOP/s gain > bandwidth gain
    xs = [default_speedup("H100", "A100-80GB", c / 10) for c in range(11)]
    assert xs == sorted(xs)


def test_default_speedup_errors():
    with pytest.raises(ValueError, match=r"compute_fraction must be in \[0, 1\]"):
        default_speedup("V100", "P100", 1.5)
    with pytest.raises(ValueError, match="compute_fraction"):
        default_speedup("V100", "P100", math.nan)
    with pytest.raises(ValueError, match="G2 has no published"):
        default_speedup("G2", "V100", 0.5)
    with pytest.raises(KeyError, match="unknown GPU model 'K80'"):
        default_speedup("K80", "V100", 0.5)
