"""Compare the runs of a sweep: ``python -m experiments.compare DIR [--out OUT] [--by COL ...]``.

Writes ``DIR/report/report.md`` and ``report.html`` with a summary table per policy (mean ±
95 % confidence interval across seeds) and PNG plots: JCT and wait-time CDFs, GPU allocation
and queue length over time, per-queue share of the cluster. See :mod:`simulator.output.report`.
"""

import sys

from simulator.output.report import main

if __name__ == "__main__":
    sys.exit(main())
