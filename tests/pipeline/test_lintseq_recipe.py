"""The LintSeq recipe: the paper's setup (MBPP train, equal optimizer steps, MBPP + MBPP+ at two
temperatures, the comparison report), and the whole recipe run with a tiny model."""

from pathlib import Path

import pytest

from codeloop.evaluation.harness import EvalConfig, decode_lintseq
from codeloop.methods.lintseq import STOP_SEQUENCE, completion_text, lintseq_program
from codeloop.pipeline.recipe import load_recipe
from codeloop.pipeline.runner import run_recipe
from codeloop.records import Sample, read_jsonl

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_lintseq_recipe_is_the_papers_setup():
    r = load_recipe(RECIPES / "lintseq.yaml")
    assert r.model == "coder"
    data = r.stage("data").config
    assert (data.problems, data.split, data.instruction) == ("mbpp", "train", "description")
    edits = r.stage("edits").config
    plain, lintseq = r.stage("train_plain").config, r.stage("train_lintseq").config
    assert plain.file == "plain.jsonl" and plain.input == lintseq.input == "edits"
    # Equal optimizer steps: s sequences per program, so the plain arm takes s times the epochs.
    assert plain.epochs == lintseq.epochs * edits.s and plain.max_steps == lintseq.max_steps == -1
    assert plain.per_device_batch_size == lintseq.per_device_batch_size
    evals = [s for s in r.stages if type(s.config).__name__ == "LintSeqEvalConfig"]
    grid = {(s.config.arm, s.config.benchmark, s.config.split, s.config.temperature) for s in evals}
    assert grid == {(arm, bench, "test", t) for arm in ("edits", "plain") for bench in ("mbpp", "mbpp+")
                    for t in (0.8, 1.0)}
    assert all(s.config.n == 20 for s in evals)
    # the untuned model: the same grid, asked through its chat template
    base = [s for s in r.stages if s.type == "eval"]
    assert {(s.config.benchmark, s.config.split, s.config.temperature) for s in base} == \
        {(bench, "test", t) for bench in ("mbpp", "mbpp+") for t in (0.8, 1.0)}
    assert all(s.config.prompt_format == "instruction" and s.config.adapter_from is None for s in base)
    assert {(s.config.n, s.config.top_p, s.config.max_new_tokens) for s in base + evals} == {(20, 1.0, 512)}
    report = r.stage("report").config
    assert {row["eval"] for row in report.evals} == {s.name for s in evals + base}


def test_eval_decoding_turns_edit_sequences_into_programs():
    program = "def f(x):\n    y = x + 1\n    return y"
    (_, seq), = lintseq_program(program, s=1, seed=0)["sequences"]
    s = decode_lintseq(Sample(task_id="t", completion=completion_text(seq, True)))
    assert s.code == program + "\n" and s.extra["decode"]["hunks_malformed"] == 0
    params = EvalConfig(decode="lintseq").generation_params()
    assert params.stop == [STOP_SEQUENCE] and not params.default_stops


def test_lintseq_recipe_runs_with_a_tiny_model(tmp_path, tiny_model_dir, shared_data, monkeypatch):
    monkeypatch.setenv("CODELOOP_DATA", str(shared_data))
    recipe = load_recipe(RECIPES / "lintseq.yaml", [
        f"model={tiny_model_dir}", "vars.train_limit=3", "vars.s=2", "vars.plain_epochs=2", "vars.batch_size=1",
        "vars.eval_limit=2", "vars.n=2", "vars.max_new_tokens=8"])
    result = run_recipe(recipe, tmp_path / "runs", write_report=False)
    assert all(o.status == "ran" for o in result.stages), [(o.name, o.status) for o in result.stages]
    run = tmp_path / "runs" / "lintseq"
    sft = read_jsonl(run / "edits" / "sft.jsonl")
    assert len(sft) == 6 and all(r["prompt"].endswith("\n<|diff|>") and "`" in r["prompt"] for r in sft)
    samples = [r for p in (run / "eval_lintseq_t08" / "samples").glob("shard-*.jsonl") for r in read_jsonl(p)]
    assert len(samples) == 4 and all("decode" in s["extra"] for s in samples)
    sent = read_jsonl(run / "eval_lintseq_t08" / "prompts.jsonl")
    assert all(p["sent"].endswith("\n<|diff|>") and "`" in p["sent"] for p in sent)
    md = (run / "report" / "report.md").read_text()
    assert md.count("| lintseq |") == 4 and md.count("| plain |") == 4 and md.count("| base |") == 4
    assert "| lintseq | mbpp test | 0.8 | 2 |" in md and "| plain | mbpp+ test | 1.0 | 2 |" in md
    assert "not trained for equal" not in md  # 3 programs x 2 sequences, 1 epoch = 3 programs x 2 epochs
    assert (run / "report" / "passk.png").exists() and (run / "report" / "passk_tokens.png").exists()


def test_edits_refuse_records_whose_code_prompt_is_not_text():
    from codeloop.errors import UserError
    from codeloop.pipeline.stages_lintseq import LintSeqStageConfig, lintseq_inputs

    rec = {"instruction": "Double x.", "response": "def f(x):\n    return 2 * x\n", "prompt": "def f(x):\n"}
    out, _ = lintseq_inputs([rec], LintSeqStageConfig(input="d"), "stages.e")
    assert "`f(x)`" in out[0]["instruction"] and out[0]["program"].startswith("def f(x):")
    # sft_data with prompt_format: instruction writes the prompt as a conversation, not the code prompt
    chat = {**rec, "prompt": [{"role": "user", "content": "Double x."}]}
    with pytest.raises(UserError) as e:
        lintseq_inputs([rec, chat], LintSeqStageConfig(input="d"), "stages.e")
    assert e.value.where == "stages.e.code_prompt_field" and "record 1" in e.value.message
