"""EvalPlus-format sets: inputs only; the expected outputs are the reference's, computed in the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeloop.execution import ExecConfig, execute_samples
from codeloop.execution.reference import needs_reference, with_reference_tests
from codeloop.problems import load_problems
from codeloop.problems.evalplus import python_inputs
from codeloop.records import Sample

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "mbppplus.jsonl"

ROWS = [
    {"task_id": "Plus/0", "entry_point": "halve", "prompt": "def halve(x):\n    \"\"\"Half of x.\"\"\"\n",
     "canonical_solution": "    return x / 2\n", "base_input": [[2], [4]], "plus_input": [[3], [1e300], [-7]],
     "atol": 0},
    {"task_id": "Plus/1", "entry_point": "uniq", "prompt": "def uniq(xs):\n    \"\"\"Sorted distinct items.\"\"\"\n",
     "canonical_solution": "    return sorted(set(xs))\n", "base_input": [[[1, 1]]],
     "plus_input": [[[3, 2, 3, 1]], [["b", "a", "b"]]], "atol": 0},
]


@pytest.fixture
def plus_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CODELOOP_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "plus.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return p


def _run(problems, codes):
    samples = [Sample(task_id=p.task_id, code=p.prompt + c) for p, c in zip(problems, codes)]
    return execute_samples(problems, samples, ExecConfig(workers=1, timeout_s=10), progress=False)


def test_expected_outputs_are_the_references(plus_file):
    problems = load_problems(f"humaneval+:{plus_file}")
    assert all(needs_reference(p) for p in problems)
    built = with_reference_tests({p.task_id: p for p in problems}, ExecConfig(workers=1))
    test = built["Plus/0"].test
    for value in (1.0, 2.0, 1.5, 5e299, -3.5):  # x / 2 on each input, as the reference returns it
        assert f", {value!r}, 0.0)" in test
    assert "['a', 'b']" in built["Plus/1"].test
    rs = _run(problems, [p.canonical_solution for p in problems])
    assert [(r.status, r.passed_tests, r.total_tests) for r in rs] == [("passed", 5, 5), ("passed", 3, 3)]


def test_a_solution_right_on_the_base_inputs_fails_the_plus_ones(plus_file):
    wrong = ["    return x // 2\n", "    return sorted(set(xs))\n"]  # integer halving: right on 2 and 4 only
    base = _run(load_problems(f"humaneval+:{plus_file}:base"), wrong)
    plus = _run(load_problems(f"humaneval+:{plus_file}"), wrong)
    assert base[0].status == "passed" and plus[0].status == "failed"
    assert base[1].status == plus[1].status == "passed"


def test_mbpp_inputs_take_the_types_the_task_takes():
    assert python_inputs("Mbpp/2", [[[1, 2], [3]]], mbpp=True) == [[(1, 2), (3,)]]
    assert python_inputs("Mbpp/124", [["0", "1j"]], mbpp=True) == [[0.0, 1j]]
    assert python_inputs("Mbpp/2", [[[1, 2], [3]]], mbpp=False) == [[[1, 2], [3]]]


@pytest.mark.skipif(not SHARED.exists(), reason=f"MBPP+ data not found at {SHARED}")
def test_mbpp_plus_catches_a_solution_that_passes_base_mbpp(monkeypatch, tmp_path):
    monkeypatch.setenv("CODELOOP_CACHE", str(tmp_path / "cache"))
    pick = lambda spec: [p for p in load_problems(spec) if p.task_id in ("Mbpp/3", "Mbpp/11")]  # noqa: E731
    canonical = [p.canonical_solution for p in pick(f"mbpp+:{SHARED}")]
    assert [r.status for r in _run(pick(f"mbpp+:{SHARED}"), canonical)] == ["passed", "passed"]
    # is_not_prime as a lookup of the base inputs: MBPP's own tests pass, MBPP+'s do not
    wrong = "    return n in (1, 10, 35)\n"
    base, plus = pick(f"mbpp+:{SHARED}:base"), pick(f"mbpp+:{SHARED}")
    i = [p.task_id for p in base].index("Mbpp/3")
    assert _run([base[i]], [wrong])[0].status == "passed"
    assert _run([plus[i]], [wrong])[0].status == "failed"
