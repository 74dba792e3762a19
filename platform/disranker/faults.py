"""Failure injection, the one test hook every stage reads: tests and benchmarks make a stage fail on purpose and then
check that nothing was lost, repeated or changed by the recovery.

A ``FaultInjection`` reaches the code that fails in one of two ways, the same value either way:

- passed in: ``teacher.train.run``, ``student.train.run`` and ``labeling.run`` take ``fault=`` (training ships it to
  every worker in the loop config);
- in the environment, ``DISRANKER_FAULT_INJECTION=<json>`` (``FaultInjection.env()`` writes it): for a stage started
  as a subprocess (a benchmark that SIGKILLs the driver runs ``python -m jobs.label``) and for the labeling actors,
  which get the driver's value through their ``runtime_env``.

Unset, every check is a no-op; production configs have no fault field.

The faults:

- ``after_step`` (training): worker ``rank`` raises after optimizer step ``after_step`` in an attempt that restored
  no checkpoint, so Ray Train restarts the workers and they resume (the step must come after the first checkpoint);
  with ``in_dev_pass``, inside the first dev pass at or after that step instead (scored, not yet checkpointed);
- ``trace_dir`` (training): every worker appends one JSON line per step to ``trace_dir/rank-<r>.jsonl``: the ids of
  the examples the step trained on and the step the attempt resumed from, so a test can count what the model saw;
- ``crash_scorer_once`` (labeling): a marker path; the first scoring actor anywhere to finish a call creates it and
  kills its own process before returning, as an out-of-memory kill would. Ray restarts the actor and retries the
  lost call, so the run must still end with every row exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

ENV = "DISRANKER_FAULT_INJECTION"


@dataclass(frozen=True)
class FaultInjection:
    after_step: int | None = None
    in_dev_pass: bool = False
    rank: int = 0
    trace_dir: str | None = None
    crash_scorer_once: str | None = None

    def fires(self, step: int, rank: int, resumed: bool, in_dev_pass: bool) -> bool:
        """Whether a training worker fails here (see ``after_step``)."""
        if resumed or rank != self.rank or self.after_step is None or in_dev_pass != self.in_dev_pass:
            return False
        return step >= self.after_step if in_dev_pass else step == self.after_step

    def crash_scorer_if_first(self) -> None:
        """Kill this process if ``crash_scorer_once`` is set and no process has done so yet (see above)."""
        if not self.crash_scorer_once:
            return
        try:  # O_EXCL: only the first caller anywhere creates the marker
            os.close(os.open(self.crash_scorer_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(1)

    def env(self) -> dict[str, str]:
        """The environment variable that carries this value to a subprocess or an actor."""
        return {ENV: json.dumps(dataclasses.asdict(self))}

    @classmethod
    def from_env(cls) -> FaultInjection | None:
        """The value ``env()`` put in this process's environment, if any."""
        text = os.environ.get(ENV)
        return cls(**json.loads(text)) if text else None


def given_or_from_env(fault: FaultInjection | None) -> FaultInjection | None:
    """The fault passed in, else the one in the environment."""
    return fault if fault is not None else FaultInjection.from_env()
