import gzip
import json

import pytest

from codeloop.errors import UserError
from codeloop.records import (JsonlAppender, Problem, Result, Sample, read_jsonl, write_jsonl)


def test_roundtrip_plain_and_gzip(tmp_path):
    recs = [Sample(task_id="t/1", sample_id=i, completion=f"return {i}", extra={"k": i}) for i in range(3)]
    for name in ("s.jsonl", "s.jsonl.gz"):
        p = tmp_path / name
        assert write_jsonl(p, recs) == 3
        assert read_jsonl(p, Sample) == recs
    with gzip.open(tmp_path / "s.jsonl.gz", "rt") as fh:
        assert json.loads(fh.readline())["task_id"] == "t/1"


def test_unknown_keys_are_kept_in_meta(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"task_id": 7, "prompt": "def f():\n", "difficulty": "easy"}) + "\n")
    (prob,) = read_jsonl(p, Problem)
    assert prob.task_id == "7" and prob.meta == {"difficulty": "easy"}


def test_bad_json_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"task_id": "a", "prompt": "x"}\n\n{"task_id": "b", "prompt": \n')
    with pytest.raises(UserError) as err:
        read_jsonl(p, Problem)
    assert err.value.where == f"{p}:3" and "invalid JSON" in err.value.message


def test_missing_field_names_the_field(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"task_id": "a"}\n')
    with pytest.raises(UserError) as err:
        read_jsonl(p, Problem)
    assert err.value.where == f"{p}:1" and "'prompt'" in err.value.message


def test_result_status_is_validated(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"task_id": "a", "status": "great"}\n')
    with pytest.raises(UserError, match="status"):
        read_jsonl(p, Result)


def test_appender_cuts_a_torn_last_line(tmp_path):
    p = tmp_path / "a.jsonl"
    with JsonlAppender(p) as app:
        app.write({"task_id": "1"})
    with open(p, "a") as fh:
        fh.write('{"task_id": "2", "comp')  # killed mid-write
    with JsonlAppender(p) as app:
        app.write({"task_id": "3"})
    assert [r["task_id"] for r in read_jsonl(p)] == ["1", "3"]


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl")
