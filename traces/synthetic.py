"""Seeded synthetic training workloads: Poisson arrivals, lognormal durations, heavy-tailed gangs.

Used by the benchmark (``experiments/bench.py``), by theory tests and by anyone who wants a
controllable load. The arrival rate is set from the offered load:
``rate = load * cluster_gpus / (E[num_gpus] * E[duration])`` with
``E[duration] = median_duration * exp(sigma**2 / 2)`` (lognormal), so ``load=0.9`` offers 90 %
of the cluster's GPU-seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from traces.canonical import Trace, finish

__all__ = ["generate", "load", "DEFAULT_SIZES", "DEFAULT_SIZE_PROBS"]

DEFAULT_SIZES = (1, 2, 4, 8, 16, 32, 64)
"""Gang sizes (GPUs) of the default mix."""
DEFAULT_SIZE_PROBS = (0.70, 0.10, 0.08, 0.07, 0.03, 0.015, 0.005)
"""Their probabilities: most jobs use 1 GPU, 5 % use 16 or more."""


def generate(
    num_jobs: int,
    cluster_gpus: int,
    load: float = 0.9,
    median_duration: float = 1800.0,
    sigma: float = 1.5,
    sizes: Sequence[int] = DEFAULT_SIZES,
    size_probs: Sequence[float] = DEFAULT_SIZE_PROBS,
    seed: int = 0,
) -> pd.DataFrame:
    """Build a canonical job table (job_id, submit_time, duration, num_gpus).

    Args:
        num_jobs: jobs to generate.
        cluster_gpus: GPUs of the cluster the load is relative to.
        load: offered load (GPU-seconds asked per GPU-second of capacity).
        median_duration: median job duration in seconds.
        sigma: lognormal shape of durations (1.5: mean is 3.1x the median).
        sizes: gang sizes in GPUs.
        size_probs: probability of each size (normalised).
        seed: seed of the generator.
    """
    if num_jobs < 1 or cluster_gpus < 1 or load <= 0 or median_duration <= 0 or sigma < 0:
        raise ValueError(
            "synthetic trace: num_jobs, cluster_gpus, load and median_duration "
            "must be positive (sigma >= 0)"
        )
    p = np.asarray(size_probs, dtype=np.float64)
    if len(p) != len(sizes) or (p < 0).any() or p.sum() <= 0:
        raise ValueError("synthetic trace: size_probs must be non-negative, one per size")
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    gpus = rng.choice(np.asarray(sizes, dtype=np.int64), size=num_jobs, p=p)
    duration = rng.lognormal(np.log(median_duration), sigma, num_jobs)
    mean_work = float(np.dot(p, sizes)) * median_duration * np.exp(sigma**2 / 2)
    rate = load * cluster_gpus / mean_work
    submit = np.cumsum(rng.exponential(1.0 / rate, num_jobs))
    submit -= submit[0]
    return pd.DataFrame(
        {
            "job_id": np.arange(num_jobs, dtype=np.int64),
            "submit_time": submit,
            "duration": duration,
            "num_gpus": gpus,
        }
    )


def load(
    path: str | None = None,
    *,
    num_jobs: int = 10_000,
    cluster_gpus: int = 256,
    load: float = 0.9,
    median_duration: float = 1800.0,
    sigma: float = 1.5,
    sizes: Sequence[int] = DEFAULT_SIZES,
    size_probs: Sequence[float] = DEFAULT_SIZE_PROBS,
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
    """Generate a synthetic trace (see :func:`generate`) and apply the common options.

    Column derivation: ``job_id`` 0..n-1; ``submit_time`` cumulative exponential gaps (Poisson
    arrivals, first at 0); ``duration`` lognormal; ``num_gpus`` drawn from ``sizes``; every
    other column takes its canonical default. Nothing is dropped or repaired. ``path`` is
    ignored (there is no file); it exists so every trace config has the same shape.
    """
    del path
    jobs = generate(num_jobs, cluster_gpus, load, median_duration, sigma, sizes, size_probs, seed)
    trace = Trace(
        jobs=jobs, source=f"synthetic(num_jobs={num_jobs}, load={load}, seed={seed})", report={}
    )
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
