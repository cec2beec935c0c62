"""The fast linter gives pylint's verdicts: agreement with a fresh pylint run per state."""

from __future__ import annotations

import random

import pytest

from codeloop.linting import LintConfig, Linter, detect_indent, reference_messages, syntax_error_message
from codeloop.problems import load_problems


def _humaneval_programs(n: int) -> list[str]:
    return [p.prompt + p.canonical_solution for p in load_problems("humaneval", limit=n)]


def _broken_variants(code: str, rng: random.Random) -> list[str]:
    """Deliberately broken or partial versions, like the states LintSeq visits."""
    lines = code.rstrip("\n").split("\n")
    code_lines = [i for i, line in enumerate(lines) if line.strip()]
    out = []
    for _ in range(2):  # one line deleted (often a syntax error or an undefined name)
        i = rng.choice(code_lines)
        out.append("\n".join(lines[:i] + lines[i + 1:]))
    i = rng.choice(code_lines)  # a block header deleted, body kept (indentation error)
    out.append("\n".join(lines[:i] + lines[i + 1:]))
    cut = rng.randrange(1, len(lines) + 1)  # a prefix (unclosed blocks, strings, brackets)
    out.append("\n".join(lines[:cut]))
    returns = [i for i, line in enumerate(lines) if line.strip().startswith("return ")]
    if returns:  # a function without its return: assignment-from-no-return and friends
        j = returns[-1]
        out.append("\n".join(lines[:j] + [lines[j].replace("return ", "pass  # ", 1)] + lines[j + 1:]))
    out.append(code.replace("    ", "  "))  # two-space indentation: bad-indentation
    out.append(code + "\nresult = undefined_name + 1\n")
    out.append("import not_a_real_module_xyz\n" + code)
    return out


def test_fast_linter_agrees_with_fresh_pylint_on_corpus():
    rng = random.Random(7)
    corpus = []
    for code in _humaneval_programs(25):
        corpus.append(code)
        corpus.extend(_broken_variants(code, rng))
    corpus += [
        "class A:\n    def __init__(self):\n        self.a = 1\n\n\nclass B(A):\n"
        "    def __init__(self):\n        self.b = 2\n",  # W0231
        "def f():\n    r = None\n    return r[0]\n",  # E1136
        "import sys\nif sys.argv:\n    y = 1\nprint(y)\n",  # E0606
        "x = (1,\n",  "return 1\n", "", "# just a comment\n",
        "if True:\n    x = 1\n    if x:\n\ty = 2\n",  # tabs and spaces mixed
        'def f():\n    """doc\n    more\n',  # unterminated docstring
        "@property\n",  # decorator without a function
    ]
    linter = Linter()
    disagreements = []
    unclean = 0
    for code in corpus:
        fast = linter.messages(code)
        ref = reference_messages(code)
        if fast != ref:
            disagreements.append((code, fast, ref))
        unclean += bool(ref)
        assert linter.flagged_lines(code) == sorted({m.flagged_line() for m in ref})
    assert not disagreements, disagreements[:2]
    # The corpus exercises every tier, and has both clean and flagged states.
    assert linter.stats.syntax_fastpath > 10 and linter.stats.pylint_calls > 50
    assert 30 < unclean < len(corpus) - 20
    # Second pass: all cached, same answers.
    for code in corpus[:20]:
        assert linter.messages(code) == reference_messages(code)
    assert linter.stats.memo_hits >= 20


def test_new_content_is_not_served_stale():
    linter = Linter(memo_size=0)
    assert linter.is_clean("x = 1\nprint(x)\n")
    assert linter.flagged_lines("print(x)\n") == [1]
    assert linter.is_clean("x = 1\nprint(x)\n")


def test_syntax_error_line_rule_matches_official():
    # "expected an indented block after ... on line N": the official code deletes line N.
    code = "x = 1\nif x:\ny = 2\n"
    msg = syntax_error_message(code)
    assert msg is not None and msg.msg_id == "E0001" and msg.line == 3
    assert msg.flagged_line() == 2
    assert Linter().flagged_lines(code) == [2]
    assert syntax_error_message("x = 1\n") is None


def test_indentation_unit_is_configurable():
    tab_code = "def f(x):\n\treturn x\n"
    assert detect_indent(tab_code) == "\t"
    assert detect_indent("def f():\n  return 1\n") == "  "
    assert detect_indent("x = 1\n") == "    "
    official = Linter(LintConfig())
    assert [m.msg_id for m in official.messages(tab_code)] == ["W0311"]
    tabs = Linter(LintConfig(indent_string="\t"))
    assert tabs.is_clean(tab_code)
    assert tabs.messages(tab_code) == reference_messages(tab_code, LintConfig(indent_string="\t"))
    assert not tabs.is_clean("def f(x):\n    return x\n")


def test_error_set_is_configurable():
    no_return = "def f(x):\n    pass\ny = f(1)\n"
    assert [m.msg_id for m in Linter().messages(no_return)] == ["E1111"]
    only_syntax = Linter(LintConfig(errors=("E0001",)))
    assert only_syntax.is_clean(no_return)
    assert only_syntax.is_clean("print(undefined_name)\n")
    assert not only_syntax.is_clean("def f(:\n")
    with_unused = Linter(LintConfig(errors=("E", "W0611")))
    assert [m.msg_id for m in with_unused.messages("import os\n")] == ["W0611"]
    with pytest.raises(ValueError, match="not a pylint category"):
        LintConfig(errors=("X1",))
    with pytest.raises(ValueError, match="spaces or a tab"):
        LintConfig(indent_string="-")
