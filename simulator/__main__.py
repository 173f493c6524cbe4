"""``python -m simulator``: see :func:`simulator.app.main`.

Ctrl-C or SIGTERM outside a run's simulation (while Python imports the simulator, while Hydra
composes the config, after the run) ends the program with one line and exit status 130, as
during a run; SIGTERM is mapped to Ctrl-C from the first line on (not Python's default,
which would exit with status 143).
"""

import signal
import sys

INTERRUPTED = 130
"""Exit status after Ctrl-C or SIGTERM (128 + SIGINT, the shell's convention)."""


def _run() -> None:
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from simulator.app import main

        main()
    except KeyboardInterrupt:
        print(
            "interrupted outside a simulation: stopped (results written before are complete)",
            file=sys.stderr,
        )
        sys.exit(INTERRUPTED)


if __name__ == "__main__":
    _run()
