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


def test_lone_surrogates_round_trip_through_every_writer(tmp_path):
    from codeloop.records import atomic_write_text

    rec = Sample(task_id="t", completion='x = "\ud800"\n', extra={"k\udcff": "v"})
    write_jsonl(tmp_path / "w.jsonl", [rec])
    write_jsonl(tmp_path / "w.jsonl.gz", [rec])
    with JsonlAppender(tmp_path / "a.jsonl") as app:
        app.write(rec)
    for name in ("w.jsonl", "w.jsonl.gz", "a.jsonl"):
        assert read_jsonl(tmp_path / name, Sample) == [rec]
    (tmp_path / "a.jsonl").read_bytes().decode("utf-8")  # valid UTF-8
    # other text is kept readable, not escaped
    write_jsonl(tmp_path / "u.jsonl", [Sample(task_id="t", completion="é")])
    assert "é" in (tmp_path / "u.jsonl").read_text(encoding="utf-8")
    atomic_write_text(tmp_path / "page.html", "<pre>\ud800</pre>")
    assert (tmp_path / "page.html").read_text(encoding="utf-8") == "<pre>\\ud800</pre>"


@pytest.mark.parametrize("line,field", [
    ('{"task_id": "a", "extra": 3}', "'extra'"), ('{"task_id": "a", "completion": null}', "'completion'"),
    ('{"task_id": "a", "sample_id": true}', "'sample_id'"), ('{"task_id": null}', "'task_id'"),
    ('{"task_id": {"x": 1}}', "'task_id'"), ('{"task_id": "a", "n_tokens": 1.5}', "'n_tokens'"),
])
def test_sample_field_types_are_checked(tmp_path, line, field):
    p = tmp_path / "s.jsonl"
    p.write_text('{"task_id": "a"}\n' + line + "\n")
    with pytest.raises(UserError) as err:
        read_jsonl(p, Sample)
    assert err.value.where == f"{p}:2" and field in err.value.message


def test_samples_without_ids_are_numbered_and_repeats_refused(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"task_id": "a"}\n{"task_id": "b"}\n{"task_id": "a", "sample_id": 0}\n{"task_id": "a"}\n')
    assert [(s.task_id, s.sample_id) for s in read_jsonl(p, Sample)] == [("a", 1), ("b", 0), ("a", 0), ("a", 2)]
    p.write_text('{"task_id": "a", "sample_id": 1}\n\n{"task_id": "a", "sample_id": 1}\n')
    with pytest.raises(UserError) as err:
        read_jsonl(p, Sample)
    assert err.value.where == f"{p}:3" and "line 1" in err.value.message


def test_unreadable_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="directory"):
        read_jsonl(tmp_path)
    with pytest.raises(UserError, match="not found"):
        read_jsonl(tmp_path / "nope.jsonl")
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"task_id": "a"}\n{"task_id": "\xff"}\n')
    with pytest.raises(UserError) as err:
        read_jsonl(p)
    assert err.value.where == f"{p}:2" and "UTF-8" in err.value.message
