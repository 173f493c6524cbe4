"""Request streams of a service: arrival times and token counts, from a trace or a generator.

Every source has ``load() -> RequestStream``. Arrival times are simulated seconds (the run
starts at 0); prompt and output lengths are tokens, at least 1 each (a request produces its
first output token at the end of its prefill).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from traces.mooncake import PrefixReuse

__all__ = [
    "AzureRequests",
    "MooncakeRequests",
    "PrefixRequestStream",
    "RequestStream",
    "SharedPrefix",
    "SyntheticRequests",
    "TokenDist",
]


@dataclass(frozen=True)
class RequestStream:
    """Requests sorted by arrival: ``arrival`` (s), ``prompt_tokens``, ``output_tokens``.

    Token counts below 1 are raised to 1 and counted in ``report`` (``clamped_prompt``,
    ``clamped_output``).
    """

    arrival: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    report: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        arrival = np.asarray(self.arrival, dtype=np.float64)
        prompt = np.asarray(self.prompt_tokens, dtype=np.int64)
        output = np.asarray(self.output_tokens, dtype=np.int64)
        if not (arrival.shape == prompt.shape == output.shape) or arrival.ndim != 1:
            raise ValueError("request stream: arrival, prompt and output need one value each")
        if not np.isfinite(arrival).all() or (arrival < 0).any():
            raise ValueError("request stream: arrival times must be finite and >= 0")
        order = np.argsort(arrival, kind="stable")
        report = dict(self.report)
        for name, col in (("prompt", prompt), ("output", output)):
            low = int((col < 1).sum())
            if low:
                report[f"clamped_{name}"] = report.get(f"clamped_{name}", 0) + low
        object.__setattr__(self, "arrival", arrival[order])
        object.__setattr__(self, "prompt_tokens", np.maximum(prompt, 1)[order])
        object.__setattr__(self, "output_tokens", np.maximum(output, 1)[order])
        object.__setattr__(self, "report", report)

    def __len__(self) -> int:
        return int(self.arrival.size)

    def load(self) -> RequestStream:
        """The stream itself (a stream is also a request source)."""
        return self

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, offset_s: float = 0.0) -> RequestStream:
        """From a table with ``submit_time``, ``prompt_tokens`` and ``output_tokens`` columns.

        A table that also has a ``hash_ids`` column (``trace=mooncake``) gives a
        :class:`PrefixRequestStream` that keeps the block hashes.
        """
        if cls is RequestStream and "hash_ids" in frame:
            return PrefixRequestStream.from_frame(frame, offset_s)
        return cls(
            frame["submit_time"].to_numpy(np.float64) + offset_s,
            frame["prompt_tokens"].to_numpy(np.int64),
            frame["output_tokens"].to_numpy(np.int64),
        )


@dataclass(frozen=True)
class PrefixRequestStream(RequestStream):
    """A request stream that also keeps every request's prompt prefix-block hashes.

    The hashes of all requests are one flat integer array; request ``i`` (in arrival order)
    has ``block_hashes[block_offsets[i]:block_offsets[i + 1]]``, one hash per
    ``block_tokens`` tokens of its prompt (the last block may be partial). Equal hashes mark
    equal prompt prefixes (Mooncake's hashes name a block and everything before it), which a
    prefix cache can reuse. 1M requests of 24 blocks take ~100 MB (int32 hashes) + 8 MB.

    Attributes:
        block_hashes: concatenated block hashes (an integer dtype, kept as given).
        block_offsets: int64 offsets, one more than there are requests, from 0 to
            ``len(block_hashes)``.
        block_tokens: tokens per block (512 in the Mooncake traces).
    """

    block_hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    block_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    block_tokens: int = 512

    def __post_init__(self) -> None:
        arrival = np.asarray(self.arrival, dtype=np.float64)
        hashes = np.asarray(self.block_hashes)
        offsets = np.asarray(self.block_offsets, dtype=np.int64)
        if isinstance(self.block_tokens, bool) or int(self.block_tokens) != self.block_tokens:
            raise ValueError("prefix request stream: block_tokens must be a whole number")
        if self.block_tokens < 1:
            raise ValueError("prefix request stream: block_tokens must be >= 1")
        if hashes.ndim != 1 or not np.issubdtype(hashes.dtype, np.integer):
            raise ValueError("prefix request stream: block_hashes must be a 1-D integer array")
        if offsets.shape != (arrival.size + 1,) or offsets[0] != 0:
            raise ValueError(
                "prefix request stream: block_offsets needs one entry per request plus one, "
                "starting at 0"
            )
        if (np.diff(offsets) < 0).any() or offsets[-1] != hashes.size:
            raise ValueError(
                "prefix request stream: block_offsets must not decrease and must end at "
                "len(block_hashes)"
            )
        order = np.argsort(arrival, kind="stable")
        if (order != np.arange(order.size)).any():  # same order as RequestStream's sort
            counts = np.diff(offsets)[order]
            new = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            gather = np.repeat(offsets[:-1][order] - new[:-1], counts) + np.arange(new[-1])
            hashes, offsets = hashes[gather], new
        object.__setattr__(self, "block_hashes", hashes)
        object.__setattr__(self, "block_offsets", offsets)
        object.__setattr__(self, "block_tokens", int(self.block_tokens))
        super().__post_init__()

    @property
    def num_blocks(self) -> np.ndarray:
        """Blocks per request (int64), in arrival order."""
        return np.diff(self.block_offsets)

    def blocks(self, i: int) -> np.ndarray:
        """Block hashes of request ``i`` (in arrival order), a view into ``block_hashes``."""
        return self.block_hashes[self.block_offsets[i] : self.block_offsets[i + 1]]

    def prefix_reuse(self) -> PrefixReuse:
        """Reusable prefix of every request with an unbounded cache shared by all requests.

        See :func:`traces.mooncake.prefix_reuse`; the prompt lengths are the stream's (raised
        to at least 1 token).
        """
        from traces.mooncake import prefix_reuse

        return prefix_reuse(
            self.block_hashes, self.block_offsets, self.prompt_tokens, self.block_tokens
        )

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, offset_s: float = 0.0, block_tokens: int = 512
    ) -> PrefixRequestStream:
        """From a table with ``submit_time``, ``prompt_tokens``, ``output_tokens``, ``hash_ids``.

        ``hash_ids`` holds one list of block hashes per row, as :func:`traces.mooncake.load`
        builds it (see :func:`traces.mooncake.hash_arrays` for the accepted forms).
        """
        from traces.mooncake import hash_arrays

        hashes, offsets = hash_arrays(frame["hash_ids"])
        return cls(
            frame["submit_time"].to_numpy(np.float64) + offset_s,
            frame["prompt_tokens"].to_numpy(np.int64),
            frame["output_tokens"].to_numpy(np.int64),
            block_hashes=hashes,
            block_offsets=offsets,
            block_tokens=block_tokens,
        )


class AzureRequests:
    """Requests of an Azure LLM inference trace (``traces.azure_llm``), shifted by ``offset_s``.

    Args:
        path: ``AzureLLMInferenceTrace_{conv,code}.csv``; None = the bundled 2,000-row sample.
        time_scale: divide inter-arrival times by this (2 = twice the request rate).
        start: keep requests at or after this time (trace time base, see the loader).
        end: keep requests before this time.
        max_requests: keep the first N requests.
        sample_frac: keep this random fraction of the requests (seeded by ``seed``).
        offset_s: simulated time of the first request.
        seed: seed of the sampling.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        time_scale: float = 1.0,
        start: float | str | None = None,
        end: float | str | None = None,
        max_requests: int | None = None,
        sample_frac: float | None = None,
        offset_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.path = path
        self.options = {
            "time_scale": time_scale,
            "start": start,
            "end": end,
            "max_jobs": max_requests,
            "sample_frac": sample_frac,
            "seed": seed,
        }
        self.offset_s = float(offset_s)

    def load(self) -> RequestStream:
        """Read the trace (rebased to its first request) into a stream."""
        from traces import azure_llm

        trace = azure_llm.load(path=self.path, **self.options)
        stream = RequestStream.from_frame(trace.jobs, self.offset_s)
        return RequestStream(
            stream.arrival, stream.prompt_tokens, stream.output_tokens, report=dict(trace.report)
        )


class MooncakeRequests:
    """Requests of a Mooncake trace (``traces.mooncake``) with their prefix-block hashes.

    ``load()`` gives a :class:`PrefixRequestStream`: arrivals (``timestamp`` ms / 1000,
    shifted by ``offset_s``), prompt and output tokens, and each request's block hashes.

    Args:
        path: Mooncake ``.jsonl`` (``conversation_trace``, ``toolagent_trace``,
            ``synthetic_trace``); None = the bundled 300-request conversation sample.
        time_scale: divide inter-arrival times by this (2 = twice the request rate).
        start: keep requests at or after this time (seconds from the file's time 0).
        end: keep requests before this time.
        max_requests: keep the first N requests.
        sample_frac: keep this random fraction of the requests (seeded by ``seed``).
        offset_s: simulated time of the first request.
        seed: seed of the sampling.
        block_tokens: tokens per hash block (512 in the Mooncake traces).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        time_scale: float = 1.0,
        start: float | None = None,
        end: float | None = None,
        max_requests: int | None = None,
        sample_frac: float | None = None,
        offset_s: float = 0.0,
        seed: int = 0,
        block_tokens: int = 512,
    ) -> None:
        self.path = path
        self.options = {
            "time_scale": time_scale,
            "start": start,
            "end": end,
            "max_jobs": max_requests,
            "sample_frac": sample_frac,
            "seed": seed,
            "block_tokens": block_tokens,
        }
        self.offset_s = float(offset_s)
        self.block_tokens = block_tokens

    def load(self) -> PrefixRequestStream:
        """Read the trace (rebased to its first request) into a stream with block hashes."""
        from traces import mooncake

        trace = mooncake.load(path=self.path, **self.options)
        s = PrefixRequestStream.from_frame(trace.jobs, self.offset_s, self.block_tokens)
        return PrefixRequestStream(
            s.arrival,
            s.prompt_tokens,
            s.output_tokens,
            report=dict(trace.report),
            block_hashes=s.block_hashes,
            block_offsets=s.block_offsets,
            block_tokens=s.block_tokens,
        )


@dataclass(frozen=True)
class TokenDist:
    """A distribution of token counts (integers >= ``low``, <= ``high``).

    Attributes:
        kind: ``constant`` (always ``mean``), ``geometric`` (on 1, 2, ... with mean ``mean``;
            the discrete exponential), ``lognormal`` (mean ``mean``, coefficient of variation
            ``cv``, rounded) or ``uniform`` (integers in ``[low, high]``).
        mean: mean tokens.
        cv: coefficient of variation of ``lognormal``.
        low: smallest value (values below are raised to it).
        high: largest value (values above are cut to it; None = no cap).
    """

    kind: str = "constant"
    mean: float = 128.0
    cv: float = 1.0
    low: int = 1
    high: int | None = None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` token counts (int64)."""
        if self.kind == "constant":
            x = np.full(n, round(self.mean), dtype=np.int64)
        elif self.kind == "geometric":
            if self.mean < 1:
                raise ValueError("geometric token counts need mean >= 1")
            x = rng.geometric(1.0 / self.mean, n).astype(np.int64)
        elif self.kind == "lognormal":
            sigma2 = np.log1p(self.cv**2)
            mu = np.log(self.mean) - sigma2 / 2
            x = np.rint(rng.lognormal(mu, np.sqrt(sigma2), n)).astype(np.int64)
        elif self.kind == "uniform":
            if self.high is None:
                raise ValueError("uniform token counts need high")
            x = rng.integers(self.low, self.high + 1, n, dtype=np.int64)
        else:
            raise ValueError(
                f"unknown token distribution {self.kind!r} "
                "(constant, geometric, lognormal, uniform)"
            )
        return np.clip(x, max(self.low, 1), self.high if self.high is not None else None)


def _token_dist(d: TokenDist | dict) -> TokenDist:
    return d if isinstance(d, TokenDist) else TokenDist(**d)


@dataclass(frozen=True)
class SharedPrefix:
    """Shared-prefix model of synthetic prompts: block hashes for prefix caching.

    Every request belongs to one of ``groups`` prefix groups (a system prompt, a few-shot
    template, a conversation's history), drawn with probability proportional to
    ``1 / (k + 1) ** zipf`` for group ``k`` (``zipf`` 0 = uniform). The first ``min(tokens,
    prompt)`` tokens of its prompt are the group's; their whole ``block_tokens`` blocks get the
    group's hashes (block ``j`` of group ``k``: the same hash for every request of the group),
    every other block of the prompt (the rest of the prompt, a partial block of the prefix) a
    hash of its own. Blocks are ``ceil(prompt / block_tokens)`` per request, as in the Mooncake
    traces.

    Attributes:
        groups: number of prefix groups (>= 1).
        tokens: shared prefix length in tokens (>= 0).
        block_tokens: tokens per block.
        zipf: popularity skew of the groups (>= 0).
    """

    groups: int = 1
    tokens: int = 1024
    block_tokens: int = 512
    zipf: float = 0.0

    def __post_init__(self) -> None:
        if self.groups < 1 or self.tokens < 0 or self.block_tokens < 1 or not self.zipf >= 0:
            raise ValueError(
                "shared prefix: need groups >= 1, tokens >= 0, block_tokens >= 1, zipf >= 0, "
                f"got {self}"
            )

    def hashes(self, rng: np.random.Generator, prompt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Block hashes and offsets of requests with these prompt lengths (see class doc)."""
        b = self.block_tokens
        prompt = np.asarray(prompt, dtype=np.int64)
        weights = 1.0 / np.arange(1, self.groups + 1, dtype=np.float64) ** self.zipf
        group = rng.choice(self.groups, size=prompt.size, p=weights / weights.sum())
        blocks = -(-prompt // b)
        shared = np.minimum(prompt, self.tokens) // b
        per_group = self.tokens // b
        offsets = np.concatenate([[0], np.cumsum(blocks)]).astype(np.int64)
        owner = np.repeat(np.arange(prompt.size), blocks)
        position = np.arange(offsets[-1], dtype=np.int64) - offsets[owner]
        unique = self.groups * per_group + np.arange(offsets[-1], dtype=np.int64)
        hashes = np.where(
            position < shared[owner], group[owner] * per_group + position, unique
        ).astype(np.int64)
        return hashes, offsets


def _shared_prefix(p: SharedPrefix | dict | None) -> SharedPrefix | None:
    return p if p is None or isinstance(p, SharedPrefix) else SharedPrefix(**p)


class SyntheticRequests:
    """Generated requests: a renewal arrival process and independent token counts.

    Args:
        rate: mean requests per second.
        num_requests: number of requests.
        arrival: ``poisson`` (exponential gaps), ``gamma`` (gamma gaps with coefficient of
            variation ``cv``: bursty above 1) or ``uniform`` (evenly spaced).
        cv: coefficient of variation of the ``gamma`` gaps.
        prompt: distribution of prompt tokens (a :class:`TokenDist` or its fields).
        output: distribution of output tokens.
        start_s: simulated time before the first gap.
        seed: seed of the generator (the stream is the same for every run).
        prefix: a :class:`SharedPrefix` (or its fields): the stream then carries block
            hashes for prefix caching (drawn after the lengths, which stay the same).
    """

    def __init__(
        self,
        rate: float,
        num_requests: int,
        arrival: str = "poisson",
        cv: float = 1.0,
        prompt: TokenDist | dict | None = None,
        output: TokenDist | dict | None = None,
        start_s: float = 0.0,
        seed: int = 0,
        prefix: SharedPrefix | dict | None = None,
    ) -> None:
        if rate <= 0 or num_requests < 0:
            raise ValueError("rate must be > 0 and num_requests >= 0")
        if arrival not in ("poisson", "gamma", "uniform"):
            raise ValueError(f"arrival must be poisson, gamma or uniform, got {arrival!r}")
        self.rate, self.n, self.arrival, self.cv = float(rate), int(num_requests), arrival, cv
        self.prompt = _token_dist(prompt or TokenDist("constant", 512))
        self.output = _token_dist(output or TokenDist("constant", 128))
        self.start_s, self.seed = float(start_s), int(seed)
        self.prefix = _shared_prefix(prefix)

    def gaps(self, rng: np.random.Generator) -> np.ndarray:
        """``num_requests`` inter-arrival gaps in seconds."""
        mean = 1.0 / self.rate
        if self.arrival == "poisson":
            return rng.exponential(mean, self.n)
        if self.arrival == "gamma":
            shape = 1.0 / self.cv**2
            return rng.gamma(shape, mean / shape, self.n)
        return np.full(self.n, mean)

    def load(self) -> RequestStream:
        """Generate the stream (same ``seed`` = same requests)."""
        rng = np.random.default_rng(self.seed)
        arrival = self.start_s + np.cumsum(self.gaps(rng))
        prompt, output = self.prompt.sample(rng, self.n), self.output.sample(rng, self.n)
        if self.prefix is None:
            return RequestStream(arrival, prompt, output)
        hashes, offsets = self.prefix.hashes(rng, np.maximum(prompt, 1))
        return PrefixRequestStream(
            arrival,
            prompt,
            output,
            block_hashes=hashes,
            block_offsets=offsets,
            block_tokens=self.prefix.block_tokens,
        )
