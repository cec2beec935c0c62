"""Judges, pass@k, execute_samples and the `execute` / `passk` commands."""

from __future__ import annotations

import json
import math
from collections import Counter
from itertools import combinations

import pytest

from codeloop.cli import main
from codeloop.errors import UserError
from codeloop.execution import (ExecConfig, ExecutionPool, execute_samples, outputs_match, pass_at_k, passk_table,
                                rewrite_function_tests)
from codeloop.problems import load_problems
from codeloop.records import Problem, Result, Sample, read_jsonl, write_jsonl

MBPP = Problem(task_id="mbpp/x", prompt='def square(x):\n    """Square x."""\n', entry_point="square",
               test="import math\n\nassert square(2) == 4\nassert square(-3) == 9\nassert math.isclose(square(0.5), 0.25)\n"
                    "assert True\n", meta={"test_format": "asserts"})
STDIO = Problem(task_id="io/sum", prompt="Read two numbers a, b on a line; print a+b and a/b.",
                io_tests=[{"input": "1 2\n", "output": "3 0.5\n"}, {"input": "3 3\n", "output": "6\n1.0"},
                          {"input": "10 4\n", "output": "14 2.5"}])
STDIO_OK = "a, b = map(int, input().split())\nprint(a + b)\nprint(a / b)\n"


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(ExecConfig(workers=2, timeout_s=2.0, memory_mb=512)) as p:
        yield p


def test_humaneval_canonical_solutions_all_pass(pool):
    problems = load_problems("humaneval")
    samples = [Sample(task_id=p.task_id, sample_id=0, completion=p.canonical_solution) for p in problems]
    results = execute_samples(problems, samples, ExecConfig(timeout_s=10.0), pool=pool, progress=False)
    assert len(results) == 164
    bad = [(r.task_id, r.status, r.detail) for r in results if r.status != "passed"]
    assert bad == []
    assert [r.task_id for r in results] == [p.task_id for p in problems]
    assert all(r.total_tests >= 1 and r.passed_tests == r.total_tests for r in results)
    assert results[0].code == problems[0].prompt + problems[0].canonical_solution
    # Counting is per assert statement of check(): HumanEval/0 has 7 asserts.
    assert results[0].total_tests == 7


def test_humaneval_wrong_completion_counts_partial(pool):
    he0 = load_problems("humaneval", limit=1)[0]
    # Always False: passes exactly the asserts that expect False.
    r = execute_samples([he0], [Sample(task_id=he0.task_id, completion="    return False\n")], pool=pool,
                        progress=False)[0]
    assert r.status == "failed" and 0 < r.passed_tests < r.total_tests == 7


def test_rewrite_counts_top_level_asserts_of_check():
    t = rewrite_function_tests("def check(candidate):\n    import math\n    assert candidate(1) == 1\n"
                               "    for i in range(3):\n        assert candidate(i) == i\n    assert True\n", "f")
    assert (t.n_tests, t.call_check) == (2, True)
    assert "__CODELOOP_HOOK__.ok(0)" in t.source and "__CODELOOP_HOOK__.ok(1)" in t.source
    t = rewrite_function_tests(MBPP.test)
    assert (t.n_tests, t.call_check) == (3, False)
    # no assert at all: the whole test is one test
    t = rewrite_function_tests("def check(candidate):\n    if candidate(1) != 1:\n        raise ValueError\n", "f")
    assert t.n_tests == 1
    with pytest.raises(UserError, match="does not parse"):
        rewrite_function_tests("assert (", "f", "problem p")


def test_mbpp_style_asserts(pool):
    samples = [Sample(task_id="mbpp/x", sample_id=0, completion="    return x * x\n"),
               Sample(task_id="mbpp/x", sample_id=1, completion="    return abs(x) * 2\n"),
               Sample(task_id="mbpp/x", sample_id=2, code="def square(x):\n    return x ** 2\n"),
               Sample(task_id="mbpp/x", sample_id=3, completion="    return x *\n")]
    rs = execute_samples([MBPP], samples, pool=pool, progress=False)
    assert [(r.status, r.passed_tests, r.total_tests) for r in rs] == [
        ("passed", 3, 3), ("failed", 1, 3), ("passed", 3, 3), ("error", 0, 3)]
    assert "SyntaxError" in rs[3].detail
    assert rs[2].code == samples[2].code


def test_stdio_judge_per_test_counts(pool):
    samples = [Sample(task_id="io/sum", sample_id=0, completion=STDIO_OK),
               Sample(task_id="io/sum", sample_id=1, completion="a, b = map(int, input().split())\nprint(a + b, a // b)\n"),
               Sample(task_id="io/sum", sample_id=2, completion="import sys\nprint(3, 0.5)\nsys.exit(0)\n"),
               Sample(task_id="io/sum", sample_id=3, completion="raise SystemExit(3)\n"),
               Sample(task_id="io/sum", sample_id=4, completion="x = int(input().split()[0])\nprint(x + 2, 0.5000001)\n"),
               Sample(task_id="io/sum", sample_id=5, completion="import time\ntime.sleep(5)\n")]
    rs = execute_samples([STDIO], samples, pool=pool, progress=False)
    got = [(r.status, r.passed_tests, r.total_tests) for r in rs]
    assert got[0] == ("passed", 3, 3)
    assert got[1] == ("failed", 1, 3)  # 3 3 -> "6 1" vs "6 1.0" matches as numbers; 1 2 -> "3 0" does not
    assert got[2] == ("failed", 1, 3)  # exit(0) after printing is a normal end for a stdin/stdout program
    assert got[3] == ("error", 0, 3) and "exit code 3" in rs[3].detail
    assert got[4] == ("failed", 1, 3)  # float within 1e-5 of 0.5
    assert got[5] == ("timeout", 0, 3)
    assert rs[0].code == STDIO_OK


@pytest.mark.parametrize("got,expected,same", [
    ("3\n", "3", True), ("1 2  3\n", "1\n2\n3\n", True), ("0.3333333", "0.333333333", True),
    ("0.334", "0.333", False), ("1000000.1", "1000000.0", True), ("1e3", "1000", False), ("1000", "1e3", True),
    ("YES", "yes", False), ("1 2", "1 2 3", False), ("nan", "nan", True), ("nan", "0", False),
    ("", "", True), ("inf", "1e308", False)])
def test_outputs_match_rule(got, expected, same):
    assert outputs_match(got, expected) is same


def test_results_follow_input_order_and_on_result_sees_each(pool):
    samples = [Sample(task_id="mbpp/x", sample_id=i, completion="    return x * x\n" if i % 2 else
                      "    import time\n    time.sleep(0.05)\n    return x * x\n") for i in range(12)]
    seen = []
    rs = execute_samples({"mbpp/x": MBPP}, iter(samples), pool=pool, progress=False, on_result=seen.append)
    assert [r.sample_id for r in rs] == list(range(12))
    assert sorted(r.sample_id for r in seen) == list(range(12))


def test_unknown_task_is_a_user_error(pool):
    with pytest.raises(UserError, match="not in the problem set"):
        execute_samples([MBPP], [Sample(task_id="nope")], pool=pool, progress=False)


def _brute_pass_at_k(n, c, k):
    draws = list(combinations(range(n), k))
    return sum(any(i < c for i in d) for d in draws) / len(draws)


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 1, 1), (5, 2, 3), (6, 5, 2), (7, 3, 7), (4, 4, 2), (8, 1, 4)])
def test_pass_at_k_matches_brute_force(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    v = pass_at_k(10000, 3, 100)
    exact = 1 - math.comb(9997, 100) / math.comb(10000, 100)
    assert v == pytest.approx(exact, rel=1e-9)
    assert pass_at_k(200, 0, 100) == 0.0 and pass_at_k(200, 150, 100) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_passk_table_skips_k_larger_than_n():
    rs = [{"task_id": "a", "status": s} for s in ("passed", "failed", "failed", "timeout")]
    rs += [{"task_id": "b", "status": "passed"}]
    t = passk_table(rs, [1, 2])
    assert t["per_problem"]["a"] == {"n": 4, "c": 1, "pass@1": 0.25, "pass@2": 0.5}
    assert t["per_problem"]["b"] == {"n": 1, "c": 1, "pass@1": 1.0}
    assert t["mean"] == {"pass@1": pytest.approx(0.625), "pass@2": 0.5}
    assert t["skipped"] == {"pass@2": 1} and t["problems"] == {"pass@1": 2, "pass@2": 1}


def test_cli_execute_and_passk(tmp_path, capsys):
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [MBPP, STDIO])
    samples = tmp_path / "samples.jsonl"
    write_jsonl(samples, [Sample(task_id="mbpp/x", sample_id=0, completion="    return x * x\n"),
                          Sample(task_id="mbpp/x", sample_id=1, completion="    return x\n"),
                          Sample(task_id="io/sum", sample_id=0, completion=STDIO_OK)])
    out = tmp_path / "results.jsonl"
    rc = main(["execute", "--problems", f"jsonl:{problems}", "--samples", str(samples), "--out", str(out),
               "--workers", "2", "--timeout", "3", "--memory-mb", "512"])
    assert rc == 0
    rs = read_jsonl(out, Result)
    assert [(r.task_id, r.sample_id, r.status) for r in rs] == [
        ("mbpp/x", 0, "passed"), ("mbpp/x", 1, "failed"), ("io/sum", 0, "passed")]
    assert not (tmp_path / "results.jsonl.partial").exists()
    capsys.readouterr()
    assert main(["passk", str(out), "--k", "1,2"]) == 0
    captured = capsys.readouterr()
    mean = json.loads(captured.out.strip().splitlines()[-1])
    assert mean == {"pass@1": pytest.approx(0.75), "pass@2": 1.0}
    assert "fewer than 2 samples" in captured.err


def test_cli_execute_resumes_from_partial(tmp_path):
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [MBPP])
    samples = tmp_path / "samples.jsonl"
    write_jsonl(samples, [Sample(task_id="mbpp/x", sample_id=i, completion="    return x * x\n") for i in range(3)])
    out = tmp_path / "r.jsonl"
    # A killed run left one result (marked so we can see it is kept) and half a line.
    kept = Result(task_id="mbpp/x", sample_id=1, status="failed", detail="from before")
    (tmp_path / "r.jsonl.partial").write_text(json.dumps(kept.__dict__) + "\n{\"task_id\": \"mb")
    assert main(["execute", "--problems", f"jsonl:{problems}", "--samples", str(samples), "--out", str(out),
                 "--workers", "1"]) == 0
    rs = read_jsonl(out, Result)
    assert [(r.sample_id, r.status, r.detail) for r in rs] == [(0, "passed", ""), (1, "failed", "from before"),
                                                                (2, "passed", "")]


@pytest.mark.parametrize("args,where", [
    (["--workers", "0"], "--workers"), (["--timeout", "0"], "--timeout"), (["--memory-mb", "8"], "--memory-mb")])
def test_cli_user_mistakes_exit_2(tmp_path, capsys, args, where):
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [MBPP])
    samples = tmp_path / "samples.jsonl"
    write_jsonl(samples, [Sample(task_id="mbpp/x")])
    base = ["execute", "--problems", f"jsonl:{problems}", "--samples", str(samples), "--out", str(tmp_path / "o.jsonl")]
    assert main(base + args) == 2
    assert where in capsys.readouterr().err


def test_cli_unknown_task_names_the_line(tmp_path, capsys):
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [MBPP])
    samples = tmp_path / "samples.jsonl"
    write_jsonl(samples, [Sample(task_id="mbpp/x", completion=""), Sample(task_id="other", completion="")])
    assert main(["execute", "--problems", f"jsonl:{problems}", "--samples", str(samples),
                 "--out", str(tmp_path / "o.jsonl")]) == 2
    assert f"{samples}:2" in capsys.readouterr().err
    assert main(["passk", str(samples), "--k", "a"]) == 2


def test_status_counts_are_the_six_statuses(pool):
    codes = ["def square(x):\n    return x * x\n", "def square(x):\n    return 0\n", "while True:\n    pass\n",
             "x = bytearray(1 << 40)\n", "raise ValueError('boom')\n",
             "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"]
    rs = execute_samples([MBPP], [Sample(task_id="mbpp/x", sample_id=i, code=c) for i, c in enumerate(codes)],
                         pool=pool, progress=False)
    assert [r.status for r in rs] == ["passed", "failed", "timeout", "memory", "error", "killed"]
    assert Counter(r.status for r in rs) == Counter(("passed", "failed", "timeout", "memory", "error", "killed"))
