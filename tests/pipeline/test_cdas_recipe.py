"""CodeACT recipe and stages: recipes/codeact.yaml validates; a tiny version runs end to end."""

import json
from pathlib import Path

import pytest

from codeloop.errors import UserError
from codeloop.pipeline.recipe import load_recipe
from codeloop.pipeline.stages_cdas import problem_sft_record
from codeloop.training.memory import PeakMemory
from codeloop.records import Problem

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "codeact.yaml"


def test_codeact_recipe_validates_and_compares_the_six_variants():
    r = load_recipe(RECIPE)
    names = [s.name for s in r.stages]
    by_name = {s.name: s for s in r.stages}
    assert r.model == "coder"
    data = by_name["data"].config
    assert (data.problems, data.split, data.limit) == ("mbpp", "train", None)  # all 374, >= 300 records
    # trained as it is evaluated: the Instruct model's chat turn, in the records and every eval
    assert {data.prompt_format} | {s.config.prompt_format for s in r.stages if s.type == "eval"} == {"instruction"}
    assert by_name["select_cdas"].config.method == "cdas" and by_name["select_cdas"].config.ratio == 0.4
    assert by_name["select_cdas"].config.clusters == 10 and by_name["select_cdas"].config.template == "trained"
    assert by_name["select_random"].config.size_from == "select_cdas"
    trains = [s for s in r.stages if s.type == "train_sft_profiled"]
    assert sorted((s.config.input, s.config.packing) for s in trains) == sorted(
        (d, p) for d in ("data", "select_cdas", "select_random") for p in ("pad-to-longest", "codeact"))
    # the same settings for every variant: only the data and the batch layout differ
    settings = {(s.config.max_steps, s.config.epochs, s.config.learning_rate, s.config.per_device_batch_size,
                 s.config.lora, s.config.max_length, s.config.pack_layout) for s in trains}
    assert settings == {(-1, 3.0, 5e-5, 16, False, 2048, "next-fit")}
    evals = [s for s in r.stages if s.type == "eval"]
    assert {(s.config.benchmark, s.config.split, s.config.limit) for s in evals} == {("mbpp", "test", None),
                                                                                    ("mbpp+", "test", None)}
    for bench in ("mbpp", "mbpp+"):
        assert {s.config.adapter_from for s in evals if s.config.benchmark == bench} == \
            {None} | {s.name for s in trains}
    table = by_name["table"].config
    assert len(table.rows) == 6
    for row in table.rows:  # the table names stages that run before it, each eval of its own train step
        assert names.index(row["train"]) < names.index("table")
        assert set(row["eval"]) == {"mbpp", "mbpp+"}
        for bench, step in row["eval"].items():
            assert names.index(step) < names.index("table")
            assert by_name[step].config.adapter_from == row["train"] and by_name[step].config.benchmark == bench
    assert {by_name[s].config.adapter_from for s in table.base_eval.values()} == {None}
    small = load_recipe(RECIPE, ["vars.train_limit=20", "vars.ratio=0.5", "stages.select_cdas.clusters=3",
                                 "vars.eval_limit=5", "vars.plus_limit=5", "vars.lora=true", "vars.epochs=1"])
    assert small.stage("data").config.limit == 20 and small.stage("select_cdas").config.ratio == 0.5
    assert small.stage("select_cdas").config.clusters == 3 and small.stage("eval_plus_cdas").config.limit == 5
    assert small.stage("train_cdas").config.lora is True and small.stage("train_cdas_dp").config.epochs == 1.0


def _recipe(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("stage,where", [
    ("{name: s, type: select, input: d, method: best}", "stages.s.method"),
    ("{name: s, type: select, input: d, ratio: 1.5}", "stages.s.ratio"),
    ("{name: s, type: select, input: d, method: cdas, size: 3}", "stages.s.size"),
    ("{name: s, type: select, input: d, size: 3, size_from: d}", "stages.s.size_from"),
    ("{name: s, type: select, method: random}", "stages.s.input"),
    ("{name: s, type: select, input: nope}", "stages.s.input"),
    ("{name: s, type: select, input: d, clusterz: 3}", "stages.s.clusterz"),
    ("{name: s, type: sft_data, instruction: title}", "stages.s.instruction"),
    ("{name: s, type: sft_data, prompt_format: chatty}", "stages.s.prompt_format"),
    ("{name: s, type: sft_data, chat: always}", "stages.s.chat"),
    ("{name: s, type: train_sft_profiled, input: d, packing: fancy, pack_layout: next-fit}", "stages.s.packing"),
    ("{name: s, type: cdas_table, rows: [{label: a, train: d}]}", "stages.s.rows[0].eval"),
    ("{name: s, type: cdas_table, rows: [{label: a, train: d, eval: {mbpp: 3}}]}", "stages.s.rows[0].eval"),
    ("{name: s, type: cdas_table, rows: [{label: a, train: d, eval: {x: e}}, {label: b, train: d, eval: e}]}",
     "stages.s.rows[1].eval"),
    ("{name: s, type: cdas_table, base_eval: e, rows: [{label: a, train: d, eval: {x: e}}]}", "stages.s.base_eval"),
])
def test_stage_mistakes_name_their_key(tmp_path, stage, where):
    p = _recipe(tmp_path, f"name: t\nstages:\n  - {{name: d, type: sft_data}}\n  - {stage}\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    assert e.value.where.endswith(where), e.value.where


def test_sft_records_from_problems():
    fn = Problem(task_id="e/1", prompt="def f(x):\n    \"\"\"Double x.\"\"\"\n", description="Double x.",
                 canonical_solution="    return 2 * x\n", entry_point="f", test="assert f(1) == 2")
    rec = problem_sft_record(fn)
    assert rec["instruction"] == "Double x." and rec["response"] == fn.prompt + fn.canonical_solution
    assert rec["prompt"] == fn.prompt and rec["completion"] == "    return 2 * x\n"
    assert problem_sft_record(fn, "prompt")["instruction"] == fn.prompt.strip()
    no_desc = Problem(task_id="e/2", prompt="def g():\n", canonical_solution="    return 1\n")
    assert problem_sft_record(no_desc)["instruction"] == "def g():"
    stdio = Problem(task_id="s/1", prompt="# read n, print n+1\n", description="Print n + 1.",
                    canonical_solution="print(int(input()) + 1)\n", io_tests=[{"input": "1\n", "output": "2\n"}])
    assert problem_sft_record(stdio)["response"] == "print(int(input()) + 1)\n"
    assert problem_sft_record(Problem(task_id="x", prompt="def h():\n")) is None


def test_instruction_records_train_what_the_instruction_eval_asks(tiny_model_dir):
    # The Instruct model is evaluated through its chat template; its training pairs must be the same
    # text: the rendered request, then the answer's code block opened by the eval's response prefix.
    from transformers import AutoTokenizer

    from codeloop.generation import GenerationParams, build_prompt, extract_code
    from codeloop.methods.codeact.pairs import sft_rows, trained_pair

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    fn = Problem(task_id="e/1", prompt="def f(x):\n    \"\"\"Double x.\"\"\"\n", description="Double x.",
                 canonical_solution="    return 2 * x\n", entry_point="f", test="assert f(1) == 2")
    stdio = Problem(task_id="s/1", prompt="# read n, print n+1\n", description="Print n + 1.",
                    canonical_solution="print(int(input()) + 1)", io_tests=[{"input": "1\n", "output": "2\n"}])
    for chat in ("auto", "plain"):
        params = GenerationParams(prompt_format="instruction", chat=chat)
        for problem in (fn, stdio):
            rec = problem_sft_record(problem, params=params)
            assert rec["response"].startswith(problem.canonical_solution if problem is stdio else problem.prompt)
            assert isinstance(rec["prompt"], list if chat == "auto" else str)
            pair = trained_pair(sft_rows([("r", rec)])[0], tok)
            asked = build_prompt(problem, params, tok)
            assert (pair.instruction + pair.response).startswith(asked)
            answer = (pair.instruction + pair.response)[len(asked):]
            assert extract_code(answer, params.response_prefix) == rec["response"].rstrip("\n") + "\n"
            assert "```" in answer  # the block is closed where sampling would stop
    assert problem_sft_record(fn, params=GenerationParams())["prompt"] == fn.prompt  # completion: unchanged


def test_peak_memory_sees_an_allocation_inside_the_block():
    with PeakMemory() as mem:
        block = bytearray(200 * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
        del block
    with PeakMemory() as after:
        pass
    if mem.peak_mb is None:
        pytest.skip("no /proc/self/status here")
    assert mem.peak_mb - mem.before_mb >= 150
    assert after.peak_mb - after.before_mb < 150  # the reset worked: the earlier peak is not carried
    assert mem.metrics()["peak_rss_delta_mb"] >= 150


def _tiny_recipe(tmp_path: Path, model_dir: Path, with_eval: bool) -> Path:
    train = ("max_steps: 2, batch_size: 2, max_length: 512, save_steps: 1, learning_rate: 1.0e-3, "
             "lora_r: 4")
    evals = ""
    table = ""
    if with_eval:
        evals = "\n".join(
            f"  - {{name: eval_{t}, type: eval, benchmark: easy, split: test, limit: 2, max_new_tokens: 4, "
            f"prompt_format: instruction, adapter_from: train_{t}, timeout_s: 5}}" for t in ("cdas", "cdas_dp", "random"))
        evals += ("\n  - {name: eval_base, type: eval, benchmark: easy, split: test, limit: 2, max_new_tokens: 4, "
                  "prompt_format: instruction, timeout_s: 5}")
        # two columns (the recipe's mbpp / mbpp+), here the same eval step twice
        table = ("  - {name: table, type: cdas_table, base_eval: {a: eval_base, b: eval_base}, rows: ["
                 "{label: cdas, train: train_cdas, eval: {a: eval_cdas, b: eval_cdas}}, "
                 "{label: cdas+dp, train: train_cdas_dp, eval: {a: eval_cdas_dp, b: eval_cdas_dp}}, "
                 "{label: random, train: train_random, eval: {a: eval_random, b: eval_random}}]}")
    text = f"""
name: tiny_codeact
model: {model_dir}
seed: 0
stages:
  - {{name: data, type: sft_data, problems: easy, split: train, limit: 16, prompt_format: instruction}}
  - {{name: select_cdas, type: select, input: data, method: cdas, ratio: 0.5, clusters: 3, rounding: ceil,
     max_length: 256}}
  - {{name: select_random, type: select, input: data, method: random, size_from: select_cdas}}
  - {{name: train_cdas, type: train_sft_profiled, input: select_cdas, packing: pad-to-longest, {train}}}
  - {{name: train_cdas_dp, type: train_sft_profiled, input: select_cdas, packing: codeact, {train}}}
  - {{name: train_random, type: train_sft_profiled, input: select_random, packing: codeact, {train}}}
{evals}
{table}
"""
    return _recipe(tmp_path, text)


def _execution_available() -> bool:
    try:
        import codeloop.evaluation.harness  # noqa: F401
        import codeloop.execution  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_tiny_codeact_recipe_end_to_end(tmp_path, tiny_model_dir):
    from codeloop.pipeline.runner import run_recipe

    with_eval = _execution_available()
    recipe = load_recipe(_tiny_recipe(tmp_path, tiny_model_dir, with_eval))
    summary = run_recipe(recipe, runs_dir=tmp_path / "runs", write_report=with_eval)
    root = tmp_path / "runs" / "tiny_codeact"
    data = [json.loads(x) for x in (root / "data" / "sft.jsonl").read_text().splitlines()]
    assert len(data) == 16 and all(set(r) >= {"instruction", "response", "prompt", "completion"} for r in data)

    stats = json.loads((root / "select_cdas" / "stats.json").read_text())
    kept = [json.loads(x) for x in (root / "select_cdas" / "sft.jsonl").read_text().splitlines()]
    assert stats["k_used"] == 3 and stats["kept"] == len(kept) > 0
    # scored the pair training learns: the prompt as it is -> the completion
    assert (stats["pair"], stats["instruction_field"], stats["response_field"]) == ("trained", "prompt", "completion")
    assert stats["template"] == "{q}"
    assert all(r["ifd"] < 1 and r["cluster"] in (0, 1, 2) and r["prompt"] and r["completion"] for r in kept)
    assert (root / "select_cdas" / "ifd_hist.png").exists() and (root / "select_cdas" / "clusters.png").exists()
    rand = (root / "select_random" / "sft.jsonl").read_text().splitlines()
    assert len(rand) == len(kept)  # size_from: the same data budget

    by = {o.name: o for o in summary.stages}
    for name in ("train_cdas", "train_cdas_dp", "train_random"):
        m = by[name].metrics
        assert m["steps"] == 2 and m["records"] == len(kept)
        assert m["train_time_s"] > 0 and m["peak_rss_mb"] and m["peak_rss_mb"] >= m["rss_before_mb"]
        assert (root / name / "final").is_dir()
    assert by["train_cdas_dp"].metrics["packing"] == "codeact"
    if with_eval:
        table = json.loads((root / "table" / "table.json").read_text())
        assert [r["label"] for r in table] == ["base model (no tuning)", "cdas", "cdas+dp", "random"]
        assert all(r["pass@1 a"] is not None and r["pass@1 a"] == r["pass@1 b"] for r in table)
        assert all(r["train_time_s"] > 0 for r in table[1:])
        md = (root / "table" / "table.md").read_text()
        assert "| cdas+dp |" in md and "| pass@1 a | pass@1 b |" in md
        assert (root / "table" / "table.png").stat().st_size > 0  # the run report shows every png / md
