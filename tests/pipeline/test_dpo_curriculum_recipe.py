"""The code-DPO curriculum setup: the shipped recipe's arms, and a tiny run of the same shape whose
report carries the per-bucket curve (one eval point per bucket, the shuffled arm at the same steps)."""

import json
from pathlib import Path

import pytest

from codeloop.pipeline.recipe import load_recipe
from codeloop.records import Problem, read_jsonl, write_jsonl

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "dpo_curriculum.yaml"
TRAIN_KEYS_OF_AN_ARM = ("input", "curriculum", "checkpoint_buckets", "align_with")


def test_shipped_recipe_arms_share_pairs_steps_and_seed():
    r = load_recipe(RECIPE)
    assert r.model == "coder"
    pairs = {s.name: s.config for s in r.stages if s.type == "pairs"}
    assert {(c.problems, c.split) for c in pairs.values()} == {("mbpp", "train"), ("easy", "train")}
    assert all(c.n >= 8 for c in pairs.values())
    cur = {s.name: s for s in r.stages if s.type == "curriculum"}
    assert {s.config.direction for s in cur.values()} == {"large-first", "small-first"}
    assert len({(s.config.input, tuple(s.config.merge)) for s in cur.values()}) == 1  # the same pairs
    assert all(s.config.drop_bottom and not s.config.signed for s in cur.values())  # the source's defaults
    arms = {s.name: s for s in r.stages if s.type == "train_dpo"}
    settings = [{k: v for k, v in s.raw.items() if k not in TRAIN_KEYS_OF_AN_ARM} for s in arms.values()]
    assert all(x == settings[0] for x in settings)  # same steps, batch, lr, seed (the run's)
    assert [s.config.curriculum for s in arms.values()].count(False) == 1
    shuffled = next(s for s in arms.values() if not s.config.curriculum)
    assert sorted(shuffled.config.align_with) == sorted(n for n, s in arms.items() if s.config.curriculum)
    assert cur[shuffled.config.input].type == "curriculum"
    (curve,) = [s for s in r.stages if s.type == "eval_buckets"]
    assert (curve.config.benchmark, curve.config.split) == ("mbpp", "test")
    assert sorted(curve.config.train) == sorted(arms)
    finals = [(s.config.benchmark, s.config.split, s.config.adapter_from) for s in r.stages if s.type == "eval"]
    for bench in ("mbpp", "mbpp+"):
        assert sorted(a or "" for b, sp, a in finals if b == bench and sp == "test") == sorted(["", *arms])


def test_shipped_recipe_is_small_with_overrides():
    r = load_recipe(RECIPE, ["vars.mbpp_train=2", "vars.easy_train=2", "vars.eval_limit=3", "vars.n=2",
                             "vars.mbppplus_limit=3", "vars.max_new_tokens=8"])
    assert {s.config.limit for s in r.stages if s.type == "pairs"} == {2}
    assert {s.config.limit for s in r.stages if s.type in ("eval", "eval_buckets")} == {3}
    assert {s.config.max_new_tokens for s in r.stages if hasattr(s.config, "max_new_tokens")} == {8}


def _problems(path: Path, start: int) -> Path:
    # As in test_pipeline_e2e: the tiny random model continues a comment; staying on one line passes,
    # spilling into code fails, so best-of-8 gives both verdicts and real pairs.
    probs = [Problem(task_id=f"tiny/{i}", prompt=f"def f{i}():\n    return {i}\n\n# note{i}:", entry_point=f"f{i}",
                     test=f"def check(candidate):\n    assert candidate() == {i}\n", description=f"return {i}",
                     canonical_solution=" ok\n", meta={"split": "train"}) for i in range(start, start + 7)]
    write_jsonl(path, probs)
    return path


def _recipe(tmp_path: Path, model_dir: Path) -> Path:
    a, b = _problems(tmp_path / "a.jsonl", 0), _problems(tmp_path / "b.jsonl", 7)
    dpo = "batch_size: 1, max_length: 64, learning_rate: 1.0e-3, save_steps: 50"
    text = f"""
name: tiny
model: {model_dir}
seed: 0
stages:
  - {{name: pairs_a, type: pairs, problems: "jsonl:{a}", split: null, n: 8, temperature: 1.0, max_new_tokens: 16,
     timeout_s: 5}}
  - {{name: pairs_b, type: pairs, problems: "jsonl:{b}", split: null, n: 8, temperature: 1.0, max_new_tokens: 16,
     timeout_s: 5}}
  - {{name: cur_large, type: curriculum, input: pairs_a, merge: [pairs_b], direction: large-first}}
  - {{name: cur_small, type: curriculum, input: pairs_a, merge: [pairs_b], direction: small-first}}
  - {{name: large, type: train_dpo, input: cur_large, curriculum: true, checkpoint_buckets: true, {dpo}}}
  - {{name: small, type: train_dpo, input: cur_small, curriculum: true, checkpoint_buckets: true, {dpo}}}
  - {{name: shuffled, type: train_dpo, input: cur_large, curriculum: false, align_with: [large, small], {dpo}}}
  - {{name: other, type: eval, benchmark: "jsonl:{a}", split: null, max_new_tokens: 5, timeout_s: 5}}
  - {{name: base_eval, type: eval, benchmark: "jsonl:{a}", split: null, max_new_tokens: 6, timeout_s: 5}}
  - {{name: shuffled_eval, type: eval, benchmark: "jsonl:{a}", split: null, max_new_tokens: 6, timeout_s: 5,
     adapter_from: shuffled}}
  - {{name: curve, type: eval_buckets, train: [large, small, shuffled], benchmark: "jsonl:{a}", split: null,
     max_new_tokens: 6, timeout_s: 5}}
"""
    p = tmp_path / "tiny.yaml"
    p.write_text(text)
    return p


@pytest.mark.slow
def test_the_run_report_has_one_eval_point_per_bucket(tmp_path, tiny_model_dir):
    from codeloop.pipeline.runner import run_recipe

    summary = run_recipe(load_recipe(_recipe(tmp_path, tiny_model_dir)), tmp_path / "runs")
    root = summary.root
    merged = read_jsonl(root / "cur_large" / "pairs.jsonl")
    assert {p["task_id"].split("/")[1] for p in merged} & {str(i) for i in range(7)}  # both pairs steps merged
    assert {p["task_id"].split("/")[1] for p in merged} & {str(i) for i in range(7, 14)}
    curve = json.loads((root / "curve" / "curve.json").read_text())
    steps = {}
    for arm, cur in (("large", "cur_large"), ("small", "cur_small")):
        buckets = [p["bucket"] for p in sorted(read_jsonl(root / cur / "pairs.jsonl"), key=lambda p: p["order"])]
        runs = [b for i, b in enumerate(buckets) if i == 0 or buckets[i - 1] != b]
        assert len(runs) >= 2, "the tiny run must give at least two buckets"
        points = [r for r in curve if r["arm"] == arm and r["step"] > 0]
        assert [r["buckets"] for r in points] == [[b] for b in runs]  # one eval point per bucket, in order
        # batch 1: bucket k ends after the pairs of buckets 1..k
        assert [r["step"] for r in points] == [sum(1 for x in buckets[:i + 1]) for i, b in enumerate(buckets)
                                                if i + 1 == len(buckets) or buckets[i + 1] != b]
        steps[arm] = {r["step"] for r in points}
    shuffled = {r["step"] for r in curve if r["arm"] == "shuffled" and r["step"] > 0}
    assert shuffled == steps["large"] | steps["small"]  # the baseline at the same step counts
    assert all(r["pass@1"] == curve[0]["pass@1"] for r in curve if r["step"] == 0)  # one base model, step 0
    assert all(r["ci"][0] <= r["pass@1"] <= r["ci"][1] for r in curve)
    # the base model and the shuffled arm's final model were evaluated above with the same settings:
    # read back, not sampled again; 'other' (another token budget) is not the same evaluation
    reused = json.loads((root / "curve" / "metrics.json").read_text())["reused"]
    last = max(shuffled)
    assert reused == {"base": "base_eval", f"shuffled/step-{last}": "shuffled_eval"}
    assert not (root / "curve" / "base").exists() and not (root / "curve" / "shuffled" / f"step-{last}").exists()
    for row, stage in ((curve[0], "base_eval"), ([r for r in curve if r["arm"] == "shuffled"][-1], "shuffled_eval")):
        assert row["pass@1"] == pytest.approx(json.loads((root / stage / "metrics.json").read_text())["pass@k"]["pass@1"])
    report = (root / "report.md").read_text()
    assert "curve/bucket_curve.png" in report and "| large | " in report and "| shuffled | " in report
    table = (root / "curve" / "bucket_curve.md").read_text()
    assert sum(line.startswith("| large | ") for line in table.splitlines()) == len(steps["large"]) + 1
    assert "bucket_curve" in (root / "report.html").read_text()


def test_shipped_recipe_samples_trains_and_evaluates_in_one_prompt_format():
    r = load_recipe(RECIPE)
    formats = {s.name: s.config.prompt_format for s in r.stages if s.type in ("pairs", "eval", "eval_buckets")}
    assert set(formats.values()) == {"instruction"}, formats  # the Instruct model through its chat template
    r = load_recipe(RECIPE, ["vars.prompt_format=completion"])
    assert {s.config.prompt_format for s in r.stages if hasattr(s.config, "prompt_format")} == {"completion"}


@pytest.mark.slow
def test_instruction_pairs_keep_the_rendered_prompt_dpo_trains_on(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from codeloop.generation import GenerationParams
    from codeloop.generation.prompts import build_prompt
    from codeloop.pipeline.runner import run_recipe
    from codeloop.problems import load_problems

    a = _problems(tmp_path / "a.jsonl", 0)
    (tmp_path / "r.yaml").write_text(f"""
name: instr
model: {tiny_model_dir}
seed: 0
stages:
  - {{name: pairs, type: pairs, problems: "jsonl:{a}", split: null, n: 8, temperature: 1.0, max_new_tokens: 16,
     timeout_s: 5, prompt_format: instruction, chat: plain}}
""")
    summary = run_recipe(load_recipe(tmp_path / "r.yaml"), tmp_path / "runs")
    samples = read_jsonl(next((summary.root / "pairs" / "samples").glob("shard-*.jsonl")))
    params = GenerationParams(prompt_format="instruction", chat="plain")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = {p.task_id: build_prompt(p, params, tok) for p in load_problems(f"jsonl:{a}", split=None)}
    assert expected and all(s["prompt"] == expected[s["task_id"]] for s in samples)
    assert all(s["prompt"].endswith("### Response:\n```python\n") for s in samples)
    for pair in read_jsonl(summary.root / "pairs" / "pairs.jsonl"):  # may be none: then the samples suffice
        assert pair["prompt"] == expected[pair["task_id"]]
