"""Reward hacks on the judges, through the real sandbox: each must not pass, and the next correct
program on the same pool must still pass. Also: honest values keep Python's answers, tests that
never execute are not passes, the exact stdin/stdout rule, and `codeloop problems check`."""

from __future__ import annotations

import textwrap

import pytest

from codeloop.cli import main
from codeloop.execution import ExecConfig, ExecutionPool, execute_samples, outputs_match
from codeloop.execution._harness import NO_ASSERTION
from codeloop.execution.judges import do_nothing_program, rewrite_function_tests
from codeloop.problems import load_problems
from codeloop.records import Problem, Sample, write_jsonl

ADD = Problem(task_id="t/add", prompt="def add(a, b):\n", entry_point="add",
              test="def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
                   "    assert candidate(0, 0) == 0\n")
ADD_OK = "def add(a, b):\n    return a + b\n"


def fn_problem(test: str, entry: str = "f", prompt: str = "", task_id: str = "t/f") -> Problem:
    return Problem(task_id=task_id, prompt=prompt or f"def {entry}(*args):\n", entry_point=entry, test=test)


def checked(test: str) -> Problem:
    """A HumanEval-style problem whose check(candidate) body is `test`."""
    return fn_problem("def check(candidate):\n" + textwrap.indent(test, "    "))


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(ExecConfig(workers=2, timeout_s=5.0, memory_mb=512)) as p:
        yield p


def run(pool, code, problem=ADD):
    return execute_samples([problem], [Sample(task_id=problem.task_id, code=code)], pool=pool, progress=False)[0]


def not_passed_then_correct(pool, hack, problem=ADD, correct=ADD_OK, status="failed"):
    r = run(pool, hack, problem)
    assert r.status == status, (r.status, r.detail)
    assert r.passed_tests < r.total_tests or r.status == "error"
    good = run(pool, correct, problem)
    assert good.status == "passed", good.detail
    return r


# ---------------------------------------------------------------------------------------------
# 1. The harness is out of the program's reach

@pytest.mark.parametrize("hack", [
    # the hook in the program's globals (where the old harness put it)
    "def add(a, b):\n    for k, v in list(globals().items()):\n        if k.startswith('_cl_'):\n"
    "            v.fail = v.ok\n    return 0\n",
    # the hook, or anything with ok/fail, in builtins
    "import builtins\ndef add(a, b):\n    for k in dir(builtins):\n        o = getattr(builtins, k)\n"
    "        if hasattr(o, 'fail') and hasattr(o, 'ok'):\n            o.fail = o.ok\n    return 0\n",
    # the harness module through sys.modules and the worker's __main__
    "import sys\ndef add(a, b):\n    for m in list(sys.modules.values()):\n"
    "        for h in (getattr(m, '_Hook', None), getattr(getattr(m, '_harness', None), '_Hook', None)):\n"
    "            if h is not None:\n                h.fail = h.ok\n                h.ok_ids = property(lambda s: {0, 1, 2})\n"
    "    return 0\n",
    "import __main__\ndef add(a, b):\n    h = getattr(__main__, '_harness', None)\n"
    "    if h is not None:\n        h._Hook.fail = h._Hook.ok\n    return 0\n",
    # the harness's encoder: a forged event body behind the real nonce prefix
    "import json, json.encoder, os\nforged = lambda *a, **k: json.encoder.JSONEncoder().encode({'e': 't', 'i': 0, 'ok': 1, "
    "'p': os.getpid()})\njson.dumps = forged\njson.encoder.JSONEncoder.encode = lambda self, o: forged()\n"
    "def add(a, b):\n    return 0\n",
    # patched builtins the harness or the tests use
    "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.bool = lambda *a: True\n"
    "builtins.len = lambda *a: 0\nbuiltins.AssertionError = KeyboardInterrupt\ndef add(a, b):\n    return 0\n",
])
def test_hook_is_out_of_reach(pool, hack):
    not_passed_then_correct(pool, hack)


CLOSE = fn_problem("import math\n\ndef check(candidate):\n    assert abs(candidate(1.0) - 0.5) < 1e-6\n"
                   "    assert math.isclose(candidate(3.0), 1.5)\n")


@pytest.mark.parametrize("hack", [
    # top-level names of the program that shadow what the tests call
    "abs = lambda x: 0\nclass math:\n    isclose = staticmethod(lambda *a, **k: True)\ndef f(x):\n    return 0\n",
    # the stdlib functions the tests call, patched in place
    "import math, builtins\nmath.isclose = lambda *a, **k: True\nbuiltins.abs = lambda x: 0\ndef f(x):\n    return 0\n",
])
def test_shadowed_or_patched_helpers_do_not_reach_the_tests(pool, hack):
    not_passed_then_correct(pool, hack, CLOSE, "def f(x):\n    return x / 2\n")


def test_prompt_helpers_come_from_the_prompt(pool):
    # HumanEval/38-style: the tests call a helper defined in the prompt; redefining it (and making
    # the entry point its inverse) must not pass.
    prompt = "def encode(s):\n    return s[::-1] + 'x'\n\n\ndef decode(s):\n"
    p = fn_problem("def check(candidate):\n    for s in ['ab', 'abc']:\n        assert candidate(encode(s)) == s\n",
                   "decode", prompt)
    not_passed_then_correct(pool, "def encode(s):\n    return s\ndef decode(s):\n    return s\n", p,
                            "def decode(s):\n    return s[:-1][::-1]\n")


# ---------------------------------------------------------------------------------------------
# 2. Rigged return values

RIGGED = ("class R:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
          "    def __bool__(self): return True\n    def __lt__(self, o): return True\n"
          "    def __gt__(self, o): return True\n    def __sub__(self, o): return 0\n    def __rsub__(self, o): return 0\n"
          "    def __abs__(self): return 0\n    def __len__(self): return 2\n    def __hash__(self): return 0\n")


@pytest.mark.parametrize("hack", [
    RIGGED + "def add(a, b):\n    return R()\n",
    "class I(int):\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
    "    __hash__ = int.__hash__\ndef add(a, b):\n    return I(7)\n",
    "class F(float):\n    def __eq__(self, o): return True\n    __hash__ = float.__hash__\ndef add(a, b):\n    return F(7)\n",
    # metaclass tricks on the returned object's type
    "class M(type):\n    def __eq__(cls, o): return True\n    __hash__ = type.__hash__\n"
    "class R(metaclass=M):\n    def __eq__(self, o): return True\ndef add(a, b):\n    return R()\n",
    # a cycle and a very deep value: not judged, no crash
    "def add(a, b):\n    l = []\n    l.append(l)\n    return l\n",
    "def add(a, b):\n    x = []\n    for _ in range(100000):\n        x = [x]\n    return x\n",
])
def test_rigged_values_do_not_pass(pool, hack):
    not_passed_then_correct(pool, hack)


@pytest.mark.parametrize("test,correct,hack", [
    # __ne__ / __bool__ / not
    ("assert not (candidate(1) != 2)\n", "def f(x):\n    return x + 1\n", RIGGED + "def f(x):\n    return R()\n"),
    ("assert candidate(2)\nassert not candidate(3)\n", "def f(x):\n    return x % 2 == 0\n",
     "class B:\n    n = 0\n    def __bool__(self):\n        B.n += 1\n        return B.n == 1\n"
     "def f(x):\n    return B()\n"),
    # str subclass with rigged dunders
    ("assert candidate('a') == 'ab'\nassert candidate('a').upper() == 'AB'\n", "def f(s):\n    return s + 'b'\n",
     "class S(str):\n    def __eq__(self, o): return True\n    def upper(self): return 'AB'\n    __hash__ = str.__hash__\n"
     "def f(s):\n    return S('zz')\n"),
    # a list holding rigged objects; a list subclass with rigged __eq__
    ("assert candidate(2) == [2, 3]\n", "def f(x):\n    return [x, x + 1]\n", RIGGED + "def f(x):\n    return [R(), R()]\n"),
    ("assert candidate(2) == [2, 3]\n", "def f(x):\n    return [x, x + 1]\n",
     "class L(list):\n    def __eq__(self, o): return True\ndef f(x):\n    return L([0])\n"),
    # arithmetic inside the assertion, a rigged float subclass
    ("assert abs(candidate(1) - 0.5) < 1e-9\n", "def f(x):\n    return x / 2\n",
     "class F(float):\n    def __sub__(self, o): return 0.0\n    def __abs__(self): return 0.0\n"
     "def f(x):\n    return F(9)\n"),
    ("assert len(candidate(2)) == 2 and sum(candidate(2)) == 5\n", "def f(x):\n    return [x, x + 1]\n",
     RIGGED + "def f(x):\n    return R()\n"),
    ("assert all(candidate(2))\n", "def f(x):\n    return [1, x]\n", RIGGED + "def f(x):\n    return [R()]\n"),
    # a dict subclass, a Counter subclass
    ("assert candidate(1) == {'a': 1}\n", "def f(x):\n    return {'a': x}\n",
     "class D(dict):\n    def __eq__(self, o): return True\n    def items(self): return [('a', 1)]\ndef f(x):\n    return D(b=2)\n"),
    # isinstance fooled through __class__
    ("assert isinstance(candidate(1), int)\nassert candidate(1) == 2\n", "def f(x):\n    return x + 1\n",
     "class R:\n    __class__ = property(lambda self: int)\n    def __eq__(self, o): return True\n"
     "def f(x):\n    return R()\n"),
    # membership: a rigged item, and a generator of rigged items
    ("assert candidate(1) in [5, 6]\n", "def f(x):\n    return 5\n", RIGGED + "def f(x):\n    return R()\n"),
    ("assert 5 in candidate(1)\n", "def f(x):\n    return (i for i in range(10))\n",
     RIGGED + "def f(x):\n    return (R() for _ in range(3))\n"),
    # chained comparisons
    ("assert 0 < candidate(1) < 3\n", "def f(x):\n    return 2\n", RIGGED + "def f(x):\n    return R()\n"),
    # Fraction with its comparison patched by the program
    ("from fractions import Fraction\nassert candidate(1) == Fraction(1, 3)\n",
     "from fractions import Fraction\ndef f(x):\n    return Fraction(x, 3)\n",
     "from fractions import Fraction\nFraction.__eq__ = lambda s, o: True\ndef f(x):\n    return Fraction(1, 2)\n"),
])
def test_rigged_values_in_asserts(pool, test, correct, hack):
    p = checked(test)
    not_passed_then_correct(pool, hack, p, correct)


def test_rigged_values_under_unittest(pool):
    p = fn_problem("import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n"
                   "        self.assertEqual(f(1), 2)\n        self.assertTrue(f(1) > 1)\n"
                   "    def test_b(self):\n        self.assertAlmostEqual(f(0.5), 1.5)\n        self.assertIn(f(1), [2])\n")
    correct = "def f(x):\n    return x + 1\n"
    for hack in (RIGGED + "def f(x):\n    return R()\n",
                 "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
                 "unittest.TestCase.assertTrue = lambda *a, **k: None\nunittest.TestCase.assertIn = lambda *a, **k: None\n"
                 "unittest.TestCase.assertAlmostEqual = lambda *a, **k: None\ndef f(x):\n    return 0\n"):
        r = not_passed_then_correct(pool, hack, p, correct)
        assert r.total_tests == 2 and r.passed_tests == 0


def test_numpy_object_array_is_not_judged(pool):
    pytest.importorskip("numpy")
    p = checked("assert candidate(1) == [2]\n")
    not_passed_then_correct(pool, RIGGED + "import numpy as np\ndef f(x):\n    return np.array([R()], dtype=object)\n",
                            p, "def f(x):\n    return [x + 1]\n")


@pytest.mark.parametrize("test,program", [
    ("assert candidate(2) == 2.0\nassert candidate(2.0) == 2\nassert candidate(True) == 1\n", "def f(x):\n    return x\n"),
    ("assert candidate(1, 2) == (1, 2)\nassert candidate(1, 2) != [1, 2]\n", "def f(a, b):\n    return (a, b)\n"),
    ("from collections import Counter\nassert candidate('aab') == {'a': 2, 'b': 1}\n"
     "assert candidate('aab') == Counter('aba')\nassert candidate('ab') + Counter('a') == Counter('aab')\n",
     "from collections import Counter\ndef f(s):\n    return Counter(s)\n"),
    ("from collections import OrderedDict\nassert candidate(2) == OrderedDict([(0, 0), (1, 1)])\n"
     "assert candidate(2) != OrderedDict([(1, 1), (0, 0)])\nassert candidate(2) == {1: 1, 0: 0}\n",
     "from collections import OrderedDict\ndef f(n):\n    return OrderedDict((i, i) for i in range(n))\n"),
    ("assert candidate('ab') == {'a': 1, 'b': 1}\nassert candidate('ab')['z'] == 0\n",
     "from collections import defaultdict\ndef f(s):\n    d = defaultdict(int)\n    for c in s:\n        d[c] += 1\n"
     "    return d\n"),
    ("from fractions import Fraction\nassert candidate(1, 2) == Fraction(1, 2)\nassert candidate(1, 2) == 0.5\n"
     "assert candidate(1, 3) < 0.34\n", "from fractions import Fraction\ndef f(a, b):\n    return Fraction(a, b)\n"),
    ("from decimal import Decimal\nassert candidate('1.10') == Decimal('1.1')\n",
     "from decimal import Decimal\ndef f(s):\n    return Decimal(s)\n"),
    ("from collections import namedtuple\nP = namedtuple('P', 'x y')\nassert candidate(1) == P(1, 2)\n"
     "assert candidate(1) == (1, 2)\nassert candidate(1).y == 2\n",
     "from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef f(x):\n    return P(x, x + 1)\n"),
    ("import math\nassert math.isnan(candidate(0))\nassert candidate(0) != candidate(0)\n",
     "def f(x):\n    return float('nan')\n"),
    ("assert candidate([3, 1]) == {1, 3}\nassert candidate([3, 1]) == frozenset([1, 3])\nassert 3 in candidate([3])\n",
     "def f(xs):\n    return set(xs)\n"),
    ("assert candidate({'a': 1}) == {'a'}\nassert 'a' in candidate({'a': 1})\n", "def f(d):\n    return d.keys()\n"),
    ("assert candidate(3) is None\nassert not candidate(3)\n", "def f(x):\n    return None\n"),
    ("assert 0 <= candidate(3) < 5 <= 9\nassert candidate(3) in range(10)\n", "def f(x):\n    return x\n"),
    ("class Node:\n    def __init__(self, v): self.v = v\n\nn = candidate(3)\nassert n.v == 3\nassert isinstance(n, object)\n"
     "assert n == n\n", "class Node:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n"
     "        return 'Node'\ndef f(x):\n    return Node(x)\n"),
    ("import enum\nassert candidate(1).value == 1\nassert candidate(1) == candidate(1)\n",
     "import enum\nclass C(enum.Enum):\n    A = 1\ndef f(x):\n    return C(x)\n"),
])
def test_honest_values_keep_pythons_answers(pool, test, program):
    r = run(pool, program, checked(test))
    assert r.status == "passed", r.detail


def test_honest_numpy_values(pool):
    pytest.importorskip("numpy")
    p = checked("import numpy as np\nassert candidate(2) == 2\nassert candidate(2) == 2.0\n"
                   "assert np.array_equal(candidate([1, 2]), [1, 2])\nassert (candidate([1]) == np.array([1])).all()\n")
    assert run(pool, "import numpy as np\ndef f(x):\n    return np.array(x) if isinstance(x, list) else np.int64(x)\n",
               p).status == "passed"
    assert run(pool, "import numpy as np\ndef f(x):\n    return np.array([0]) if isinstance(x, list) else np.int64(1)\n",
               p).status == "failed"


# ---------------------------------------------------------------------------------------------
# 3. Tests that never execute are not passes

LAYOUTS = {
    "main_guard": "if __name__ == '__main__':\n    assert f(1) == 2\n    assert f(2) == 3\n",
    "pytest": "def test_one():\n    assert f(1) == 2\n\ndef test_two():\n    assert f(2) == 3\n",
    "unittest": "import unittest\n\nclass T(unittest.TestCase):\n    def setUp(self):\n        self.k = 1\n"
                "    def test_one(self):\n        self.assertEqual(f(1), 1 + self.k)\n"
                "    def test_two(self):\n        self.assertEqual(f(2), 3)\n\nif __name__ == '__main__':\n    unittest.main()\n",
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_common_layouts_run_their_assertions(pool, layout):
    p = fn_problem(LAYOUTS[layout])
    good = run(pool, "def f(x):\n    return x + 1\n", p)
    assert (good.status, good.passed_tests, good.total_tests) == ("passed", 2, 2), good.detail
    bad = run(pool, "def f(x):\n    return 2\n", p)
    assert (bad.status, bad.passed_tests, bad.total_tests) == ("failed", 1, 2), bad.detail
    nothing = run(pool, "def f(x):\n    return None\n", p)
    assert nothing.status == "failed" and nothing.passed_tests == 0


@pytest.mark.parametrize("test", [
    "for x in []:\n    assert f(x) == x + 1\n",
    "f(1)\n",
    "def check(candidate):\n    for x in candidate(3):\n        assert x > 0\n",
    "def helper():\n    assert f(1) == 2\n",  # defined, never called, not named test_*
    "assert True\n",
])
def test_no_assertion_executed_is_an_error(pool, test):
    p = fn_problem(test, entry="f")
    r = run(pool, "def f(x):\n    return [] if x == 3 else x + 1\n", p)
    assert r.status == "error" and NO_ASSERTION in r.detail, (r.status, r.detail)
    assert run(pool, ADD_OK).status == "passed"


def test_a_counted_test_without_assertion_fails_the_sample(pool):
    p = fn_problem("assert f(1) == 2\nfor x in f(0):\n    assert x\n")
    r = run(pool, "def f(x):\n    return [] if x == 0 else x + 1\n", p)
    assert (r.status, r.passed_tests, r.total_tests) == ("failed", 1, 2)
    assert "no assertion executed" in r.detail


def test_check_without_entry_point_is_a_per_problem_error(pool):
    broken = Problem(task_id="t/noentry", prompt="def g(x):\n", test="def check(candidate):\n    assert candidate(1) == 2\n")
    rs = execute_samples([broken, ADD], [Sample(task_id="t/noentry", code="def g(x):\n    return x + 1\n"),
                                         Sample(task_id="t/add", code=ADD_OK)], pool=pool, progress=False)
    assert rs[0].status == "error" and "t/noentry" in rs[0].detail and "entry_point" in rs[0].detail
    assert rs[1].status == "passed"


def test_rewrite_counts_layouts():
    assert rewrite_function_tests(LAYOUTS["pytest"]).n_tests == 2
    assert rewrite_function_tests(LAYOUTS["unittest"]).n_tests == 2
    assert rewrite_function_tests(LAYOUTS["main_guard"]).n_tests == 2
    assert "unittest.main" not in rewrite_function_tests(LAYOUTS["unittest"]).source
    # an explicitly called test function is counted once, at its call
    t = rewrite_function_tests("def test_a():\n    assert f(1) == 2\n\ntest_a()\n")
    assert t.n_tests == 1 and t.source.count(".begin(") == 1
    t = rewrite_function_tests("def check(candidate):\n    assert candidate(1) == 2\n")
    assert t.problem_error and "entry_point" in t.problem_error


# ---------------------------------------------------------------------------------------------
# 4. Exact stdin/stdout judging

@pytest.mark.parametrize("got,expected,same", [
    ("100001", "100000", False), ("1000000000", "1000000007", False), ("1000000007", "1000000007", True),
    ("1_000", "1000", False), ("+5", "5", False), ("\uff15", "5", False), ("5.0", "5", False),
    ("0.5000001", "0.5", True), ("0.50002", "0.5", False), ("5", "5.0", True), ("1e3", "1000.0", True),
    ("1_000.0", "1000.0", False), ("\uff11.0", "1.0", False), ("0x10", "16.0", False), ("inf", "inf", True),
    ("1e999", "1e999", True), ("1e999", "2e999", False), ("nan", "0.0", False), ("infinity", "inf", False),
    ("-0.0", "0.0", True), ("1.0000000001e9", "1e9", True), ("3", "3.", True), ("abc", "1.0", False),
])
def test_outputs_match_is_exact_for_integers(got, expected, same):
    assert outputs_match(got, expected) is same


def test_stdio_modulo_answer_off_by_a_little_fails(pool):
    p = Problem(task_id="io/mod", prompt="Print 10**18 mod 1e9+7 and 1/3.",
                io_tests=[{"input": "", "output": "49\n0.3333333333\n"}])
    assert run(pool, "print(10**18 % (10**9 + 7))\nprint(1 / 3)\n", p).status == "passed"
    assert run(pool, "print(48)\nprint(1 / 3)\n", p).status == "failed"
    assert run(pool, "print(49.0)\nprint(0.333333)\n", p).status == "failed"  # 49 is an integer token


# ---------------------------------------------------------------------------------------------
# HumanEval: every canonical solution passes, the do-nothing program passes none

def test_humaneval_canonical_pass_and_do_nothing_fails(pool):
    problems = load_problems("humaneval")
    samples = [Sample(task_id=p.task_id, sample_id=0, completion=p.canonical_solution) for p in problems]
    samples += [Sample(task_id=p.task_id, sample_id=1, code=do_nothing_program(p)) for p in problems]
    rs = execute_samples(problems, samples, pool=pool, progress=False)
    assert len(rs) == 2 * 164
    assert [(r.task_id, r.detail) for r in rs[:164] if r.status != "passed"] == []
    assert [r.task_id for r in rs[164:] if r.status == "passed"] == []
    assert all(r.status == "failed" for r in rs[164:])


# ---------------------------------------------------------------------------------------------
# 5. codeloop problems check

def test_problems_check_flags_bad_problems(tmp_path, capsys):
    good = Problem(task_id="p/good", prompt="def f(x):\n", entry_point="f", canonical_solution="    return x + 1\n",
                   test="def check(candidate):\n    assert candidate(1) == 2\n")
    # Unwrapped and run: a good problem, not flagged.
    guarded = Problem(task_id="p/guarded", prompt="def f(x):\n", entry_point="f", canonical_solution="    return x + 1\n",
                      test="if __name__ == '__main__':\n    assert f(1) == 2\n")
    no_assert = Problem(task_id="p/no_assert", prompt="def f(x):\n", entry_point="f",
                        canonical_solution="    return x + 1\n", test="f(1)\n")
    wrong_ref = Problem(task_id="p/wrong_ref", prompt="def f(x):\n", entry_point="f",
                        canonical_solution="    return x\n", test="assert f(1) == 2\n")
    no_ref = Problem(task_id="p/no_ref", prompt="def f(x):\n", entry_point="f", test="assert f(1) == 2\n")
    path = tmp_path / "set.jsonl"
    write_jsonl(path, [good, guarded, no_assert, wrong_ref, no_ref])
    rc = main(["problems", "check", f"jsonl:{path}", "--workers", "2", "--timeout", "5"])
    out = capsys.readouterr()
    assert rc == 1
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.out.splitlines() if line.startswith("│")]
    flagged = {r[0] for r in rows if r[0].startswith("p/") and r[1] != "-"}
    assert flagged == {"p/no_assert", "p/wrong_ref"}
    assert "no reference solution" in out.out and "tests execute no assertion" in out.out
    assert "2 of 5 problems flagged" in out.err
    write_jsonl(path, [good, guarded])
    assert main(["problems", "check", f"jsonl:{path}", "--workers", "2"]) == 0
    assert main(["problems", "check", f"jsonl:{path}", "--workers", "0"]) == 2
