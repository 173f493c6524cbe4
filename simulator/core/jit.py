"""Numba settings of the whole project, set here once, and an on-disk cache that stays fresh.

Every compiled function of the simulator (and of a compiled policy) is decorated with
:func:`jit` or :func:`jit_inline`. Options are :data:`JIT_OPTIONS`; compiled code is cached on
disk between runs.

Numba's own cache keys a function on the text of the file that defines it, so a jitted
function that calls jitted code of *another* file (every policy kernel calls the core; the core
loop calls the policy's pass) would keep running stale machine code after that other file
changes. The cache used here is fresh only if, in addition,

* every file of ``simulator/core`` is unchanged (the loop, the kernels, the state layout), and
* the file defining each hook-state type in the signature (a policy's or a fabric's compiled
  state, see :mod:`simulator.core.hooks`) is unchanged.

So editing a policy kernel, the core, or installing a new version never runs stale code.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from pathlib import Path

from numba import config, njit
from numba.core import types
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
    UserWideCacheLocator,
)

__all__ = ["JIT_OPTIONS", "jit", "jit_inline", "core_stamp"]

JIT_OPTIONS = {"nogil": True, "fastmath": False}
"""Options of every compiled function (caching is added by :func:`jit`)."""

_CORE = Path(__file__).resolve().parent


@functools.cache
def core_stamp() -> str:
    """Hash of the text of every module of ``simulator/core`` (read once per process)."""
    h = hashlib.sha256()
    for path in sorted(_CORE.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@functools.cache
def _file_stamp(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return path


def _hook_stamps(sig: tuple) -> tuple:
    """Hash of the defining file of every named-tuple type in ``sig`` (hook states)."""
    out = []
    stack = list(sig)
    while stack:
        t = stack.pop()
        if isinstance(t, types.BaseNamedTuple):
            cls = t.instance_class
            try:
                out.append((cls.__qualname__, _file_stamp(inspect.getfile(cls))))
            except (TypeError, OSError):
                out.append((cls.__qualname__, ""))
            stack.extend(t.types)
        elif isinstance(t, types.BaseTuple):
            stack.extend(t.types)
    return tuple(sorted(out))


class _FreshStamp:
    """Mixin: a locator whose source stamp also covers the core's files."""

    def get_source_stamp(self):  # noqa: D102 - numba's interface
        return (super().get_source_stamp(), core_stamp())


class _UserDirLocator(_FreshStamp, UserProvidedCacheLocator):
    pass


class _InTreeLocator(_FreshStamp, InTreeCacheLocator):
    pass


class _UserWideLocator(_FreshStamp, UserWideCacheLocator):
    pass


class _Impl(CompileResultCacheImpl):
    _locator_classes = [_UserDirLocator, _InTreeLocator, _UserWideLocator]


class _Cache(FunctionCache):
    _impl_class = _Impl

    def _index_key(self, sig, codegen):
        return (*super()._index_key(sig, codegen), _hook_stamps(tuple(sig)))


def _cached(dispatcher):
    if config.DISABLE_JIT or not hasattr(dispatcher, "py_func"):
        return dispatcher  # plain Python function
    dispatcher._cache = _Cache(dispatcher.py_func)  # what enable_caching() does, our cache
    return dispatcher


def jit(fn=None, **extra):
    """Compile ``fn`` with :data:`JIT_OPTIONS` and the fresh on-disk cache (see module doc)."""
    if fn is None:
        return functools.partial(jit, **extra)
    return _cached(njit(**JIT_OPTIONS, **extra)(fn))


def jit_inline(fn):
    """:func:`jit`, inlined into its callers at Numba IR level.

    For small helpers of hot loops: a real call passes every array as a struct and
    reference-counts it (measured: about 20 ns a call, many times the helper's own work).
    """
    return jit(fn, inline="always")
