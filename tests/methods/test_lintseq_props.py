"""Property-based: over generated programs every state lints clean, every hunk is an insertion,
and resolving the edits rebuilds the program exactly."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeloop.linting import LintConfig
from codeloop.methods.lintseq import (
    LintSeqOptions, canonical_program, linter_for, lintseq_program, parse_hunks, resolve)

NAMES = ["a", "b", "total", "items", "x"]


@st.composite
def statements(draw, depth: int, unit: str, defined: list[str]) -> list[str]:
    """A block of statements at `depth`, using only names already defined (so the program is
    usually lint-clean, which makes the property meaningful)."""
    pad = unit * depth
    out: list[str] = []
    local = list(defined)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["assign", "assign", "if", "for", "comment", "blank", "call",
                                     "string"] if depth < 3 else ["assign", "call", "comment"]))
        if kind == "assign":
            name = draw(st.sampled_from(NAMES))
            value = draw(st.sampled_from(local)) + " + 1" if local else str(draw(st.integers(0, 9)))
            out.append(f"{pad}{name} = {value}")
            local.append(name)
        elif kind == "call":
            out.append(f"{pad}print({', '.join(local[-2:]) or '0'})")
        elif kind == "comment":
            out.append(f"{pad}# note {draw(st.integers(0, 99))}")
        elif kind == "blank":
            out.append("")
        elif kind == "string":
            out += [f'{pad}s = """first', "no indent here", f'{pad}  last"""', f"{pad}print(s)"]
        elif kind == "if":
            cond = local[-1] if local else "True"
            out.append(f"{pad}if {cond}:")
            out += draw(statements(depth + 1, unit, local))
            if draw(st.booleans()):
                out.append(f"{pad}else:")
                out += draw(statements(depth + 1, unit, local))
        elif kind == "for":
            out.append(f"{pad}for i in range(3):")
            out += draw(statements(depth + 1, unit, local + ["i"]))
    if all(not line.strip() or line.lstrip().startswith("#") for line in out):
        out.append(f"{pad}pass")
    return out


@st.composite
def programs(draw) -> str:
    unit = draw(st.sampled_from(["    ", "    ", "\t", "  "]))
    lines: list[str] = []
    if draw(st.booleans()):
        lines += ["# a module comment", "import math", ""]
    functions = []
    for k in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            lines.append("@functools.lru_cache(maxsize=None)")
            if "import functools" not in lines:
                lines.insert(0, "import functools")
        lines.append(f"def f{k}(a, b=2):")
        if draw(st.booleans()):
            lines += [f'{unit}"""Doc of f{k}.', "", f'{unit}More text."""']
        lines += draw(statements(1, unit, ["a", "b"]))
        lines.append(f"{unit}return a")
        lines.append("")
        functions.append(f"f{k}")
    if draw(st.booleans()):
        lines += ["class Box:", f"{unit}size = 1", "", f"{unit}def grow(self, n):",
                  f"{unit}{unit}return self.size + n", ""]
    lines += [f"print({name}(1))" for name in functions]
    return canonical_program("\n".join(lines))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(), seed=st.integers(0, 10_000))
def test_every_sequence_is_clean_insertion_only_and_exact(program, seed):
    compile(program, "<generated>", "exec")  # the generator only makes valid programs
    options = LintSeqOptions()
    result = lintseq_program(program, s=2, seed=seed, options=options)
    assert result["rejects"] == []
    linter = linter_for(options.lint_config(program))
    for _, edits in result["sequences"]:
        assert resolve(edits) == program
        state: list[str] = []
        for k, diff in enumerate(edits):
            hunks, malformed = parse_hunks(diff, strict=True)
            assert malformed == 0 and hunks
            for h in hunks:
                assert not h.removed and h.old_len == 0 and len(h.added) == h.new_len
                state[h.new_start - 1:h.new_start - 1] = h.added
            if k < len(edits) - 1:
                assert linter.is_clean("\n".join(state)), ("\n".join(state), linter.flagged_lines("\n".join(state)))
        assert "\n".join(state) == program


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs())
def test_same_seed_same_sequences(program):
    a = lintseq_program(program, s=2, seed=3)
    b = lintseq_program(program, s=2, seed=3)
    assert a["sequences"] == b["sequences"]


def test_official_indent_mode_on_a_tab_program_still_yields_valid_sequences():
    program = "def f(a):\n\tif a:\n\t\treturn 1\n\treturn 2\n\n\nprint(f(1))"
    options = LintSeqOptions(indent="official")
    result = lintseq_program(program, s=3, seed=0, options=options)
    linter = linter_for(LintConfig())
    for _, edits in result["sequences"]:
        assert resolve(edits) == program
        for k in range(1, len(edits)):
            assert linter.is_clean(resolve(edits[:k]))
