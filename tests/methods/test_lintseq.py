"""LintSeq: sampling rules, diffs, resolve/decode, training text, records, CLI."""

from __future__ import annotations

import difflib
import json
import random

import pytest
import typer

from codeloop.linting import LintConfig
from codeloop.methods.lintseq import (
    DIFF_TOKEN, STOP_SEQUENCE, LintSeqOptions, canonical_program, completion_text, decode_generated,
    decode_generated_detail, extract_code, insertion_diff, line_indents, linter_for, lintseq_program,
    lintseq_records, resolve, sampleable_lines, sft_records_from_edits, sft_records_plain,
    training_text, verify_sequence)

PROGRAM = '''import math


def area(r):
    """Area of a circle.

    >>> round(area(1), 2)
    3.14
    """
    # pi r squared
    if r < 0:
        raise ValueError("negative")
    return math.pi * r ** 2


print(area(2))'''


def _check(program: str, edits: list[str], config: LintConfig = LintConfig()) -> None:
    linter = linter_for(config)
    assert verify_sequence(program, edits, linter) == []
    assert resolve(edits) == program
    for diff in edits:
        for line in diff.split("\n"):
            assert line.startswith(("@@ ", "+")), line
            if line.startswith("@@"):
                assert ",0 +" in line.split(" ")[1] + " +"


def test_sampleable_lines_and_indents_follow_the_official_rules():
    lines = ["X = [", "    1,", "]", "# comment", "", "def f():", "    # inner", "    return X", "y = f()"]
    assert sampleable_lines(lines) == [0, 5, 7, 8]
    # blank and one-character lines inherit the previous indentation
    assert line_indents(["if a:", "    b = (", "        10", ")", "", "cc"]) == [0, 4, 8, 8, 8, 0]


def test_insertion_diff_has_difflib_format():
    rng = random.Random(3)
    lines = [f"line {i}" for i in range(12)]
    for _ in range(200):
        after = sorted(rng.sample(range(12), rng.randint(1, 12)))
        before = sorted(rng.sample(after, rng.randint(0, len(after) - 1)))
        ours = insertion_diff(lines, before, after)
        theirs = list(difflib.unified_diff([lines[i] for i in before], [lines[i] for i in after],
                                           n=0, lineterm=""))[2:]
        assert ours == "\n".join(theirs)


def test_program_becomes_verified_sequences():
    res = lintseq_program(PROGRAM, s=4, seed=1)
    assert res["rejects"] == [] and res["program_clean"] is True
    assert len(res["sequences"]) == 4
    for _, edits in res["sequences"]:
        _check(PROGRAM, edits)
    # the sequences are samples, not copies of one another
    assert len({tuple(e) for _, e in res["sequences"]}) > 1


def test_tabs_are_linted_with_the_programs_own_indent():
    code = "def f(x):\n\tif x:\n\t\treturn 1\n\treturn 2\n\n\nprint(f(1))"
    res = lintseq_program(code, s=5, seed=0)
    assert res["rejects"] == [] and res["program_clean"] is True
    for _, edits in res["sequences"]:
        _check(code, edits, LintConfig(indent_string="\t"))
    # official mode: pylint's 4-space rule flags every tab-indented line, as in the official code,
    # so all indented lines arrive together in the last edit
    official = lintseq_program(code, s=5, seed=0, options=LintSeqOptions(indent="official"))
    assert official["program_clean"] is False
    for _, edits in official["sequences"]:
        assert resolve(edits) == code
        assert "\t\treturn 1" in edits[-1] and "\treturn 2" in edits[-1]
    assert sum(len(e) for _, e in res["sequences"]) > sum(len(e) for _, e in official["sequences"])


def test_comments_decorators_and_multiline_strings():
    code = '''# header comment
import functools


@functools.lru_cache(maxsize=None)
def fib(n):
    # a comment inside
    text = """
multi-line string
  with odd indentation
"""
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class Point:
    @property
    def norm(self):
        return 0


print(fib(10), Point().norm)'''
    res = lintseq_program(code, s=5, seed=4)
    assert res["rejects"] == []
    for _, edits in res["sequences"]:
        _check(code, edits)
        # a decorator never appears in a state without the definition it decorates
        for k in range(1, len(edits)):
            state = resolve(edits[:k]).split("\n")
            for i, line in enumerate(state):
                if line.strip().startswith("@"):
                    assert state[i + 1].lstrip().startswith(("def ", "class ", "@"))


def test_inputs_that_do_not_parse_or_have_no_code_are_rejected_with_reason():
    bad = lintseq_program("def f(:\n    return 1", s=2, seed=0)
    assert bad["sequences"] == []
    assert [r["kind"] for r in bad["rejects"]] == ["invalid_input"] * 2
    assert "syntax error in the input at line 1" in bad["rejects"][0]["reason"]
    empty = lintseq_program("# nothing\n\n", s=1, seed=0)
    assert empty["rejects"][0]["reason"] == "no code in the program"
    sep = lintseq_program(f"x = '{DIFF_TOKEN}'", s=1, seed=0)
    assert "separator" in sep["rejects"][0]["reason"]


def test_input_with_lint_errors_is_kept_and_flagged_lines_come_last():
    code = "import not_a_real_module_xyz\n\nx = 1\ny = not_a_real_module_xyz.f(x)\nprint(x)"
    res = lintseq_program(code, s=2, seed=0)
    assert res["program_clean"] is False and res["rejects"] == []
    for _, edits in res["sequences"]:
        assert resolve(edits) == code
        assert "import not_a_real_module_xyz" in edits[-1]
        assert verify_sequence(code, edits, linter_for(LintConfig())) == []


def test_canonical_program_and_markdown_extraction():
    assert canonical_program("\n\nx = 1\r\ny = 2\n\n") == "x = 1\ny = 2"
    assert extract_code("Sure:\n```python\nx = 1\n```\nand\n```python\ny = 2\n```") == "x = 1\n\n\ny = 2"
    assert extract_code("x = 1") == "x = 1"


def test_training_text_matches_the_official_formula():
    edits = ["@@ -0,0 +1 @@\n+x = 1", "@@ -1,0 +2 @@\n+print(x)"]
    expected = "Write it." + "\n<|diff|>".join([""] + edits + ["", ""])
    assert training_text("Write it.", edits) == expected
    assert completion_text(edits).endswith(STOP_SEQUENCE)
    recs = [{"prompt": "P", "edits": edits, "code": "x = 1\nprint(x)"}, {"prompt": "Q", "edits": []}]
    # The training text is the official one; its first separator ends the prompt, as at test time.
    assert sft_records_from_edits(recs) == [{"prompt": "P\n<|diff|>", "completion": completion_text(edits, True)}]
    assert sft_records_from_edits(recs, diff_in_prompt=False) == [{"prompt": "P", "completion": completion_text(edits)}]
    (row,) = sft_records_from_edits(recs)
    assert row["prompt"] + row["completion"] == training_text("P", edits)
    assert sft_records_plain(recs[:1]) == [{"prompt": "P", "completion": "x = 1\nprint(x)"}]
    assert resolve(completion_text(edits)) == "x = 1\nprint(x)"


def test_resolve_is_strict():
    with pytest.raises(ValueError, match="not an insertion"):
        resolve(["@@ -1 +0,0 @@\n-x = 1"])
    with pytest.raises(ValueError, match="does not fit"):
        resolve(["@@ -0,0 +3 @@\n+x = 1"])
    with pytest.raises(ValueError, match="says 2 lines"):
        resolve(["@@ -0,0 +1,2 @@\n+x = 1"])
    with pytest.raises(ValueError, match="not part of"):
        resolve(["@@ -0,0 +1 @@\n+x = 1\nstray"])


def test_decode_generated_is_tolerant_and_counts():
    good = completion_text(["@@ -0,0 +1,2 @@\n+def f():\n+    return 1", "@@ -2,0 +3 @@\n+print(f())"])
    assert decode_generated(good + "garbage after the stop") == "def f():\n    return 1\nprint(f())"
    messy = ("\n<|diff|>@@ -0,0 +1 @@\n+x = 1"
             "\n<|diff|>this is not a hunk"
             "\n<|diff|>@@ -1 +1 @@\n-x = 1\n+x = 2"  # not an insertion: skipped
             "\n<|diff|>@@ -9,0 +10 @@\n+y = x"  # past the end: appended, counted
             "\n<|diff|>@@ broken header")
    d = decode_generated_detail(messy)
    assert d.program == "x = 1\ny = x"
    assert d.hunks_applied == 2 and d.hunks_malformed == 4
    assert decode_generated("") == ""


def test_records_output_and_determinism_across_workers():
    records = [{"task_id": f"t{i}", "prompt": f"p{i}", "code": PROGRAM.replace("2))", f"{i}))")}
               for i in range(6)]
    records.append({"task_id": "bad", "prompt": "x", "code": "def (:"})
    records.append({"task_id": "md", "prompt": "y", "response": "```python\nz = 3\nprint(z)\n```"})
    one, stats1 = lintseq_records(records, s=2, seed=5, workers=1)
    two, stats2 = lintseq_records(records, s=2, seed=5, workers=2)
    assert one == two
    assert stats1.sequences == 14 and stats1.rejected == {"invalid_input": 2}
    assert [r["index"] for r in stats1.rejects] == [6, 6]
    assert stats1.lint["checks"] == stats2.lint["checks"]  # memo hits differ per process
    for rec in one:
        program = rec["lintseq"].get("program") or canonical_program(rec.get("code") or rec["response"])
        assert resolve(rec["edits"]) == program
    assert one[-1]["lintseq"]["program"] == "z = 3\nprint(z)"
    other_seed, _ = lintseq_records(records, s=2, seed=6, workers=1)
    assert [r["edits"] for r in other_seed] != [r["edits"] for r in one]
    with pytest.raises(KeyError, match="record 0 has no field 'nope'"):
        lintseq_records(records, field="nope")


def _cli(monkeypatch):
    from codeloop import cli
    from codeloop.commands import lintseq as lintseq_cmd

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    lintseq_cmd.register(app)
    monkeypatch.setattr(cli, "app", app)
    return cli.main


def test_cli_writes_edits_and_rejects(tmp_path, monkeypatch):
    main = _cli(monkeypatch)
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"task_id": "a", "completion": "def f(x):\n    return x + 1\n\n\nprint(f(1))\n"},
        {"task_id": "b", "completion": "def f(:\n"},
    ]) + "\n")
    out = tmp_path / "e.jsonl"
    assert main(["lintseq", "--data", str(data), "-s", "3", "--out", str(out), "--workers", "1"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["task_id"] == "a" for r in rows)
    assert all(resolve(r["edits"]) == "def f(x):\n    return x + 1\n\n\nprint(f(1))" for r in rows)
    rejects = [json.loads(line) for line in (tmp_path / "e.rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 3 and rejects[0]["line"] == 2 and rejects[0]["kind"] == "invalid_input"
    # user mistakes: exit 2 naming the field / option
    assert main(["lintseq", "--data", str(data), "--out", str(out), "--field", "code"]) == 2
    assert main(["lintseq", "--data", str(data), "--out", str(out), "--errors", "Q"]) == 2
    assert main(["lintseq", "--data", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
