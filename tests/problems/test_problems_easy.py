"""The built-in easy suite: size, determinism, fixed split, HumanEval prompt style, and every
canonical solution passing its own tests."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter

import pytest

from codeloop.errors import UserError
from codeloop.problems import load_problems
from codeloop.problems.easy import FAMILIES, split_v1
from codeloop.problems.templates import template_key, template_overlap


@pytest.fixture(scope="module")
def easy():
    return load_problems("easy")


def test_size_families_and_distinct(easy):
    assert len(easy) >= 3000
    assert len(FAMILIES) >= 15 and set(Counter(p.meta["family"] for p in easy)) == set(FAMILIES)
    assert len({p.task_id for p in easy}) == len(easy)
    assert len({p.prompt for p in easy}) == len(easy)
    assert len({p.description for p in easy}) == len(easy)  # the tasks differ, not only the names
    levels = Counter(p.meta["difficulty"] for p in easy)
    assert set(levels) == {1, 2, 3} and min(levels.values()) > 300
    for p in easy:
        family, k = p.task_id.split("/")[1:]
        assert p.task_id == f"easy/{p.meta['family']}/{int(k)}"


def test_fixed_split(easy):
    test = [p for p in easy if p.meta["split"] == "test"]
    assert 0.15 < len(test) / len(easy) < 0.25
    # Every family is represented in both splits.
    assert {p.meta["family"] for p in test} == set(FAMILIES)
    assert [p.task_id for p in load_problems("easy", split="test")] == [p.task_id for p in test]


def test_the_test_split_holds_out_whole_templates(easy):
    """No test reference body, constants and strings masked, occurs in train (the first split: 620 of 630)."""
    train, test = load_problems("easy", split="train"), load_problems("easy", split="test")
    assert template_overlap(train, test)["template_in_train"] == 0
    assert {p.meta["template"] for p in train}.isdisjoint({p.meta["template"] for p in test})
    old_train, old_test = load_problems("easy", split="train-v1"), load_problems("easy", split="test-v1")
    assert len(old_test) == 630 and template_overlap(old_train, old_test)["template_in_train"] == 620
    assert all(p.meta["split_v1"] == split_v1(p.task_id) for p in easy)


def test_template_key_masks_constants_only():
    assert template_key("    return x * 2 + 1\n") == template_key("    return x * 3 + 5\n")
    assert template_key("    return x * 2 + 1\n") != template_key("    return x - 2 + 1\n")
    assert template_key("    return s.count('a')\n") == template_key("    return s.count('zz')\n")
    assert template_key("def (") is None


def test_humaneval_prompt_style(easy):
    for p in easy:
        tree = ast.parse(p.prompt)
        fn = tree.body[-1]
        assert isinstance(fn, ast.FunctionDef) and fn.name == p.entry_point
        doc = ast.get_docstring(fn, clean=False)
        assert doc is not None and doc.count(">>> ") == p.meta["examples"] == 2
        assert p.prompt.endswith('    """\n') and p.canonical_solution.startswith("    ")
        assert 3 <= p.meta["hidden_tests"] <= 6
        asserts = [line for line in p.test.splitlines() if line.startswith("    assert candidate(")]
        assert len(asserts) == p.meta["examples"] + p.meta["hidden_tests"]
        # Tests tell solutions apart: never one single expected value for every case.
        assert len({a.split(" == ", 1)[1] for a in asserts}) > 1, p.task_id


def test_every_canonical_solution_passes_its_tests(easy, tmp_path):
    # One program, each problem in its own namespace, so the whole suite runs in about a second.
    cases = [(p.task_id, p.prompt + p.canonical_solution + p.test + f"\ncheck({p.entry_point})\n") for p in easy]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    runner = ("import json, sys\nfailed = []\n"
              f"for tid, code in json.load(open({str(tmp_path / 'cases.json')!r})):\n"
              "    try:\n        exec(compile(code, tid, 'exec'), {'__name__': '__easy__'})\n"
              "    except BaseException as exc:\n        failed.append((tid, repr(exc)))\n"
              "print(json.dumps(failed))\n")
    out = subprocess.run([sys.executable, "-I", "-c", runner], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_wrong_solutions_fail():
    # A constant answer passes no problem's full tests.
    problems = load_problems("easy", limit=200)
    code = [p.prompt + "    return 0\n" + p.test + f"\ncheck({p.entry_point})\n" for p in problems]
    passed = 0
    for c in code:
        try:
            exec(compile(c, "wrong", "exec"), {})
            passed += 1
        except AssertionError:
            pass
    assert passed == 0


def test_deterministic_across_processes_and_hash_seeds():
    # Same problems in a fresh interpreter with another string-hash seed.
    script = ("import hashlib, json\nfrom codeloop.problems import load_problems\n"
              "ps = load_problems('easy')\n"
              "print(hashlib.sha256(json.dumps([[p.task_id, p.prompt, p.test, p.canonical_solution, p.meta]"
              " for p in ps], sort_keys=True).encode()).hexdigest())\n")
    digests = set()
    for seed in ("0", "12345"):
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_family_filter_and_limit_cover_families():
    some = load_problems("easy:list_count,words")
    assert {p.meta["family"] for p in some} == {"list_count", "words"}
    first = load_problems("easy", limit=len(FAMILIES))
    assert {p.meta["family"] for p in first} == set(FAMILIES)
    with pytest.raises(UserError, match="unknown easy families nope"):
        load_problems("easy:nope")


def test_callers_cannot_corrupt_the_cache():
    a = load_problems("easy", limit=1)[0]
    a.meta["split"] = "mutated"
    a.prompt = "x"
    b = load_problems("easy", limit=1)[0]
    assert b.meta["split"] in ("train", "test") and b.prompt != "x"


def test_problems_stats_prints_the_overlap_of_each_split_pair(capsys):
    from codeloop.cli import main

    assert main(["problems", "stats", "easy"]) == 0
    out = capsys.readouterr().out
    assert "template overlap: 0 of 575 test problems" in out
    assert main(["problems", "stats", "easy", "--train-split", "train-v1", "--test-split", "test-v1"]) == 0
    assert "template overlap: 620 of 630 test-v1 problems" in capsys.readouterr().out
    assert main(["problems", "stats", "easy", "--test-split", "nope"]) == 2
    assert "--test-split" in capsys.readouterr().err
