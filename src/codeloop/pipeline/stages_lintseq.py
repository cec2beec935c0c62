"""Recipe steps for LintSeq (docs/lintseq.md):

- ``lintseq``: instruction/response records -> SFT records whose completions are linter-clean
  insertion-edit sequences of the response program (sft.jsonl), and the plain arm's records with
  the same instructions and programs (plain.jsonl);
- ``lintseq_eval``: an evaluation that gives the model the LintSeq prompt (the task in words and the
  signature, ending as the arm's training prompts end) and executes code prompt + decoded program;
- ``lintseq_report``: the paper's comparison of the arms: pass@k curves over k and over generated
  tokens, malformed outputs, distinct correct programs per problem.
"""

from __future__ import annotations

import os

import json
from dataclasses import dataclass
from typing import Any

from codeloop.errors import UserError
from codeloop.evaluation.harness import EvalConfig
from codeloop.pipeline.stages import EvalStageConfig, StageContext, eval_summary
from codeloop.records import atomic_write_text, in_format, read_jsonl, write_jsonl
from codeloop.steps import FORMAT_FIELD, Step, derive, library_kwargs, option, validate_as

ARMS = ("edits", "plain")
DOCSTRINGS = ("drop", "atomic")
SIGNATURE_HELP = ("Name the signature of the function the tests call in the instruction (\"Write a function "
                  "`f(a, b)` to ...\"), as the official MBPP prompts do; the same at training and test time.")


# -- lintseq ----------------------------------------------------------------------------------------

@dataclass
class LintSeqStageConfig:
    input: str = option("", flags=("--data",), help="A step with sft.jsonl records (e.g. sft_data) whose "
                                                    "`field` holds the program (command line: its folder or file).")
    file: str = option("sft.jsonl", help="That step's file.")
    field: str = option("response", help="The record field holding the response program to refactor into edits.")
    instruction_field: str = option("instruction", help="The task in words (sft_data's `instruction`, made with "
                                                        "`instruction: description`): what the model is given.")
    code_prompt_field: str = option("prompt", help="The field with the benchmark's code prompt, where the "
                                                   "signature comes from ('' : none).")
    signature: bool = option(True, help=SIGNATURE_HELP)
    docstrings: str = option("drop", choices=DOCSTRINGS, help="drop: docstrings are removed from the response "
                             "program (the instruction holds the task); atomic: kept, each one inserted whole "
                             "by one edit. Never cut into lines.")
    diff_in_prompt: bool = option(True, help="The prompt ends with the first \\n<|diff|> at training time, as "
                                             "the test-time prompt does; false: the official split, where it "
                                             "is the first tokens of the target.")
    s: int = option(5, flags=("--sequences",), help="Edit sequences per program (the paper's s).")
    seed: int | None = option(None, help="Seed of the edit sampling; default: the run's.")
    workers: int = option(0, min=0, help="Processes that lint in parallel (0: one per core). Results depend on "
                                         "the seed only, not on this.")
    format: str = FORMAT_FIELD[2]

    def check(self, where: str) -> None:
        if not self.input:
            raise UserError("missing required key 'input' (a stage with sft.jsonl)", f"{where}.input")
        if self.s < 1:
            raise UserError("must be >= 1", f"{where}.s")


def lintseq_inputs(records: list[dict], cfg: LintSeqStageConfig, where: str) -> tuple[list[dict], int]:
    """The records with `instruction` (task in words + signature) and `program` (the response
    program as the target builds it), and how many instructions were the code prompt itself."""
    from codeloop.methods.lintseq import canonical_program, extract_code
    from codeloop.methods.lintseq.prompts import response_program, task_instruction

    out, code_as_instruction = [], 0
    for i, rec in enumerate(records):
        for name in (cfg.instruction_field, cfg.field):
            if not isinstance(rec.get(name), str):
                raise UserError(f"record {i} has no string field '{name}'", f"{where}.{'field' if name == cfg.field else 'instruction_field'}")
        code_prompt = rec.get(cfg.code_prompt_field) or "" if cfg.code_prompt_field else ""
        if not isinstance(code_prompt, str):  # e.g. sft_data's conversational records (prompt_format: instruction)
            raise UserError(f"record {i}: field '{cfg.code_prompt_field}' is not the code prompt's text (a "
                            f"{type(code_prompt).__name__}); make the records with prompt_format: completion or "
                            "name another field", f"{where}.code_prompt_field")
        text = rec[cfg.instruction_field]
        if code_prompt and text.strip() == code_prompt.strip():
            code_as_instruction += 1
        program = response_program(canonical_program(extract_code(rec[cfg.field])), cfg.docstrings)
        out.append({**rec, "instruction": task_instruction(text, code_prompt, cfg.signature),
                    "program": canonical_program(program)})
    if out and code_as_instruction == len(out):
        raise UserError(f"every instruction is the record's code prompt ('{cfg.code_prompt_field}'): LintSeq trains on "
                        "the task in words; make the records with `instruction: description` on the sft_data step",
                        f"{where}.instruction_field")
    return out, code_as_instruction


def run_lintseq(ctx: StageContext, cfg: LintSeqStageConfig) -> dict[str, Any]:
    from codeloop.methods.lintseq import LintSeqOptions, lintseq_records, sft_records_from_edits, sft_records_plain
    from codeloop.methods.lintseq.prompts import PLAIN_PROMPT_END

    records = read_jsonl(ctx.output_file(cfg.input, cfg.file))
    inputs, code_as_instruction = lintseq_inputs(records, cfg, f"stages.{ctx.name}")
    options = LintSeqOptions(atomic_strings=cfg.docstrings == "atomic")
    with_edits, stats = lintseq_records(inputs, field="program", s=cfg.s, seed=ctx.seed(cfg.seed),
                                        workers=cfg.workers or os.cpu_count() or 1, options=options)
    sft = sft_records_from_edits(with_edits, instruction_field="instruction", diff_in_prompt=cfg.diff_in_prompt)
    plain = sft_records_plain(inputs, field="program", instruction_field="instruction", prompt_end=PLAIN_PROMPT_END)
    write_jsonl(ctx.stage.path / "edits.jsonl", with_edits)
    write_jsonl(ctx.stage.path / "sft.jsonl", in_format(sft, "sft", cfg.format))
    write_jsonl(ctx.stage.path / "plain.jsonl", in_format(plain, "sft", cfg.format))
    counts = stats.as_dict()
    atomic_write_text(ctx.stage.path / "lintseq_stats.json", json.dumps(counts, indent=2, default=str) + "\n")
    return {"programs": len(records), "sequences": len(sft), "plain_records": len(plain),
            "instruction_is_code_prompt": code_as_instruction,
            **{k: v for k, v in counts.items() if isinstance(v, (int, float))}}


LINTSEQ = Step("lintseq", LintSeqStageConfig, run_lintseq,
               "response programs -> s linter-clean insertion-edit sequences each, as SFT records (sft.jsonl; "
               "the plain arm's records in plain.jsonl)",
               consumes=("sft",), produces=("sft",), output="sft.jsonl")


# -- lintseq_eval -----------------------------------------------------------------------------------

def _check_lintseq_eval(self: Any, where: str) -> None:
    validate_as(EvalConfig, self, where, model="x", seed=0, decode=_decoder_of(self.arm))


def _decoder_of(arm: str) -> str:
    return "lintseq" if arm == "edits" else "none"


# The arm fixes the prompt (the task in words, ending as its training prompts end) and the decoder,
# so the eval's own prompt settings are not offered.
LintSeqEvalConfig = derive(
    "LintSeqEvalConfig", EvalStageConfig, drop=("decode", "prompt_format", "chat"),
    extra=[("arm", str, option("edits", choices=ARMS, help="edits: the model writes LintSeq edits (resolved with "
                                                         "the lintseq decoder); plain: it writes the program.")),
           ("signature", bool, option(True, help=SIGNATURE_HELP))],
    namespace={"check": _check_lintseq_eval, "__module__": __name__})


def lintseq_prompts(problems: list[Any], arm: str, signature: bool = True) -> dict[str, str]:
    """Code prompt -> the text the model is given (`InstructionPrompts` looks them up by prompt)."""
    from codeloop.methods.lintseq.prompts import arm_prompt, problem_instruction

    out: dict[str, str] = {}
    for p in problems:
        text = arm_prompt(problem_instruction(p, signature), arm)
        if out.setdefault(p.prompt, text) != text:
            raise UserError(f"problem {p.task_id} has the code prompt of an earlier problem but another task text",
                            "benchmark")
    return out


def run_lintseq_eval(ctx: StageContext, cfg: Any) -> dict[str, Any]:
    from codeloop.evaluation.harness import backend_options, evaluate
    from codeloop.generation import get_generator
    from codeloop.methods.lintseq import STOP_SEQUENCE
    from codeloop.methods.lintseq.prompts import InstructionPrompts
    from codeloop.problems import load_problems

    adapter = str(ctx.stage_path(cfg.adapter_from) / "final") if cfg.adapter_from else cfg.adapter
    ecfg = EvalConfig(**library_kwargs(cfg, EvalConfig, model=ctx.model(cfg.model), adapter=adapter,
                                       seed=ctx.seed(cfg.seed), executor=ctx.executor, isolation=ctx.isolation,
                                       decode=_decoder_of(cfg.arm)))
    ecfg.validate()
    problems = load_problems(ecfg.benchmark, split=ecfg.resolved_split(), limit=ecfg.limit)
    prompts = lintseq_prompts(problems, cfg.arm, cfg.signature)
    write_jsonl(ctx.stage.path / "prompts.jsonl", [{"task_id": p.task_id, "sent": prompts[p.prompt]}
                                                   for p in problems])
    generator = InstructionPrompts(
        lambda: get_generator(ecfg.backend, ecfg.model, adapter=ecfg.adapter, **(backend_options(ecfg) or {})),
        prompts, [STOP_SEQUENCE] if cfg.arm == "edits" else [])
    m = evaluate(ecfg, ctx.stage.path, generator=generator, problems=problems).metrics
    return {"pass@k": m["pass@k"], "problems": m["n_problems"], "samples": m["n_samples"],
            "status": m["status"], "tokens": m["tokens"], "adapter_from": cfg.adapter_from,
            "benchmark": cfg.benchmark, "split": m["split"], "arm": cfg.arm, "temperature": cfg.temperature,
            "n": cfg.n}


LINTSEQ_EVAL = Step("lintseq_eval", LintSeqEvalConfig, run_lintseq_eval,
                    "evaluate a LintSeq or plain arm on its training prompt format (task in words + signature; "
                    "code prompt + decoded program executed)",
                    produces=("eval",), sandbox=True, summarize=eval_summary)


# -- lintseq_report ---------------------------------------------------------------------------------

@dataclass
class LintSeqReportConfig:
    evals: list[dict] = option(default_factory=list, help="One entry per evaluation: {label, eval: an eval or "
                                                          "lintseq_eval step, train: the train step it evaluates "
                                                          "(optional; its optimizer steps are reported)}.")
    title: str = option("LintSeq vs plain SFT", help="The report's title.")

    def check(self, where: str) -> None:
        if not self.evals:
            raise UserError("needs at least one entry {label, eval}", f"{where}.evals")
        for i, row in enumerate(self.evals):
            if not isinstance(row, dict):
                raise UserError("each entry is a mapping {label, eval, train}", f"{where}.evals[{i}]")
            for key in ("label", "eval"):
                if not isinstance(row.get(key), str) or not row[key]:
                    raise UserError(f"missing '{key}' (a string)", f"{where}.evals[{i}].{key}")
            extra = set(row) - {"label", "eval", "train"}
            if extra:
                raise UserError(f"unknown key '{sorted(extra)[0]}' (keys: label, eval, train)", f"{where}.evals[{i}]")


    def stage_refs(self) -> list[tuple[str, str]]:
        """The earlier steps the entries name, (key, name), for the recipe loader to check."""
        return [(f"evals[{i}].{k}", row[k]) for i, row in enumerate(self.evals) for k in ("eval", "train")
                if isinstance(row, dict) and row.get(k)]


def run_lintseq_report(ctx: StageContext, cfg: LintSeqReportConfig) -> dict[str, Any]:
    from codeloop.methods.lintseq.report import arm_summary, write_report
    from codeloop.rundir import RunDir

    arms = []
    for row in cfg.evals:
        path = ctx.stage_path(row["eval"])
        metrics = json.loads(ctx.output_file(row["eval"], "metrics.json").read_text())
        results = RunDir(path).stage("results").records()
        steps = None
        if row.get("train"):
            steps = json.loads(ctx.output_file(row["train"], "metrics.json").read_text()).get("steps")
        arms.append(arm_summary(row["label"], metrics, results, train_steps=steps))
    return write_report(arms, ctx.stage.path, cfg.title)


LINTSEQ_REPORT = Step("lintseq_report", LintSeqReportConfig, run_lintseq_report,
                      "LintSeq vs plain: pass@k over k and over generated tokens, malformed outputs, distinct "
                      "correct programs (report.md, PNG plots)", produces=("report",), plot="passk.png")

