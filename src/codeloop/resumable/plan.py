"""Resuming an execution: which stored verdicts still hold for the samples to run now.

A stored Result is reused only if it judged the same program: its `program_sha256` (or, for files
written before that field, the hash of its `code`) must equal the hash of the program the current
sample stands for (`codeloop.execution.judges.program_for`). A samples file regenerated under the
same (task_id, sample_id) keys therefore never inherits the old code's verdicts. Used by
`codeloop execute` (OUT.partial) and by the run-directory stage `execute_into` (eval, pairs, GiFT).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from codeloop.records import Problem, Result, Sample, program_hash, stored_program_hash
from codeloop.rundir import StageDir

Key = tuple[str, int]


def sample_key(s: Sample | Result) -> Key:
    return (s.task_id, s.sample_id)


@dataclass
class ResumePlan:
    want: dict[Key, str]  # the hash of each current sample's program
    reused: dict[Key, Result] = field(default_factory=dict)
    todo: list[Sample] = field(default_factory=list)  # samples to execute now, in input order
    changed: int = 0  # stored verdicts dropped: their program differs from the current sample's
    unverified: int = 0  # stored verdicts reused without a hash or code to check (very old files)

    def describe(self, where: str) -> str:
        text = f"resuming: {len(self.reused)} results reused from {where}, {len(self.todo)} to run"
        if self.changed:
            text += f" ({self.changed} of them re-run because the program changed since its stored result)"
        return text

    def stamp(self, on_result: Callable[[Result], None]) -> Callable[[Result], None]:
        """Wrap a result sink so each Result carries the hash of the program it judged."""
        def write(r: Result) -> None:
            h = self.want.get(sample_key(r))
            if h is not None:
                r.program_sha256 = h
            elif r.code:
                r.program_sha256 = program_hash(r.code)
            on_result(r)

        return write


def plan_resume(problems: dict[str, Problem], samples: Iterable[Sample], stored: dict[Key, Result]) -> ResumePlan:
    """Split `samples` into stored verdicts that still hold and samples to (re-)run.

    Samples whose task is not in `problems` are left in `todo` (the executor names them)."""
    from codeloop.execution.judges import program_for

    plan = ResumePlan(want={})
    for s in samples:
        k = sample_key(s)
        problem = problems.get(s.task_id)
        if problem is None:
            plan.todo.append(s)
            continue
        h = plan.want[k] = program_hash(program_for(problem, s))
        old = stored.get(k)
        if old is None:
            plan.todo.append(s)
            continue
        have = stored_program_hash(old)
        if have is None:
            plan.unverified += 1
            plan.reused[k] = old
        elif have == h:
            plan.reused[k] = old
        else:
            plan.changed += 1
            plan.todo.append(s)
    return plan


def previous_wall_s(stage: StageDir) -> float:
    """Wall time the stage's earlier (killed or finished) attempts already spent."""
    return float(stage.metrics().get("wall_s", 0.0))
