"""Why queued jobs wait: the reasons policies give with :class:`~simulator.core.decisions.Wait`.

A policy that leaves a queued job waiting may say why, as a Kubernetes scheduler's events do
(``queue over limit``, ``no node with 8 free GPUs``). The rules:

* A reason holds from the instant of the pass that gave it until a later pass gives a different
  one, or the job leaves the queue (starts, is rejected, or the run ends with it queued).
* Giving the same reason again changes nothing; the job's time under it keeps running.
* A job that waits again after it ran (preempted, killed by a failure) starts without a reason
  until the policy gives one.

Per job the record keeps the last reason given and the seconds spent under each reason. The
engine closes a job's open interval when it leaves the queue; :meth:`PendingReasons.rows` closes
the ones still open at the end of the run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PendingReasons"]


class PendingReasons:
    """The reasons given for each job's wait and the time spent under each one.

    Args:
        n: number of jobs in the run.
    """

    def __init__(self, n: int) -> None:
        self.names: list[str] = [""]
        self._codes: dict[str, int] = {"": 0}
        self.current = np.zeros(n, dtype=np.int32)
        """Per job: the code of the reason in force (0 = none)."""
        self.last = np.zeros(n, dtype=np.int32)
        """Per job: the code of the last reason ever given (0 = none)."""
        self.since = np.zeros(n, dtype=np.float64)
        self.seconds: dict[tuple[int, int], float] = {}
        """(job, reason code) -> seconds spent waiting under that reason (closed intervals)."""

    def __bool__(self) -> bool:
        return len(self.names) > 1

    def code(self, reason: str) -> int:
        """The code of ``reason`` (new reasons get the next code)."""
        code = self._codes.get(reason)
        if code is None:
            code = self._codes[reason] = len(self.names)
            self.names.append(reason)
        return code

    def give(self, j: int, reason: str, now: float) -> None:
        """Queued job ``j`` waits because of ``reason`` from ``now`` on."""
        code = self.code(reason)
        if self.current[j] == code:
            return
        self.close(j, now)
        self.current[j] = code
        self.last[j] = code
        self.since[j] = now

    def close(self, j: int, now: float) -> None:
        """Job ``j`` stops waiting under its current reason (if it has one) at ``now``."""
        code = int(self.current[j])
        if code:
            key = (j, code)
            self.seconds[key] = self.seconds.get(key, 0.0) + (now - float(self.since[j]))
            self.current[j] = 0

    def close_all(self, now: float) -> None:
        """Close every open interval at ``now`` (the end of the run)."""
        for j in np.flatnonzero(self.current).tolist():
            self.close(j, now)

    def last_reasons(self) -> np.ndarray:
        """Per job: the last reason given (``""`` for a job no policy gave a reason for)."""
        names = np.array(self.names, dtype=object)
        return names[self.last]

    def rows(self, job_ids: np.ndarray) -> pd.DataFrame:
        """One row per (job, reason): ``job_id``, ``reason``, ``seconds``, in job order."""
        keys = sorted(self.seconds)
        jobs = np.array([k[0] for k in keys], dtype=np.int64)
        return pd.DataFrame(
            {
                "job_id": np.asarray(job_ids, dtype=object)[jobs].astype(str),
                "reason": [self.names[k[1]] for k in keys],
                "seconds": np.array([self.seconds[k] for k in keys], dtype=np.float64),
            }
        )

    def summary(self) -> dict[str, dict[str, float]]:
        """Per reason: ``jobs`` whose last reason it is and total ``seconds`` under it."""
        out: dict[str, dict[str, float]] = {}
        last = np.bincount(self.last, minlength=len(self.names))
        total = np.zeros(len(self.names))
        for (_, code), s in self.seconds.items():
            total[code] += s
        for code in range(1, len(self.names)):
            if last[code] or total[code]:
                out[self.names[code]] = {"jobs": int(last[code]), "seconds": float(total[code])}
        return out
