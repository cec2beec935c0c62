"""LintSeq as the paper trains and evaluates it: the task in words -> edits of the response program,
the same prompt (text and tokens) at training and test time, code prompt + decoded program executed,
and the paper's comparison report."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from codeloop.methods.lintseq import (STOP_SEQUENCE, LintSeqOptions, boundary_mismatch, completion_text,
                                      decode_sample, lintseq_program, problem_instruction, prompt_context,
                                      response_program, sample_states, signature_of, strip_docstrings,
                                      task_instruction)
from codeloop.methods.lintseq.sampling import linter_for
from codeloop.records import Problem, Sample, read_jsonl


def _docstring_lines(code_prompt: str) -> list[str]:
    """The lines of every docstring in a code prompt, stripped (long enough not to be code too)."""
    tree = ast.parse(code_prompt)
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    lines = []
    for node in nodes:
        doc = ast.get_docstring(node, clean=False)
        if doc:
            lines += [ln.strip() for ln in doc.splitlines() if len(ln.strip()) >= 8]
    return lines


def _lintseq_run(tmp_path: Path, extra: str = "", limit: int = 4) -> Path:
    from codeloop.pipeline.recipe import load_recipe
    from codeloop.pipeline.runner import run_recipe

    recipe = tmp_path / "ls.yaml"
    recipe.write_text(f"""
name: ls
stages:
  - {{name: data, type: sft_data, problems: humaneval, split: null, limit: {limit}, instruction: description}}
  - {{name: edits, type: lintseq, input: data, s: 2, workers: 1{extra}}}
""")
    run_recipe(load_recipe(recipe), tmp_path / "runs", write_report=False)
    return tmp_path / "runs" / "ls"


def test_lintseq_target_contains_no_line_of_the_prompt_docstring(tmp_path):
    from codeloop.problems import load_problems

    run = _lintseq_run(tmp_path)
    problems = {p.task_id: p for p in load_problems("humaneval", limit=4)}
    sft = read_jsonl(run / "edits" / "sft.jsonl")
    assert len(sft) == 8
    for rec in sft:
        problem = problems[rec["task_id"]]
        doc = _docstring_lines(problem.prompt)
        assert doc, problem.task_id
        inserted = [ln[1:].strip() for ln in rec["completion"].splitlines() if ln.startswith("+")]
        assert not set(doc) & set(inserted), problem.task_id
        # The prompt is the task in words with the signature, ending with the first separator.
        assert rec["prompt"] == problem_instruction(problem) + "\n<|diff|>"
        assert signature_of(problem.prompt) in rec["prompt"] and "def " not in rec["prompt"]
        assert rec["completion"].startswith("@@ -0,0 +1") and rec["completion"].endswith(STOP_SEQUENCE)
    plain = read_jsonl(run / "edits" / "plain.jsonl")
    assert len(plain) == 4
    for rec in plain:
        assert rec["prompt"] == problem_instruction(problems[rec["task_id"]]) + "\n"
        assert '"""' not in rec["completion"] and rec["completion"].lstrip().startswith(("from", "import", "def"))


def test_atomic_docstrings_arrive_whole(tmp_path):
    run = _lintseq_run(tmp_path, ", docstrings: atomic", limit=2)
    for rec in read_jsonl(run / "edits" / "edits.jsonl"):
        program = rec["program"]
        assert '"""' in program  # kept
        for diff in rec["edits"]:
            added = "\n".join(ln[1:] for ln in diff.splitlines() if ln.startswith("+"))
            # Every docstring lies inside one edit: its quotes come in pairs within the edit.
            assert added.count('"""') % 2 == 0


def test_atomic_strings_keep_multiline_strings_in_one_piece():
    program = ('def f(x):\n    """Add one.\n\n    13\n    """\n    y = x + 1\n    return y\n\n'
               'TEXT = """a\nb"""\nprint(f(TEXT))')
    linter = linter_for(LintSeqOptions().lint_config(program))
    lines = program.split("\n")
    for seed in range(20):
        _, states = sample_states(program, random.Random(seed), linter, LintSeqOptions(atomic_strings=True))
        for state in states:
            present = set(state)
            for block in (range(1, 5), range(8, 10)):
                assert all(i in present for i in block) or not any(i in present for i in block)
    # Without the switch (the official sampling) the docstring's lines come one by one.
    split = set()
    for seed in range(20):
        _, states = sample_states(program, random.Random(seed), linter, LintSeqOptions())
        split |= {seed for st in states if 3 in st and 1 not in st}
    assert split and lines[3].strip() == "13"


def test_strip_docstrings():
    code = ('"""Module."""\nimport os\n\n\nclass A:\n    """Doc\n    more."""\n    x = 1\n\n\n'
            'def f(a):\n    """Only a docstring."""\n\n\ndef g(): "same line"; return 1\n')
    out = strip_docstrings(code)
    assert "Module" not in out and "Doc" not in out and "more" not in out and "Only" not in out
    assert "    pass" in out and '"same line"' in out
    ast.parse(out)
    assert response_program(code, "atomic") == code
    with pytest.raises(ValueError):
        response_program(code, "split")


def test_task_instruction_names_the_signature():
    prompt = 'import re\ndef remove_Occ(s,ch):\n    """\n    Write a python function to remove ...\n    """\n'
    assert signature_of(prompt) == "remove_Occ(s, ch)"
    assert task_instruction("Write a python function to remove first and last occurrence.", prompt) == \
        "Write a python function `remove_Occ(s, ch)` to remove first and last occurrence."
    assert task_instruction("Sum the list.", "def total(xs: list) -> int:\n") == \
        "Write a Python function `total(xs: list) -> int` to solve the following problem:\nSum the list."
    assert task_instruction("Sum the list.", "def total(xs):\n", signature=False) == "Sum the list."
    assert task_instruction("Call total(xs: list) -> int.", "def total(xs: list) -> int:\n") == \
        "Call total(xs: list) -> int."


def test_eval_executes_code_prompt_plus_decoded_program():
    from codeloop.execution import ExecConfig, execute_samples

    prompt = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n'
    program = "def total(xs: List[int]) -> int:\n    s = 0\n    for x in xs:\n        s += x\n    return s"
    (_, edits), = lintseq_program(program, s=1, seed=0)["sequences"]
    sample = decode_sample(Sample(task_id="t", prompt=prompt, completion=completion_text(edits, True)))
    assert sample.code == prompt + "\n" + program + "\n" and sample.extra["decode"]["hunks_malformed"] == 0
    problem = Problem(task_id="t", prompt=prompt, entry_point="total", test="assert total([1, 2, 3]) == 6\n")
    (result,) = execute_samples([problem], [sample], ExecConfig(workers=1), progress=False)
    assert result.status == "passed"
    # An instruction (not code) contributes nothing; a bare signature gets a body.
    assert prompt_context("Write a function `total(xs)`.\n<|diff|>") == ""
    assert prompt_context("def f(x):\n") == "def f(x):\n    pass\n"


def _tokenizers():
    from codeloop.models import load_tokenizer

    out = []
    for name in ("default", "coder"):
        try:
            out.append(load_tokenizer(name))
        except Exception:  # not installed here: the tiny tokenizer below still checks the rule
            continue
    return out


def test_prompt_tokens_are_the_same_at_training_and_test_time(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from codeloop.pipeline.stages_lintseq import lintseq_prompts
    from codeloop.problems import load_problems

    run = _lintseq_run(tmp_path, limit=3)
    problems = load_problems("humaneval", limit=3)
    by_task = {p.task_id: p for p in problems}
    sent = {arm: lintseq_prompts(problems, arm) for arm in ("edits", "plain")}
    records = {"edits": read_jsonl(run / "edits" / "sft.jsonl"), "plain": read_jsonl(run / "edits" / "plain.jsonl")}
    tokenizers = [AutoTokenizer.from_pretrained(tiny_model_dir)] + _tokenizers()
    for arm, recs in records.items():
        for rec in recs:
            # The text: what training conditions on is exactly what the eval sends.
            assert rec["prompt"] == sent[arm][by_task[rec["task_id"]].prompt]
            for tok in tokenizers:
                assert boundary_mismatch(tok, rec["prompt"], rec["completion"]) is None, type(tok).__name__


def test_boundary_check_catches_a_merge(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # The old split: a prompt ending in "\n" and a completion starting with "\n<|diff|>"; a
    # byte-level BPE that knows "\n\n" (or any pair) merges them only in the training text.
    merged = [(p, c) for p, c in (("x = 1\n", "\nprint(x)"), ("def f(a, b):\n", "    return a + b"))
              if boundary_mismatch(tok, p, c) is not None]
    assert merged, "the tiny tokenizer merges across none of these boundaries"


def test_report_counts_and_plots(tmp_path):
    from codeloop.methods.lintseq.report import arm_summary, passk_curve, write_report

    def res(task, i, status, code, decode=None, tokens=10):
        return {"task_id": task, "sample_id": i, "status": status, "code": code, "n_tokens": tokens,
                "extra": {"decode": decode} if decode else {}}

    ok = {"edits": 2, "hunks_applied": 2, "hunks_malformed": 0}
    bad = {"edits": 1, "hunks_applied": 1, "hunks_malformed": 1}
    edits = [res("a", 0, "passed", "x=1", ok), res("a", 1, "passed", "x = 2", ok), res("a", 2, "passed", "x=1 ", bad),
             res("b", 0, "failed", "", bad), res("b", 1, "failed", "y", ok), res("b", 2, "passed", "z", ok)]
    plain = [res(t, i, "passed" if t == "a" else "failed", "p", tokens=5) for t in "ab" for i in range(3)]
    curve = passk_curve(edits)
    assert curve[1] == pytest.approx((1 + 1 / 3) / 2) and curve[3] == 1.0
    metrics = {"benchmark": "mbpp", "split": "test", "n_problems": 2, "config": {"temperature": 0.8, "n": 3}}
    arms = [arm_summary("lintseq", metrics, edits, train_steps=100), arm_summary("plain", metrics, plain, train_steps=60)]
    assert arms[0]["malformed"] == {"samples": 6, "malformed": 2, "no_hunk": 0, "hunks_malformed": 2}
    assert arms[1]["malformed"] is None
    assert arms[0]["distinct_correct"] == {"per_problem": 1.5, "per_solved_problem": 1.5}
    assert arms[0]["tokens_per_sample"] == 10
    write_report(arms, tmp_path, "t")
    md = (tmp_path / "report.md").read_text()
    assert "| lintseq | mbpp test | 0.8 | 3 |" in md and "2/6 (33.3%)" in md and "not trained for equal" in md
    assert (tmp_path / "passk.png").stat().st_size > 0 and (tmp_path / "passk_tokens.png").stat().st_size > 0
