"""`codeloop sample` end to end on a tiny model."""

from __future__ import annotations

import json

import pytest

from codeloop.cli import main
from codeloop.records import Sample, read_jsonl


@pytest.fixture()
def problems_file(tmp_path):
    path = tmp_path / "problems.jsonl"
    rows = [{"task_id": f"t/{i}", "prompt": f"def f{i}(x):\n", "entry_point": f"f{i}",
             "test": f"assert f{i}(1) == 1"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sample_writes_n_samples_per_problem(tiny_model_dir, problems_file, tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    rc = main(["sample", "--model", str(tiny_model_dir), "--problems", f"jsonl:{problems_file}", "-n", "2",
               "--temperature", "0.7", "--max-new-tokens", "8", "--dtype", "fp32", "--limit", "2", "--out", str(out)])
    assert rc == 0
    samples = read_jsonl(out, Sample)
    assert [(s.task_id, s.sample_id) for s in samples] == [("t/0", 0), ("t/0", 1), ("t/1", 0), ("t/1", 1)]
    assert all(s.params["temperature"] == 0.7 and s.code.startswith(s.prompt) for s in samples)
    assert "4 samples for 2 problems" in capsys.readouterr().err


@pytest.mark.parametrize("args, where", [
    (["--model", "./no/such/model"], "--model"),
    (["--temperature", "-1"], "--temperature"),
    (["--prompt-format", "chatty"], "--prompt-format"),
    (["--backend", "tpu"], "--backend"),
    (["--backend", "openai"], "--base-url"),
])
def test_user_mistakes_exit_2_with_the_option_named(tiny_model_dir, problems_file, tmp_path, capsys, args, where):
    base = ["sample", "--model", str(tiny_model_dir), "--problems", f"jsonl:{problems_file}",
            "--out", str(tmp_path / "s.jsonl")]
    assert main(base + args) == 2
    assert where in capsys.readouterr().err
    assert not (tmp_path / "s.jsonl").exists()
