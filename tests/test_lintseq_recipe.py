"""The LintSeq recipe loads, and its data + training + decoding stages run with a tiny model."""

from pathlib import Path

from codeloop.evaluation.harness import EvalConfig, decode_lintseq
from codeloop.methods.lintseq import STOP_SEQUENCE, lintseq_program
from codeloop.pipeline.recipe import load_recipe
from codeloop.pipeline.runner import run_recipe
from codeloop.records import Sample, read_jsonl

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_lintseq_recipe_loads():
    r = load_recipe(RECIPES / "lintseq.yaml")
    assert r.stage("train_plain").config.max_steps == r.stage("train_lintseq").config.max_steps
    assert r.stage("eval_lintseq").config.decode == "lintseq"


def test_eval_decoding_turns_edit_sequences_into_programs():
    program = "def f(x):\n    y = x + 1\n    return y"
    (_, seq), = lintseq_program(program, s=1, seed=0)["sequences"]
    completion = "\n<|diff|>" + "\n<|diff|>".join(seq)
    s = decode_lintseq(Sample(task_id="t", completion=completion))
    assert s.code == program and s.extra["decode"]["hunks_malformed"] == 0
    params = EvalConfig(decode="lintseq").generation_params()
    assert params.stop == [STOP_SEQUENCE] and not params.default_stops


def test_lintseq_stages_with_tiny_model(tmp_path, tiny_model_dir):
    recipe = tmp_path / "ls.yaml"
    recipe.write_text(f"""
name: ls
model: {tiny_model_dir}
stages:
  - {{name: data, type: sft_data, problems: humaneval, split: null, limit: 3, instruction: prompt}}
  - {{name: edits, type: lintseq, input: data, s: 2, workers: 1}}
  - {{name: train_lintseq, type: train_sft, input: edits, max_steps: 2, batch_size: 2, max_length: 2048}}
  - {{name: eval_lintseq, type: eval, benchmark: humaneval, limit: 2, max_new_tokens: 8,
     adapter_from: train_lintseq, decode: lintseq}}
""")
    result = run_recipe(load_recipe(recipe), tmp_path / "runs", write_report=False)
    assert [o.status for o in result.stages] == ["ran"] * 4
    sft = read_jsonl(tmp_path / "runs" / "ls" / "edits" / "sft.jsonl")
    assert len(sft) == 6 and all(r["completion"].startswith("\n<|diff|>") for r in sft)
    samples = [r for p in (tmp_path / "runs" / "ls" / "eval_lintseq" / "samples").glob("shard-*.jsonl")
               for r in read_jsonl(p)]
    assert len(samples) == 2 and all("decode" in s["extra"] for s in samples)
