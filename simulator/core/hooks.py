"""Where the core loop calls code that is not its own: a policy's pass, a fabric's rate model.

The loop (:mod:`simulator.core.loop`) is one compiled function. What it calls at a
scheduling pass, and at each start and stop of a job, depends on the run's policy and fabric;
it finds them through the *type* of the state objects it is given, at compile time, so the
loop is compiled (and cached on disk) once per (policy state type, fabric state type):

* a policy's compiled state is a ``NamedTuple`` class whose class attribute ``kernel`` is
  its jitted pass ``kernel(es, fs, ps) -> int`` (:data:`PASS_DONE`, :data:`PASS_PYTHON`, or an
  error code from :mod:`simulator.core.ops`);
* a fabric's compiled state is a ``NamedTuple`` class with jitted ``on_start(es, fs, j)``
  and ``on_stop(es, fs, j)`` class attributes.

:class:`PythonPass` (the policy's ``schedule(view)`` runs in Python) and :class:`NoFabric`
(placement never changes speed) are the two built-in states.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from simulator.core.jit import jit

__all__ = [
    "PASS_DONE",
    "PASS_PYTHON",
    "PythonPass",
    "NoFabric",
    "pass_hook",
    "start_hook",
    "stop_hook",
    "hook",
    "policy_hook",
]

PASS_DONE = 0
"""The compiled pass ran."""
PASS_PYTHON = 1
"""The pass must run in Python (the loop returns to its host)."""


def hook(cls: type, name: str):
    """The jitted function a state class provides as ``name`` (``kernel``, ``on_start``...)."""
    fn = vars(cls).get(name)
    if fn is None:
        raise TypeError(f"{cls.__qualname__} has no {name!r} (see simulator.core.hooks)")
    return fn


@jit
def _python_pass(es, fs, ps):
    return PASS_PYTHON


class PythonPass(NamedTuple):
    """Policy state of a policy without a compiled pass: every pass returns to Python."""

    unused: np.ndarray

    kernel = _python_pass


@jit
def _no_change(es, fs, j):
    return 0


class NoFabric(NamedTuple):
    """Fabric state of a run whose placement never changes a job's speed."""

    unused: np.ndarray

    on_start = _no_change
    on_stop = _no_change


def _state_class(t) -> type:
    if not isinstance(t, types.BaseNamedTuple):
        raise TypeError(f"hook state must be a NamedTuple, got {t}")
    return t.instance_class


def pass_hook(es, fs, ps):
    """Run the policy's compiled pass (``type(ps).kernel``)."""
    return hook(type(ps), "kernel")(es, fs, ps)


def start_hook(es, fs, j):
    """Tell the fabric that job ``j`` started (``type(fs).on_start``)."""
    return hook(type(fs), "on_start")(es, fs, j)


def stop_hook(es, fs, j):
    """Tell the fabric that job ``j`` stopped (``type(fs).on_stop``)."""
    return hook(type(fs), "on_stop")(es, fs, j)


@overload(pass_hook)
def _pass_hook(es, fs, ps):
    kernel = hook(_state_class(ps), "kernel")

    def impl(es, fs, ps):
        return kernel(es, fs, ps)

    return impl


@overload(start_hook)
def _start_hook(es, fs, j):
    fn = hook(_state_class(fs), "on_start")

    def impl(es, fs, j):
        return fn(es, fs, j)

    return impl


@overload(stop_hook)
def _stop_hook(es, fs, j):
    fn = hook(_state_class(fs), "on_stop")

    def impl(es, fs, j):
        return fn(es, fs, j)

    return impl


def policy_hook(name: str):
    """A function ``f(es, ps, j)`` that calls ``type(ps).<name>(es, ps, j)``, in compiled code too.

    For a compiled pass shared by several policies (e.g. the gang walk, with the placement
    rule of each policy that walks the queue that way): the rule is found through the type of
    the policy state at compile time, as :func:`pass_hook` finds the pass.
    """

    def call(es, ps, j):
        return hook(type(ps), name)(es, ps, j)

    call.__name__ = call.__qualname__ = f"{name}_hook"

    @overload(call)
    def _call(es, ps, j):
        fn = hook(_state_class(ps), name)

        def impl(es, ps, j):
            return fn(es, ps, j)

        return impl

    return call
