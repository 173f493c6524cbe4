"""``python -m simulator``: see :func:`simulator.app.main`."""

from simulator.app import main

if __name__ == "__main__":
    main()
