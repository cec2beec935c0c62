"""Records files in the shapes users have: JSONL(.gz), Parquet, a `datasets` save_to_disk folder,
EvalPlus and bigcode-evaluation-harness samples; outputs in the format their name says."""

from __future__ import annotations

import gzip
import json

import pytest

from codeloop.cli import main
from codeloop.records import read_records

PROBLEMS = [
    {"task_id": "t/1", "prompt": "def inc(x):\n", "entry_point": "inc", "canonical_solution": "    return x + 1\n",
     "test": "assert inc(1) == 2\n", "description": "Add one."},
    {"task_id": "t/2", "prompt": "def dbl(x):\n", "entry_point": "dbl", "canonical_solution": "    return 2 * x\n",
     "test": "assert dbl(2) == 4\n"},
]
SAMPLES = [{"task_id": "t/1", "completion": "    return x + 1\n"}, {"task_id": "t/2", "completion": "    return x\n"}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _dataset(path, rows):
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _one_line_error(capsys, *needles):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error:"), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    return err[0]


@pytest.mark.parametrize("writer", [_jsonl, _parquet, _dataset], ids=["jsonl", "parquet", "datasets"])
def test_execute_reads_problems_and_samples_in_every_format(tmp_path, writer):
    suffix = {"_jsonl": ".jsonl", "_parquet": ".parquet", "_dataset": ""}[writer.__name__]
    probs = writer(tmp_path / f"probs{suffix}", PROBLEMS)
    samples = writer(tmp_path / f"samples{suffix}", SAMPLES)
    out = tmp_path / "results.jsonl"
    assert main(["execute", "--problems", f"jsonl:{probs}", "--samples", str(samples), "--out", str(out),
                 "--workers", "1"]) == 0
    assert [r["status"] for r in read_records(out)] == ["passed", "failed"]
    assert main(["passk", str(out)]) == 0


def test_gzipped_jsonl_is_read(tmp_path):
    p = tmp_path / "s.jsonl.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in SAMPLES))
    assert [r["task_id"] for r in read_records(p)] == ["t/1", "t/2"]


def test_a_bad_parquet_row_names_file_row_and_field(tmp_path, capsys):
    probs = _jsonl(tmp_path / "probs.jsonl", PROBLEMS)
    samples = _parquet(tmp_path / "s.parquet", [{"task_id": "t/1", "completion": "x"},
                                                {"task_id": None, "completion": "y"}])
    assert main(["execute", "--problems", f"jsonl:{probs}", "--samples", str(samples),
                 "--out", str(tmp_path / "r.jsonl")]) == 2
    _one_line_error(capsys, f"{samples}:2", "'task_id'")
    samples = _parquet(tmp_path / "s2.parquet", [{"task_id": "t/1", "completion": "x", "extra": "oops"}])
    assert main(["execute", "--problems", f"jsonl:{probs}", "--samples", str(samples),
                 "--out", str(tmp_path / "r.jsonl")]) == 2
    _one_line_error(capsys, f"{samples}:1", "'extra'")


@pytest.mark.parametrize("name,check", [
    ("p.parquet", lambda p: __import__("pyarrow.parquet").parquet.read_table(p).num_rows == 2),
    ("p.jsonl.gz", lambda p: len(gzip.open(p, "rt").read().splitlines()) == 2),
    ("p.jsonl", lambda p: len(p.read_text().splitlines()) == 2),
])
def test_outputs_are_written_in_the_format_their_name_says(tmp_path, name, check):
    probs = _jsonl(tmp_path / "probs.jsonl", PROBLEMS)
    out = tmp_path / name
    assert main(["problems", "export", f"jsonl:{probs}", "-o", str(out)]) == 0
    assert check(out)
    assert [p["task_id"] for p in read_records(out)] == ["t/1", "t/2"]
    # and what was written reads back as the same problems (a Parquet round trip keeps meta/io_tests)
    assert main(["problems", "export", f"jsonl:{out}", "-o", str(tmp_path / ("again-" + name))]) == 0
    assert read_records(tmp_path / ("again-" + name)) == read_records(out)


def test_an_unknown_output_extension_is_one_line(tmp_path, capsys):
    probs = _jsonl(tmp_path / "probs.jsonl", PROBLEMS)
    assert main(["problems", "export", f"jsonl:{probs}", "-o", str(tmp_path / "p.csv")]) == 2
    _one_line_error(capsys, "--out", ".parquet")
    assert not (tmp_path / "p.csv").exists()
    assert main(["sft-data", "--problems", f"jsonl:{probs}", "--split", "", "-o", str(tmp_path / "sft.json")]) == 2
    _one_line_error(capsys, "--out")


def test_a_step_command_writes_parquet_when_asked(tmp_path):
    import pyarrow.parquet as pq

    probs = _jsonl(tmp_path / "probs.jsonl", PROBLEMS)
    out = tmp_path / "sft.parquet"
    assert main(["sft-data", "--problems", f"jsonl:{probs}", "--split", "", "-o", str(out)]) == 0
    assert pq.read_table(out).num_rows == 2
    assert [r["completion"] for r in read_records(out)] == [p["canonical_solution"] for p in PROBLEMS]


# -- samples in the ecosystem's shapes ---------------------------------------------------------------

def _humaneval(n=3):
    from codeloop.problems import load_problems

    return load_problems("humaneval", limit=n)


def test_evalplus_solutions_run_as_whole_programs(tmp_path):
    problems = _humaneval()
    samples = _jsonl(tmp_path / "evalplus.jsonl", [{"task_id": p.task_id, "solution": p.prompt + p.canonical_solution}
                                                   for p in problems])
    out = tmp_path / "r.jsonl"
    assert main(["execute", "--problems", "humaneval", "--samples", str(samples), "--out", str(out)]) == 0
    assert [r["status"] for r in read_records(out)] == ["passed"] * 3


def test_bigcode_generations_json_maps_list_i_to_problem_i(tmp_path):
    problems = _humaneval()
    gens = tmp_path / "generations.json"
    gens.write_text(json.dumps([[p.prompt + p.canonical_solution, p.prompt + "    pass\n"] for p in problems]))
    out = tmp_path / "r.jsonl"
    assert main(["execute", "--problems", "humaneval", "--samples", str(gens), "--out", str(out)]) == 0
    rs = read_records(out)
    assert [(r["task_id"], r["sample_id"]) for r in rs] == [(p.task_id, j) for p in problems for j in (0, 1)]
    assert [r["status"] for r in rs] == ["passed", "failed"] * 3


def test_a_sample_without_any_program_is_refused(tmp_path, capsys):
    samples = _jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": "    pass\n"},
                                            {"task_id": "HumanEval/1", "output": "    return []\n"}])
    assert main(["execute", "--problems", "humaneval", "--samples", str(samples),
                 "--out", str(tmp_path / "r.jsonl")]) == 2
    _one_line_error(capsys, f"{samples}:2", "'completion'", "'solution'")
