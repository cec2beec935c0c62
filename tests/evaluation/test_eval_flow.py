"""The eval flow end-to-end with a tiny model: sample -> execute -> pass@k -> page, resumable."""

import json

import pytest

from codeloop.cli import main
from codeloop.evaluation.harness import EvalConfig, evaluate
from codeloop.records import read_jsonl


def test_eval_tiny_model_end_to_end(tmp_path, tiny_model_dir):
    out = tmp_path / "ev"
    cfg = EvalConfig(benchmark="humaneval", model=str(tiny_model_dir), limit=3, max_new_tokens=8)
    s = evaluate(cfg, out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_problems"] == 3 and m["n_samples"] == 3 and sum(m["status"].values()) == 3
    assert 0.0 <= m["pass@k"]["pass@1"] <= 1.0 and s.passk == m["pass@k"]
    assert m["tokens"] > 0 and m["wall_s"]["sample"] > 0
    per = read_jsonl(out / "per_problem.jsonl")
    assert [p["task_id"] for p in per] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    html = (out / "eval.html").read_text()
    assert "data:image/png;base64," in html and "HumanEval/" in html
    # a rerun finds both stages done and changes nothing
    before = (out / "results" / "shard-00000.jsonl").read_text()
    evaluate(cfg, out)
    assert (out / "results" / "shard-00000.jsonl").read_text() == before
    assert not (out / "results" / "shard-00001.jsonl").exists()


def test_eval_compare_cli(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"task_id": f"t{i}", "status": "passed" if i < 2 else "failed"}) + "\n"
                         for i in range(6)))
    b.write_text("".join(json.dumps({"task_id": f"t{i}", "status": "passed" if i < 5 else "failed"}) + "\n"
                         for i in range(6)))
    assert main(["eval", "compare", str(a), str(b), "--out", str(tmp_path / "c.json")]) == 0
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["only_b"] == ["t2", "t3", "t4"] and c["only_a"] == []
    assert c["deltas"]["pass@1"]["delta"] == pytest.approx(0.5)
    assert c["mcnemar_p"] == pytest.approx(0.25)  # b=0, c=3: 2 * 1/8


@pytest.mark.parametrize("args,msg", [
    (["eval", "--benchmark", "nope", "--out", "x"], "unknown problem set"),
    (["eval", "--benchmark", "humaneval"], "--out"),
    (["eval", "-n", "2", "--out", "x"], "--temperature"),
    (["eval", "--k", "1,x", "--out", "x"], "--k"),
])
def test_eval_user_errors(args, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert msg in capsys.readouterr().err


@pytest.mark.parametrize("benchmark,split", [("humaneval", None), ("easy", "test")])
def test_canonical_solutions_score_one(tmp_path, benchmark, split):
    s = evaluate(EvalConfig(benchmark=benchmark, split=split, model="canonical"), tmp_path / "c")
    assert s.metrics["pass@k"]["pass@1"] == 1.0, s.metrics["status"]
    assert s.metrics["n_problems"] >= 164


def test_eval_samples_in_fp32_by_default_and_a_dtype_change_resamples(tmp_path, tiny_model_dir, monkeypatch):
    import codeloop.generation as generation

    loaded = []
    real = generation.get_generator

    def spy(backend="hf", model="default", adapter=None, **options):
        loaded.append(options.get("dtype"))
        return real(backend, model, adapter=adapter, **options)

    monkeypatch.setattr(generation, "get_generator", spy)
    out = tmp_path / "ev"
    cfg = EvalConfig(benchmark="humaneval", model=str(tiny_model_dir), limit=2, max_new_tokens=4)
    evaluate(cfg, out)
    assert loaded == ["fp32"]
    assert "dtype: fp32" in (out / "samples" / "config.yaml").read_text()
    # the same folder with another dtype does not reuse the fp32 samples
    evaluate(EvalConfig(**{**cfg.__dict__, "dtype": "bf16"}), out)
    assert loaded == ["fp32", "bf16"]
