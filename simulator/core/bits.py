"""Two-level bitsets over ``0..n-1``: O(1) insert/remove, fast ascending walks.

The engine keeps its sets of job indices as bitsets (queued jobs, running jobs, the head of
each demand class, ...). A set bit in word ``w`` of :attr:`Bits.words` also sets bit ``w % 64``
of ``summary[w // 64]``, so finding the next member skips 4,096 absent indices per summary
word: walking ``k`` members of a set over a million indices reads about ``k + n / 4096``
words, whatever the order of inserts and removals.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulator.core.jit import jit, jit_inline

__all__ = ["Bits", "new_bits", "members"]

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


class Bits(NamedTuple):
    """A set of integers ``0 <= i < n``.

    Attributes:
        words: ``uint64[ceil(n / 64)]``; bit ``i % 64`` of ``words[i // 64]`` = member ``i``.
        summary: ``uint64[ceil(len(words) / 64)]``; bit set = that word is non-zero.
    """

    words: np.ndarray
    summary: np.ndarray


def new_bits(n: int) -> Bits:
    """An empty set over ``0..n-1``."""
    w = max((n + 63) // 64, 1)
    return Bits(np.zeros(w, dtype=np.uint64), np.zeros(max((w + 63) // 64, 1), dtype=np.uint64))


@jit_inline
def _ctz(word):
    """Index of the lowest set bit of a non-zero uint64."""
    n = 0
    if (word & np.uint64(0xFFFFFFFF)) == 0:
        n += 32
        word >>= np.uint64(32)
    if (word & np.uint64(0xFFFF)) == 0:
        n += 16
        word >>= np.uint64(16)
    if (word & np.uint64(0xFF)) == 0:
        n += 8
        word >>= np.uint64(8)
    if (word & np.uint64(0xF)) == 0:
        n += 4
        word >>= np.uint64(4)
    if (word & np.uint64(0x3)) == 0:
        n += 2
        word >>= np.uint64(2)
    if (word & np.uint64(0x1)) == 0:
        n += 1
    return n


@jit_inline
def bit_set(b, i):
    """Insert ``i``."""
    w = i >> 6
    b.words[w] |= _ONE << np.uint64(i & 63)
    b.summary[w >> 6] |= _ONE << np.uint64(w & 63)


@jit_inline
def bit_clear(b, i):
    """Remove ``i`` (no-op if absent)."""
    w = i >> 6
    b.words[w] &= ~(_ONE << np.uint64(i & 63))
    if b.words[w] == 0:
        b.summary[w >> 6] &= ~(_ONE << np.uint64(w & 63))


@jit_inline
def bit_test(b, i):
    """Whether ``i`` is a member."""
    return (b.words[i >> 6] >> np.uint64(i & 63)) & _ONE != 0


@jit_inline
def bit_next(b, i):
    """Smallest member ``>= i``, or -1."""
    if i < 0:
        i = 0
    words, summary = b.words, b.summary
    w = i >> 6
    if w >= words.shape[0]:
        return -1
    m = words[w] & (_ALL << np.uint64(i & 63))
    if m != 0:
        return (w << 6) + _ctz(m)
    w += 1
    if w >= words.shape[0]:
        return -1
    s = w >> 6
    m = summary[s] & (_ALL << np.uint64(w & 63))
    while m == 0:
        s += 1
        if s >= summary.shape[0]:
            return -1
        m = summary[s]
    w = (s << 6) + _ctz(m)
    return (w << 6) + _ctz(words[w])


@jit_inline
def bit_next_below(b, i, end):
    """Smallest member in ``[i, end)``, or -1."""
    k = bit_next(b, i)
    if k >= end:
        return -1
    return k


@jit
def _members(words, summary, out):
    b = Bits(words, summary)
    k = 0
    i = bit_next(b, 0)
    while i >= 0:
        out[k] = i
        k += 1
        i = bit_next(b, i + 1)
    return k


def members(b: Bits, count: int) -> np.ndarray:
    """The members in ascending order (``count`` = their number, an upper bound is fine)."""
    out = np.empty(count, dtype=np.int64)
    k = _members(b.words, b.summary, out)
    return out[:k]
