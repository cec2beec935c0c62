"""Executing into a run-folder stage: one Result per Sample, stale verdicts re-run."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from codeloop.console import console
from codeloop.execution import ExecConfig, execute_samples
from codeloop.execution.config import JUDGE_VERSION
from codeloop.records import Problem, Result, Sample, from_dict
from codeloop.resumable.plan import plan_resume, previous_wall_s
from codeloop.rundir import StageDir


def execute_stage_config(exec_cfg: ExecConfig, inputs_hash: str | None = None) -> dict[str, Any]:
    """What an execution stage's verdicts depend on: its config, whose hash keys the stage."""
    # Where and how widely it runs (executor, workers, isolation asked for) does not change a
    # verdict, so switching a half-done stage from the local pool to Ray resumes it instead of
    # starting over. The judge's version does: verdicts of an older judge are not reused.
    verdict_settings = {k: v for k, v in asdict(exec_cfg).items()
                        if k not in ("executor", "workers", "isolation", "hide_paths")}
    verdict_settings["judge"] = JUDGE_VERSION
    return {"inputs_hash": inputs_hash, "exec": verdict_settings}


def execute_into(stage: StageDir, problems: list[Problem], samples: list[Sample], exec_cfg: ExecConfig,
                 inputs_hash: str | None = None) -> list[Result]:
    """Resumable execution stage: one Result per Sample (in `samples` order), appended as each finishes.

    A stored Result is reused only if it judged the program the sample stands for now (its
    `program_sha256`, see resumable/plan.py); otherwise the sample runs again. This holds even
    for a finished stage, so samples regenerated under the same keys and config never keep the old
    code's verdicts: the stage folder is then moved aside (`results.stale-N/`) and the verdicts that
    still hold are copied into a fresh one, so each key stays in the folder once."""
    config = execute_stage_config(exec_cfg, inputs_hash)
    state = stage.open(config)
    by_id = {p.task_id: p for p in problems}
    stored = {}
    for rec in stage.records():
        r = from_dict(Result, rec, str(stage.path))
        stored[(r.task_id, r.sample_id)] = r
    plan = plan_resume(by_id, samples, stored)
    if not plan.todo and state.status == "done":
        return [plan.reused[(s.task_id, s.sample_id)] for s in samples]
    if stored:
        console.print(f"{stage.path.name}: {plan.describe(str(stage.path))}")
    carried: list[Result] = []
    if plan.changed:
        aside = stage.move_aside()
        console.print(f"{stage.path.name}: the earlier results are kept in {aside}")
        stage.open(config)
        carried = [plan.reused[(s.task_id, s.sample_id)] for s in samples if (s.task_id, s.sample_id) in plan.reused]
    elif state.status == "done":
        stage.reopen()  # new samples for a finished stage: it is unfinished until they are run
    t0 = time.time()
    fresh: list[Result] = []
    if plan.todo or carried:
        with stage.writer() as out:
            for r in carried:
                out.write(r)
            if plan.todo:
                fresh = execute_samples(by_id, plan.todo, exec_cfg, on_result=plan.stamp(out.write))
    for r in fresh:
        plan.reused[(r.task_id, r.sample_id)] = r
    stage.finish({"results": len(samples), "wall_s": time.time() - t0 + previous_wall_s(stage),
                  "executor": exec_cfg.executor, "workers": exec_cfg.workers,
                  "rerun_changed_program": plan.changed})
    return [plan.reused[(s.task_id, s.sample_id)] for s in samples]
