"""Stop a run cleanly on Ctrl-C or SIGTERM: the signal is noted, the run stops between events.

Python turns SIGINT into ``KeyboardInterrupt`` at whatever bytecode is running, which can be
half-way through an event (a job released but not yet marked finished, a timeline row with
three of its four columns). :class:`GracefulStop` replaces that behaviour while it is active:
the first signal only sets :attr:`GracefulStop.requested`; the engine checks it between events
and stops with consistent state, and results are then written whole. A second signal raises
``KeyboardInterrupt`` at once (the user really wants out; nothing is written).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["GracefulStop"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """Context manager: SIGINT/SIGTERM set :attr:`requested` instead of raising.

    Only handlers that would raise ``KeyboardInterrupt`` (Python's default SIGINT handler, and
    SIGTERM once the entry point has mapped it to the same) are replaced, so handlers installed
    by others (e.g. submitit's) are left alone. Outside the main thread it does nothing (Python
    only lets the main thread install handlers).
    """

    def __init__(self) -> None:
        self.requested: int = 0
        """The number of the first signal received (0 = none)."""
        self.aborted = False
        """True once a second signal came: stop now, write nothing."""
        self._saved: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                if signal.getsignal(sig) is signal.default_int_handler:
                    self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            # also noted: SimPy keeps an exception raised inside a process as that process's
            # failure, so the engine re-raises it when it sees ``aborted``
            self.aborted = True
            raise KeyboardInterrupt(f"signal {signum} (second)")
        self.requested = signum
