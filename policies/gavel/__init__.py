"""Gavel-style (OSDI'20) allocation over effective throughputs, as pure functions (a library).

The policies built on it are ``gavel_maxmin``, ``gavel_ftf`` and ``gavel_maxsum``
(:mod:`policies.gavel.rounds`: Gavel's round mechanism as engine events).

* :mod:`policies.gavel.problem`: the inputs (throughput matrix jobs x worker types, scale
  factors, workers per type, priority weights), their checks, the equal-share normaliser and
  the constraints every allocation satisfies;
* :mod:`policies.gavel.allocation`: max-min fairness, max-sum-throughput and finish-time
  fairness, each an LP (or a bisection over LPs) solved with SciPy's HiGHS ``linprog``.
"""

from policies.gavel.allocation import finish_time_fairness, max_min_fairness, max_sum_throughput
from policies.gavel.problem import Problem, equal_share, make_problem

__all__ = [
    "Problem",
    "equal_share",
    "finish_time_fairness",
    "make_problem",
    "max_min_fairness",
    "max_sum_throughput",
]
