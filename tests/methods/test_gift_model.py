"""GiFT with a real (tiny, random) model: chains sample from it and it stays frozen; the recipe's
stages run end to end on a tiny problem set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeloop.methods.gift import GiFTConfig, freeze, model_scorer, run_chains
from codeloop.records import Problem, write_jsonl

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "gift.yaml"


def _checksum(model) -> float:
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def test_tiny_model_chain_two_rounds_stays_frozen(tmp_path, tiny_model_dir):
    from codeloop.generation import HFGenerator
    from codeloop.models import load_model
    from codeloop.problems import load_problems

    model, tok = load_model(str(tiny_model_dir), dtype="fp32")
    freeze(model)
    before = _checksum(model)
    problems = load_problems("easy", split="train", limit=3)
    cfg = GiFTConfig(iters=2, num_seq=2, k=2, max_new_tokens=12, summary_max_new_tokens=12, batch_size=4)
    gen = HFGenerator(model, tok, name="tiny")
    records, per_round = run_chains(problems, cfg, gen, model_scorer(model, tok), tmp_path)
    assert _checksum(model) == before and not any(p.requires_grad for p in model.parameters())
    assert not model.training
    assert [m["round"] for m in per_round] == [0, 1]
    r0 = [r for r in records if r["round"] == 0]
    assert sorted(r["task_id"] for r in r0) == sorted(p.task_id for p in problems)
    assert all(len(r["samples"]) == 2 for r in r0)
    assert all(r["code_prompt"] == p.prompt for r, p in zip(sorted(r0, key=lambda r: r["task_id"]),
                                                            sorted(problems, key=lambda p: p.task_id)))
    # A random model passes nothing: keep-last continues from the reference, whose summary is
    # the next description (or the previous one when the summary came out empty).
    for r in r0:
        assert r["summarised"] in ("kept", "reference") and isinstance(r["next_description"], str)
        assert r["next_description"].strip()
    r1 = {r["task_id"]: r for r in records if r["round"] == 1}
    by_id = {p.task_id: p for p in problems}
    for r in r0:
        nxt = r1[r["task_id"]]
        assert nxt["description"] == r["next_description"]
        assert nxt["code_prompt"].startswith(by_id[r["task_id"]].prompt.split('"""')[0])  # the reference frame
    assert per_round[0]["code_samples"] == 6 and per_round[0]["summaries"] == 3


def _passable_problems(path: Path, n: int) -> Path:
    # The prompt ends inside a comment after a finished body: a completion without a newline is
    # inert, so a random tiny model passes now and then and the chain has codes to keep.
    rows = []
    for i in range(n):
        rows.append(Problem(task_id=f"toy/{i}", entry_point=f"f{i}",
                            prompt=f"def f{i}():\n    \"\"\" Return {i}.\n    \"\"\"\n    return {i}  #",
                            description=f"Return {i}.", canonical_solution=" done\n",
                            test=f"\n\ndef check(candidate):\n    assert candidate() == {i}\n",
                            meta={"split": "train" if i < n - 2 else "test"}))
    write_jsonl(path, rows)
    return path


@pytest.mark.slow
def test_tiny_gift_recipe_end_to_end(tmp_path, tiny_model_dir):
    from codeloop.pipeline.recipe import load_recipe
    from codeloop.pipeline.runner import run_recipe

    data = _passable_problems(tmp_path / "toy.jsonl", 8)
    spec = f"jsonl:{data}"
    overrides = [f"model={tiny_model_dir}", f"vars.problems={spec}", f"vars.eval_benchmark={spec}",
                 f"vars.plus_benchmark={spec}", "vars.plus_split=train", "vars.plus_limit=2",
                 "vars.train_limit=6", "vars.iters=2", "vars.num_seq=3", "vars.k=2", "vars.max_new_tokens=3",
                 "vars.eval_limit=2", "vars.steps=2", "vars.batch_size=4", "stages.gift.summary_max_new_tokens=8",
                 # completion prompts: a random model's inert continuations pass these toy problems
                 "vars.prompt_format=completion", "vars.eval_max_new_tokens=3"]
    recipe = load_recipe(RECIPE, overrides)
    summary = run_recipe(recipe, runs_dir=tmp_path / "runs", write_report=False)
    root = tmp_path / "runs" / "gift"
    by = {o.name: o for o in summary.stages}
    assert [o.name for o in summary.stages] == ["eval_before", "eval_plus_before", "gift", "self_training",
                                                "train_gift", "train_self", "eval_self", "eval_gift",
                                                "eval_plus_self", "eval_plus_gift"]
    g = by["gift"].metrics
    # The training set: the 6 seeds' gold solutions + k resampled codes per problem with a kept code.
    assert g["rounds"] == 2 and g["resampled_records"] == 2 * g["problems_with_kept"] > 0
    assert g["gold_records"] == 6 and g["records"] == 6 + g["resampled_records"]
    assert len(g["share_with_pass_per_round"]) == 2 and g["chain_samples_per_s"] > 0
    sft = [json.loads(x) for x in (root / "gift" / "sft.jsonl").read_text().splitlines()]
    assert all(r["prompt"].endswith("#") and r["completion"] for r in sft)
    assert sum(r["completion"] == " done\n" for r in sft) >= 6  # the gold solutions
    for name in ("gift_rounds.png", "gift_ppl_hist.png", "gift_resampling.png", "gift_rounds.md"):
        assert (root / "gift" / name).exists(), name
    table = (root / "gift" / "gift_rounds.md").read_text()
    assert "| round |" in table and "Resampling (ppl-softmax" in table and "gold solutions" in table
    assert (root / "gift" / "chains" / "round-01" / "_DONE").exists()
    st = by["self_training"].metrics
    assert st["samples_per_problem"] == 6 and st["samples"] == 36  # the gift stage's budget
    assert st["gold_records"] == 6 and (root / "self_training" / "self_training.md").exists()
    for name in ("train_gift", "train_self"):
        assert by[name].metrics["steps"] == 2 and (root / name / "final").is_dir()
    for name in ("eval_before", "eval_self", "eval_gift", "eval_plus_self", "eval_plus_gift"):
        assert set(by[name].metrics["pass@k"]) == {"pass@1"} and by[name].metrics["samples"] == 2
    again = run_recipe(load_recipe(RECIPE, overrides), runs_dir=tmp_path / "runs", write_report=False)
    assert all(o.status == "skipped" for o in again.stages)
    # The report puts the two trained arms head to head; its deltas are B - A of the evals' own pass@k.
    from codeloop.pipeline.report import eval_rows, head_to_head, write_report
    from codeloop.rundir import RunDir

    duels = {(d["a"], d["b"]): d for d in head_to_head(eval_rows(RunDir(root)))}
    assert ("eval_self", "eval_gift") in duels and ("eval_plus_self", "eval_plus_gift") in duels
    want = by["eval_gift"].metrics["pass@k"]["pass@1"] - by["eval_self"].metrics["pass@k"]["pass@1"]
    assert duels[("eval_self", "eval_gift")]["deltas"]["pass@1"]["delta"] == pytest.approx(want)
    write_report(root)
    report = (root / "report.md").read_text()
    assert "Trained arms, head to head" in report and "Resampling (ppl-softmax" in report  # the stage's table
