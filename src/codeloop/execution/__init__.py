"""The execution engine: codeloop's trust boundary (see docs/execution.md).

Untrusted programs run in children forked from a pool of warm, small sandbox workers, never in
the codeloop process. Judges count tests (HumanEval check(), MBPP asserts, stdin/stdout cases);
the verdict travels on a private channel, never from what the program prints.
"""

from codeloop.execution.config import ExecConfig
from codeloop.execution.executor import Executor, execute_samples, open_executor
from codeloop.execution.judges import outputs_match, rewrite_function_tests
from codeloop.execution.passk import pass_at_k, passk_table
from codeloop.execution.pool import ExecutionPool, LocalExecutor
from codeloop.records import Result

__all__ = ["ExecConfig", "Executor", "ExecutionPool", "LocalExecutor", "execute_samples", "open_executor",
           "pass_at_k", "passk_table", "outputs_match", "rewrite_function_tests", "Result"]
