"""Problem-set loaders on small fixture files in each dataset's public format, their errors, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codeloop.cli import main
from codeloop.errors import UserError
from codeloop.problems import load_problems, problem_sets
from codeloop.records import read_jsonl, Problem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "problems"


def run_program(code: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-c", code], input=stdin, capture_output=True, text=True, timeout=30)


def function_program(p: Problem, completion: str | None = None) -> str:
    body = p.canonical_solution if completion is None else completion
    tail = f"\ncheck({p.entry_point})\n" if p.meta.get("test_format") == "check" else ""
    return p.prompt + body + "\n" + p.test + tail


# ---------------------------------------------------------------------------------------------
# MBPP


def test_mbpp_jsonl_frames_run_and_fields():
    problems = load_problems(f"mbpp:{FIXTURES / 'mbpp_small.jsonl'}")
    assert [p.task_id for p in problems] == ["mbpp/5", "mbpp/42", "mbpp/555", "mbpp/700"]
    by_id = {p.task_id: p for p in problems}
    for p in problems:
        assert "\r" not in p.prompt + p.canonical_solution + p.test
        assert p.meta["test_format"] == "asserts" and p.source == "mbpp"
        assert p.description in p.prompt and p.meta["test_list"][0] in p.prompt
        assert run_program(function_program(p)).returncode == 0, p.task_id
        # The prompt stops inside the tested function: a wrong body must fail the tests.
        indent = p.canonical_solution[:len(p.canonical_solution) - len(p.canonical_solution.lstrip())]
        assert run_program(function_program(p, indent + "return None\n")).returncode != 0, p.task_id
    assert [p.meta["split"] for p in problems] == ["prompt", "test", "validation", "train"]
    vowels = by_id["mbpp/42"]
    assert vowels.entry_point == "count_vowels"  # the function the tests call, not the helper
    assert vowels.prompt.startswith("import re\n") and "def count_vowels(s):" in vowels.prompt
    assert "def helper" in vowels.canonical_solution and "def helper" not in vowels.prompt
    assert vowels.meta["challenge_test_list"] == ["assert count_vowels('') == 0"]
    square = by_id["mbpp/555"]  # one-line `def f(x): return ...` and test setup code
    assert square.test.startswith("import math\n") and square.canonical_solution.strip() == "return x * x"
    compile(square.prompt + square.canonical_solution, "square", "exec")


def test_mbpp_sanitized_json_and_split_filter():
    problems = load_problems(f"mbpp:{FIXTURES / 'mbpp_sanitized_small.json'}")
    assert [p.task_id for p in problems] == ["mbpp/5", "mbpp/600"]
    assert all(p.source == "mbpp-sanitized" and p.meta["variant"] == "sanitized" for p in problems)
    root = problems[1]
    assert root.test.startswith("import math\n") and root.prompt.startswith("import math\n")
    for p in problems:
        assert run_program(function_program(p)).returncode == 0
    only = load_problems(f"mbpp:{FIXTURES / 'mbpp_sanitized_small.json'}", split="validation")
    assert [p.task_id for p in only] == ["mbpp/600"]


def test_mbpp_parquet_matches_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = read_jsonl(FIXTURES / "mbpp_small.jsonl")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test-00000-of-00001.parquet")
    from_parquet = load_problems(f"mbpp:{tmp_path / 'test-00000-of-00001.parquet'}")
    from_jsonl = load_problems(f"mbpp:{FIXTURES / 'mbpp_small.jsonl'}")
    assert from_parquet == from_jsonl


def test_mbpp_hub_id_offline_is_a_clear_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here: the hub is the only source left
    monkeypatch.delenv("CODELOOP_DATA", raising=False)
    for spec in ("mbpp", "mbpp:google-research-datasets/mbpp"):
        with pytest.raises(UserError, match=r"offline.*mbpp:PATH") as err:
            load_problems(spec)
        # the default set also says where a local copy would be read from; a named hub id does not
        assert ("mbpp.jsonl in $CODELOOP_DATA" in err.value.message) == (spec == "mbpp")
    with pytest.raises(UserError, match="sanitized-mbpp.json in [$]CODELOOP_DATA"):
        load_problems("mbpp:sanitized")


def test_mbpp_reads_a_local_copy_before_the_hub(monkeypatch, tmp_path):
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(FIXTURES / "mbpp_small.jsonl", tmp_path / "mbpp.jsonl")
    monkeypatch.setenv("CODELOOP_DATA", str(tmp_path))
    local = load_problems("mbpp")
    assert local and [p.task_id for p in local] == [p.task_id for p in load_problems(f"mbpp:{FIXTURES / 'mbpp_small.jsonl'}")]
    with pytest.raises(UserError, match="offline"):  # the sanitized copy is not there: the hub is asked
        load_problems("mbpp:sanitized")


def test_mbpp_unknown_split():
    with pytest.raises(UserError, match="no split 'dev'"):
        load_problems(f"mbpp:{FIXTURES / 'mbpp_small.jsonl'}", split="dev")


# ---------------------------------------------------------------------------------------------
# APPS


def test_apps_stdio_and_call_based():
    problems = load_problems(f"apps:{FIXTURES / 'apps_test.jsonl'}")
    assert [p.task_id for p in problems] == ["apps/test/0", "apps/test/1", "apps/test/2", "apps/test/3"]
    stdio, largest, two_sum, no_solution = problems
    assert stdio.kind == "stdio" and stdio.io_tests[0] == {"input": "1 2\n", "output": "3\n"}
    assert stdio.meta["difficulty"] == "introductory" and stdio.meta["test_format"] == "io"
    for t in stdio.io_tests:  # the canonical program solves its own tests
        assert run_program(stdio.prompt + stdio.canonical_solution, t["input"]).stdout == t["output"]
    assert largest.kind == "function" and largest.entry_point == "largest" and largest.meta["test_format"] == "check"
    assert run_program(function_program(largest)).returncode == 0
    assert run_program(function_program(largest, "    return xs[0]\n")).returncode != 0
    # LeetCode-style: the class is the entry point; check() instantiates it and calls the method.
    assert two_sum.entry_point == "Solution" and "class Solution:" in two_sum.prompt
    assert run_program(function_program(two_sum)).returncode == 0
    assert run_program(function_program(two_sum, "        return [0, 0]\n")).returncode != 0
    # No solution: the starter code makes the frame; the APPS comparison unwraps [[3, 1]] and tuples.
    assert no_solution.canonical_solution == "" and "def divmod_pair(a, b):" in no_solution.prompt
    assert run_program(function_program(no_solution, "    return divmod(a, b)\n")).returncode == 0


def test_apps_json_list_and_split_from_file_name():
    problems = load_problems(f"apps:{FIXTURES / 'apps_test.json'}")
    assert [p.task_id for p in problems] == ["apps/test/0", "apps/test/1"]
    with pytest.raises(UserError, match="holds the 'test' split"):
        load_problems(f"apps:{FIXTURES / 'apps_test.json'}", split="train")


def test_apps_malformed_fields(tmp_path):
    good = read_jsonl(FIXTURES / "apps_test.jsonl")[1]
    path = tmp_path / "apps.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "input_output": "{not json"}) + "\n")
    with pytest.raises(UserError) as err:
        load_problems(f"apps:{path}")
    assert err.value.where == f"{path}:2" and "input_output" in err.value.message
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "question"}) + "\n")
    with pytest.raises(UserError, match="'question'") as err:
        load_problems(f"apps:{path}")
    assert err.value.where == f"{path}:1"


# ---------------------------------------------------------------------------------------------
# CodeContests


def test_codecontests_parquet_public_first():
    problems = load_problems(f"codecontests:{FIXTURES / 'codecontests_test.parquet'}")
    assert [p.task_id for p in problems] == ["codecontests/1000_A._Double_It", "codecontests/p00001_Count_Words"]
    double, words = problems
    assert double.kind == "stdio" and double.meta["split"] == "test"
    assert double.meta["public_tests"] == 1 and double.io_tests[0] == {"input": "3\n", "output": "6\n"}
    assert len(double.io_tests) == 3  # public + private, generated left out by default
    assert double.meta["time_limit_s"] == 1.5 and double.meta["difficulty"] == "A"
    assert double.meta["contest_source"] == "CODEFORCES" and words.meta["contest_source"] == "AIZU"
    assert double.canonical_solution == "n = int(input())\nprint(2 * n)\n"  # the PYTHON3 one, not C++/Python 2
    for p in problems:
        for t in p.io_tests:
            assert run_program(p.prompt + p.canonical_solution, t["input"]).stdout.strip() == t["output"].strip()
    from codeloop.problems.codecontests import public_io_tests

    assert public_io_tests(double) == [{"input": "3\n", "output": "6\n"}]


def test_codecontests_generated_and_jsonl():
    with_generated = load_problems(f"codecontests:{FIXTURES / 'codecontests_test.parquet'}#generated")
    assert [len(p.io_tests) for p in with_generated] == [4, 3]
    from_jsonl = load_problems(f"codecontests:{FIXTURES / 'codecontests_valid.jsonl'}")
    assert {p.meta["split"] for p in from_jsonl} == {"valid"}
    assert [p.io_tests for p in from_jsonl] == [p.io_tests for p in load_problems(
        f"codecontests:{FIXTURES / 'codecontests_test.parquet'}")]


def test_codecontests_missing_public_tests(tmp_path):
    row = read_jsonl(FIXTURES / "codecontests_valid.jsonl")[0]
    del row["public_tests"]
    path = tmp_path / "cc.json"
    path.write_text(json.dumps([row]))
    with pytest.raises(UserError, match="'public_tests'") as err:
        load_problems(f"codecontests:{path}")
    assert err.value.where == f"{path}[0]"


# ---------------------------------------------------------------------------------------------
# Errors common to every loader


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    lines = (FIXTURES / "mbpp_small.jsonl").read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][:-5] + "\n")
    with pytest.raises(UserError, match="invalid JSON") as err:
        load_problems(f"mbpp:{path}")
    assert err.value.where == f"{path}:2"


def test_missing_field_names_file_line_and_field(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    rows = read_jsonl(FIXTURES / "mbpp_small.jsonl")
    del rows[2]["test_list"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match="missing required field 'test_list'") as err:
        load_problems(f"mbpp:{path}")
    assert err.value.where == f"{path}:3"


@pytest.mark.parametrize("name", ["mbpp", "apps", "codecontests"])
def test_missing_file_and_empty_file(tmp_path, name):
    with pytest.raises(UserError, match="file not found"):
        load_problems(f"{name}:{tmp_path / 'nope.jsonl'}")
    (tmp_path / "empty.jsonl").write_text("")
    assert load_problems(f"{name}:{tmp_path / 'empty.jsonl'}") == []


def test_unknown_problem_set():
    with pytest.raises(UserError, match="unknown problem set 'nope'.*easy"):
        load_problems("nope")
    assert {"humaneval", "easy", "mbpp", "apps", "codecontests", "jsonl"} <= {ps.name for ps in problem_sets()}


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_unknown_problem_set_exits_2(capsys):
    assert main(["problems", "export", "nope", "-o", "x.jsonl"]) == 2
    assert main(["problems", "show", f"mbpp:{FIXTURES / 'missing.jsonl'}"]) == 2


def test_cli_export_humaneval(tmp_path):
    out = tmp_path / "he.jsonl"
    assert main(["problems", "export", "humaneval", "-o", str(out)]) == 0
    problems = read_jsonl(out, Problem)
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0"


def test_cli_export_easy_test_split(tmp_path):
    out = tmp_path / "y.jsonl"
    assert main(["problems", "export", "easy", "--split", "test", "-o", str(out)]) == 0
    problems = read_jsonl(out, Problem)
    assert problems == load_problems("easy", split="test")
    assert problems and all(p.meta["split"] == "test" for p in problems)


def test_cli_list_and_show(capsys):
    assert main(["problems", "list"]) == 0
    assert main(["problems", "show", f"apps:{FIXTURES / 'apps_test.jsonl'}", "apps/test/2"]) == 0
    assert main(["problems", "show", "easy", "--split", "train", "--limit", "3"]) == 0
