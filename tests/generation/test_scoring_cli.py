"""`codeloop score` end to end on a tiny model."""

from __future__ import annotations

import json
import math

import pytest

from codeloop.cli import main
from codeloop.records import read_jsonl


@pytest.fixture()
def records(tmp_path):
    path = tmp_path / "in.jsonl"
    rows = [{"id": 1, "instruction": "Add two numbers.", "response": "return a + b\n"},
            {"id": 2, "instruction": "Print 1 to 9.", "response": "for i in range(10):\n    print(i)\n"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ppl_and_ifd_are_added_to_the_records(tiny_model_dir, records, tmp_path, capsys):
    out = tmp_path / "ppl.jsonl"
    assert main(["score", str(records), "--model", str(tiny_model_dir), "--dtype", "fp32", "--out", str(out)]) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [1, 2]
    assert all(r["ppl"] == pytest.approx(math.exp(r["mean_nll"])) and r["n_tokens"] > 0 for r in rows)
    out2 = tmp_path / "ifd.jsonl"
    assert main(["score", str(records), "--model", str(tiny_model_dir), "--dtype", "fp32", "--metric", "ifd",
                 "--out", str(out2)]) == 0
    for r in read_jsonl(out2):
        assert r["ifd"] == pytest.approx(r["ppl_conditional"] / r["ppl_unconditional"])
    assert "scored 2 records (ifd" in capsys.readouterr().err


def test_missing_fields_name_the_line(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "answer": "b"}) + "\n" + json.dumps({"prompt": "a"}) + "\n")
    assert main(["score", str(bad), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert f"{bad}:2" in capsys.readouterr().err
    none = tmp_path / "none.jsonl"
    none.write_text(json.dumps({"q": "a"}) + "\n")
    assert main(["score", str(none), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "--prompt-field" in capsys.readouterr().err
    assert main(["score", str(none), "--metric", "bleu", "--out", str(tmp_path / "o.jsonl")]) == 2
