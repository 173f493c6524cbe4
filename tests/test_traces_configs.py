"""Every trace YAML lists exactly its loader's options with the loader's defaults, and builds."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from traces.canonical import Trace

CONFIGS = Path(__file__).parents[1] / "configs"
TRACE_YAMLS = sorted((CONFIGS / "trace").glob("*.yaml"))
COMMON = [
    "start",
    "end",
    "rebase",
    "sample_frac",
    "max_jobs",
    "time_scale",
    "queues",
    "min_gpus",
    "max_gpus",
    "seed",
]


def _target(cfg):
    module, name = cfg["_target_"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def test_there_are_trace_configs():
    names = {p.stem for p in TRACE_YAMLS}
    assert {"default", "file", "philly"} <= names


@pytest.mark.parametrize("yaml", TRACE_YAMLS, ids=lambda p: p.stem)
def test_yaml_matches_loader_signature(yaml):
    cfg = OmegaConf.load(yaml)
    params = inspect.signature(_target(cfg)).parameters
    keys = [k for k in cfg if k != "_target_"]
    assert keys == list(params), f"{yaml.name}: keys differ from the loader's parameters"
    assert keys[-len(COMMON) :] == COMMON
    for key in keys:
        if OmegaConf.is_missing(cfg, key):
            assert key == "path"
            continue
        value = OmegaConf.to_container(cfg, resolve=True)[key]
        default = params[key].default
        if isinstance(default, tuple):
            default = list(default)
        assert value == default, f"{yaml.name}: {key}"


@pytest.mark.parametrize("name", ["default", "philly"])
def test_bundled_sample_configs_instantiate(name):
    cfg = OmegaConf.load(CONFIGS / "trace" / f"{name}.yaml")
    cfg.max_jobs = 100
    cfg.queues = ["6214e9"]
    trace = instantiate(cfg)
    assert isinstance(trace, Trace) and len(trace.jobs) == 100
    assert set(trace.jobs["queue"]) == {"6214e9"}


def test_file_config_needs_path(tmp_path):
    cfg = OmegaConf.load(CONFIGS / "trace" / "file.yaml")
    p = tmp_path / "t.csv"
    p.write_text("job_id,submit_time,duration,num_gpus\na,1,1,1\nb,3,1,2\n")
    cfg.path = str(p)
    cfg.time_scale = 2
    trace = instantiate(cfg)
    assert trace.jobs["submit_time"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("yaml", TRACE_YAMLS, ids=lambda p: p.stem)
def test_configs_with_bundled_samples_build_through_hydra(yaml):
    cfg = OmegaConf.load(yaml)
    if OmegaConf.is_missing(cfg, "path"):
        pytest.skip("needs a path")
    cfg.max_jobs = 50
    trace = instantiate(cfg)
    assert len(trace.jobs) == 50 and trace.report["truncated_max_jobs"] > 0


def test_hydra_containers_are_accepted():
    cfg = OmegaConf.load(CONFIGS / "trace" / "alibaba_openb.yaml")
    cfg.qos_priority = {"LS": 5, "Guaranteed": 5, "Burstable": 1, "BE": 0}
    cfg.min_gpus = 1
    trace = instantiate(cfg)
    assert set(trace.jobs["priority"]) == {0, 1, 5}
