"""Every step codeloop has, in one literal list: name -> where its `Step` is declared.

The recipe loader, the CLI and `codeloop steps list|show` read this list and nothing else, so a
new step is one line here (plus its module). Modules are imported when a step is first used,
which keeps `codeloop --help` fast and lets an optional dependency fail only for its own step.
"""

from __future__ import annotations

import importlib

from codeloop.errors import UserError
from codeloop.steps import Step, suggest

STEPS: dict[str, str] = {
    "sample": "codeloop.resumable.steps:SAMPLE",
    "execute": "codeloop.resumable.steps:EXECUTE",
    "eval": "codeloop.pipeline.stages:EVAL",
    "pairs": "codeloop.pipeline.stages:PAIRS",
    "curriculum": "codeloop.pipeline.stages:CURRICULUM",
    "train_sft": "codeloop.pipeline.stages:TRAIN_SFT",
    "train_dpo": "codeloop.pipeline.stages:TRAIN_DPO",
    "eval_buckets": "codeloop.pipeline.stages_buckets:EVAL_BUCKETS",
    "gift": "codeloop.pipeline.stages_gift:GIFT",
    "self_training": "codeloop.pipeline.stages_gift:SELF_TRAINING",
    "lintseq": "codeloop.pipeline.stages_lintseq:LINTSEQ",
    "lintseq_eval": "codeloop.pipeline.stages_lintseq:LINTSEQ_EVAL",
    "lintseq_report": "codeloop.pipeline.stages_lintseq:LINTSEQ_REPORT",
    "sft_data": "codeloop.pipeline.stages_cdas:SFT_DATA",
    "select": "codeloop.pipeline.stages_cdas:SELECT",
    "train_sft_profiled": "codeloop.pipeline.stages_cdas:TRAIN_SFT_PROFILED",
    "cdas_table": "codeloop.pipeline.stages_cdas:CDAS_TABLE",
}


def get_step(name: str, where: str = "type") -> Step:
    target = STEPS.get(name)
    if target is None:
        raise UserError(f"unknown step {name!r}{suggest(str(name), STEPS)} (known: {', '.join(sorted(STEPS))})",
                        where)
    module, _, attr = target.partition(":")
    step = getattr(importlib.import_module(module), attr)
    if step.name != name:
        raise RuntimeError(f"registry entry {name!r} points at step {step.name!r}")
    return step


def all_steps() -> list[Step]:
    return [get_step(name) for name in STEPS]
