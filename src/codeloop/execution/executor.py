"""Where sandbox executions run, chosen in one place from `ExecConfig.executor`.

``local``: this machine's pool of warm sandbox workers (pool.py). ``ray`` / ``ray:ADDRESS``: the
same pools hosted in Ray actors on every node of a cluster (ray_executor.py; Ray is optional and
imported only when asked for). Both give the verdicts the local pool gives and implement `Executor`.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

from codeloop.errors import UserError
from codeloop.execution.config import ExecConfig
from codeloop.execution.pool import ExecutionPool, LocalExecutor
from codeloop.records import Problem, Result, Sample


class Executor(Protocol):
    config: ExecConfig

    def run(self, problems: dict[str, Problem], samples: list[Sample],
            on_result: Callable[[Result], None] | None = None, progress: bool = True) -> list[Result]:
        """Run every sample against its problem's tests; Results in input order, `on_result` as each ends."""

    def close(self) -> None: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc: object) -> None: ...


def ray_address(executor: str) -> str | None:
    """``ray`` -> None (RAY_ADDRESS, a cluster started on this machine, else a new local one);
    ``ray:ADDRESS`` -> ADDRESS (``auto``, ``HOST:6379`` or ``ray://HOST:10001``)."""
    if executor == "ray":
        return None
    if executor.startswith("ray:") and executor[4:]:
        return executor[4:]
    raise UserError(f"expected ray or ray:ADDRESS, got {executor!r}", "--executor")


class WithReferenceTests:
    """An executor that first gives inputs-only problems (EvalPlus' format, e.g. `mbpp+`) their tests
    from the reference's outputs (execution/reference.py), once here rather than on every node."""

    def __init__(self, inner: Executor):
        self.inner, self.config = inner, inner.config

    def run(self, problems: dict[str, Problem], samples: list[Sample],
            on_result: Callable[[Result], None] | None = None, progress: bool = True) -> list[Result]:
        from codeloop.execution.reference import with_reference_tests

        return self.inner.run(with_reference_tests(problems, self.config), samples, on_result=on_result,
                              progress=progress)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> "WithReferenceTests":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_executor(config: ExecConfig | None = None) -> Executor:
    """The executor `config.executor` names (not started: it starts on first use; close it, or use `with`)."""
    config = config or ExecConfig()
    config.validate()
    if config.executor == "local":
        return WithReferenceTests(LocalExecutor(config))
    from codeloop.execution.ray_executor import RayExecutor  # Ray is optional: import on use

    return WithReferenceTests(RayExecutor(config, address=ray_address(config.executor)))


def execute_samples(problems: dict[str, Problem] | Iterable[Problem], samples: Iterable[Sample],
                    config: ExecConfig | None = None, on_result: Callable[[Result], None] | None = None,
                    progress: bool = True, pool: ExecutionPool | None = None) -> list[Result]:
    """Run every sample against its problem's tests in the sandbox; Results in input order.

    `on_result` is called (in this thread) as each execution finishes, for resumable appends.
    `pool`: a started or unstarted ExecutionPool to reuse (its config wins); else the executor
    `config.executor` names is opened for this call and closed here.
    """
    by_id = problems if isinstance(problems, dict) else {p.task_id: p for p in problems}
    executor = WithReferenceTests(LocalExecutor(pool=pool)) if pool is not None else open_executor(config)
    with executor:
        return executor.run(by_id, list(samples), on_result=on_result, progress=progress)
