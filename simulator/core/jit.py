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
  state, see :mod:`simulator.core.hooks`), and every module of the project that file imports
  (transitively: the code its kernel may call), is unchanged.

So editing a policy kernel, the core, or installing a new version never runs stale code.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path
from types import ModuleType

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
_ROOT = _CORE.parent.parent


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


@functools.cache
def _project_files(module: str) -> tuple[str, ...]:
    """Files of ``module`` and of every module of this project it imports, transitively.

    A hook state's kernel may call jitted code of any of them (the gang walk, the what-if
    placements, the fragmentation kernels...), so all of them key the cache.
    """
    files, seen, stack = [], set(), [module]
    while stack:
        name = stack.pop()
        mod = sys.modules.get(name)
        if mod is None or name in seen:
            continue
        seen.add(name)
        path = getattr(mod, "__file__", None)
        if not path:
            continue
        path = Path(path).resolve()
        if not path.is_relative_to(_ROOT) or "site-packages" in path.parts:
            continue
        files.append(str(path))
        for value in vars(mod).values():
            if isinstance(value, ModuleType):
                stack.append(value.__name__)
            else:
                owner = getattr(getattr(value, "py_func", value), "__module__", None)
                if isinstance(owner, str):
                    stack.append(owner)
    return tuple(sorted(files))


def _hook_stamps(sig: tuple) -> tuple:
    """Hash of the files behind every named-tuple type in ``sig`` (hook states).

    The defining module of each type and the project modules it imports (see
    :func:`_project_files`); the core's own files are in :func:`core_stamp`.
    """
    out = []
    stack = list(sig)
    while stack:
        t = stack.pop()
        if isinstance(t, types.BaseNamedTuple):
            cls = t.instance_class
            files = _project_files(cls.__module__)
            stamp = tuple(_file_stamp(f) for f in files) if files else ("",)
            out.append((cls.__qualname__, stamp))
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
