"""Sampling into a run-folder stage, resumable by (task_id, sample_id)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict
from typing import Any, Callable

from codeloop.generation import GenerationParams, generate
from codeloop.records import Problem, Sample, from_dict
from codeloop.resumable.plan import previous_wall_s
from codeloop.rundir import StageDir


def sample_stage_config(problems: list[Problem], params: GenerationParams, model: str = "default",
                        backend: str = "hf", adapter: str | None = None,
                        extra_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a sampling stage's outputs depend on: its config, whose hash keys the stage."""
    return {"problems": [p.task_id for p in problems], "model": model, "adapter": adapter,
            "backend": backend, "params": asdict(params), **(extra_config or {})}


def sample_into(stage: StageDir, problems: list[Problem], params: GenerationParams, model: str = "default",
                backend: str = "hf", adapter: str | None = None, extra_config: dict[str, Any] | None = None,
                generator: Any = None, backend_options: dict[str, Any] | None = None,
                postprocess: Callable[[Sample], Sample] | None = None) -> list[Sample]:
    """Resumable sampling stage: n samples per problem, appended as they are made.

    `generator`: an already-loaded generator to reuse (then `model`/`adapter` only label the stage).
    """
    state = stage.open(sample_stage_config(problems, params, model, backend, adapter, extra_config))
    if state.status != "done":
        # A problem's n samples are generated together; one killed part-way is generated again and
        # its already-written samples win on read (same keys), so nothing is duplicated.
        have = Counter(t for t, _ in stage.done_keys())
        todo = [p for p in problems if have[p.task_id] < params.n]
        t0 = time.time()
        with stage.writer() as out:
            if todo:
                write = out.write if postprocess is None else (lambda smp: out.write(postprocess(smp)))
                generate(todo, params, model=model, backend=backend, adapter=adapter, on_sample=write,
                         generator=generator, **(backend_options or {}))
        stage.finish({"samples": len(stage.records()), "wall_s": time.time() - t0 + previous_wall_s(stage)})
    return [from_dict(Sample, r) for r in stage.records()]
