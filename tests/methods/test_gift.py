"""GiFT: prompts, weighting formula, chain logic with a scripted generator, no-pass fallbacks, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from codeloop.errors import UserError
from codeloop.generation import TextSample
from codeloop.methods.gift import (BUILTIN_SHOT, SUMMARY_ASK, SUMMARY_HEADER, GiFTConfig, code_frame, code_prompt,
                                   description_drift, gift, kept_codes, model_scorer, original_description,
                                   plot_chain, ppl_softmax, resample, resample_weights, resampling_stats,
                                   rounds_table, run_chains, self_training, summary_code, summary_prompt)
from codeloop.records import Problem

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "gift.yaml"


def fn_problem(task_id: str, name: str, test: str, solution: str, desc: str, args: str = "x") -> Problem:
    prompt = f"import math\n\n\ndef {name}({args}):\n    \"\"\" {desc}\n    >>> example\n    \"\"\"\n"
    return Problem(task_id=task_id, prompt=prompt, entry_point=name, description=desc,
                   test=f"\n\ndef check(candidate):\n{test}", canonical_solution=solution)


DOUBLE = fn_problem("t/double", "double", "    assert candidate(2) == 4\n    assert candidate(5) == 10\n",
                    "    return 2 * x\n", "Return twice x.")
FLAKY = fn_problem("t/flaky", "one", "    assert candidate() == 1\n", "    return 0 + 1\n", "Return one.", args="")
NEVER = fn_problem("t/never", "never", "    assert candidate(1) == 42\n", "    return 42\n", "Return 42.")
INC = Problem(task_id="t/inc", prompt='"""\nRead n and print n + 1.\n"""\n', description="Read n and print n + 1.",
              io_tests=[{"input": "1\n", "output": "2\n"}, {"input": "41\n", "output": "42\n"}],
              canonical_solution="print(int(input()) + 1)\n")


def last_code(summary_text: str) -> str:
    return summary_text.rsplit(SUMMARY_HEADER, 1)[1].split(SUMMARY_ASK)[0]


class ScriptedGenerator:
    """Fixed outputs: codes chosen by the prompt, summaries naming the last line of the code they saw."""

    name = "scripted"

    def __init__(self, fail_on_call: int | None = None):
        self.calls: list[tuple[list[str], object]] = []
        self.fail_on_call = fail_on_call

    def code(self, prompt: str, j: int) -> str:
        if "def double" in prompt:
            return ["    return x + x\n", "    return 2 * x\n", "    return x\n"][j % 3]
        if "def one" in prompt:
            return "    return 1\n" if ">>> example" in prompt else "    return 0\n"  # only from the original
        if "def never" in prompt:
            return "    return None\n"
        return "print(int(input()) + 1)\n" if j == 0 else "print(0)\n"  # stdin/stdout

    def summary(self, prompt: str) -> str:
        code = last_code(prompt)
        line = [ln.strip() for ln in code.splitlines() if ln.strip()][-1]
        return f" Describe: {line}\n### Code:\nignored"

    def generate_texts(self, prompts, params, stops=None, on_result=None):
        self.calls.append((list(prompts), params))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("killed")
        out = []
        for p in prompts:
            texts = [self.summary(p) if p.startswith(SUMMARY_HEADER) else self.code(p, j)
                     for j in range(params.n)]
            out.append([TextSample(text=t, n_tokens=len(t), finish_reason="stop") for t in texts])
        if on_result is not None:  # the resumable sampling stage writes what this reports
            for i, row in enumerate(out):
                for j, ts in enumerate(row):
                    on_result(i, j, ts)
        return out


def length_scorer(prompts, completions):
    # Deterministic stand-in where the perplexity value itself is not under test.
    return [(-0.1 * len(c), len(c)) for c in completions]


def small_cfg(**kw) -> GiFTConfig:
    base = dict(iters=2, num_seq=3, k=4, seed=0, shot="builtin")
    return GiFTConfig(**{**base, **kw})


# -- prompts ----------------------------------------------------------------------------------------

def test_code_prompt_keeps_the_frame_and_puts_the_description_in_the_docstring():
    assert code_prompt(DOUBLE, None) == DOUBLE.prompt  # round 0: the problem's own prompt
    frame, indent = code_frame(DOUBLE)
    assert frame == "import math\n\n\ndef double(x):\n" and indent == "    "
    p = code_prompt(DOUBLE, 'Multiply by two; says """hi"""')
    assert p.startswith(frame) and "Multiply by two" in p
    compile(p + "    return 2 * x\n", "<p>", "exec")  # a valid program once the body follows
    assert code_prompt(INC, "Add one.") == '"""\nAdd one.\n"""\n'
    assert summary_code(DOUBLE, "    return 2 * x\n") == frame + "    return 2 * x\n"  # no task docstring
    assert summary_code(INC, "print(1)\n") == "print(1)\n"
    s = summary_prompt("def f():\n    return 1\n", BUILTIN_SHOT)
    assert s.startswith(SUMMARY_HEADER + BUILTIN_SHOT[0]) and s.endswith("    return 1\n" + SUMMARY_ASK)
    assert s.count(SUMMARY_ASK) == 2 and BUILTIN_SHOT[1] in s
    assert original_description(DOUBLE) == "Return twice x."
    nodesc = Problem(task_id="x", prompt='def f(a):\n    """Sum it up."""\n', entry_point="f")
    assert original_description(nodesc) == "Sum it up."


def test_description_drift():
    assert description_drift("Return twice x.", "return TWICE x") == 0.0
    assert description_drift("a b", "c d") == 1.0
    assert 0 < description_drift("return twice x", "return x") < 1


# -- weighting ----------------------------------------------------------------------------------------

def test_ppl_softmax_matches_a_direct_computation():
    ppls = [1.3, 2.7, 1.05, 4.2]
    direct = np.array([math.exp(2.0 * p) for p in ppls])
    direct /= direct.sum()
    assert np.allclose(ppl_softmax(ppls, 2.0), direct, rtol=1e-12)
    assert np.argmax(ppl_softmax(ppls, 2.0)) == 3  # T > 0 favours the high-perplexity tail
    assert np.argmax(ppl_softmax(ppls, -2.0)) == 2  # T < 0 the low one
    assert np.allclose(ppl_softmax(ppls, 0.0), 0.25)
    # Perplexities where exp(T * PPL) overflows a float: still finite, same ratios as the formula.
    big = [400.0, 401.0, 399.5]
    w = ppl_softmax(big, 2.0)
    assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0)
    assert w[1] / w[0] == pytest.approx(math.exp(2.0)) and w[0] / w[2] == pytest.approx(math.exp(1.0))
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(np.exp(2.0 * np.array(big))))  # the naive way would overflow


def test_resample_weights_variants():
    cfg = GiFTConfig()
    ppls, rounds = [1.5, float("nan"), 2.5, 1.0], [0, 1, 2, 0]
    w = resample_weights(ppls, rounds, cfg)
    assert w[1] == 0 and w.sum() == pytest.approx(1.0)
    assert np.allclose(w[[0, 2, 3]], ppl_softmax([1.5, 2.5, 1.0], 2.0))
    assert np.allclose(resample_weights(ppls, rounds, GiFTConfig(weighting="uniform")), 0.25)
    assert np.allclose(resample_weights(ppls, rounds, GiFTConfig(weighting="conditional-only")), [0.5, 0, 0, 0.5])
    assert resample_weights([], [], cfg).size == 0


def test_resample_draws_with_replacement_at_the_weights():
    kept = [{"task_id": "t/double", "round": r, "completion": f"    return {r}\n", "ppl": p, "description": "d"}
            for r, p in enumerate([1.0, 1.5, 2.0])]
    cfg = GiFTConfig(k=20000, seed=3)
    recs = resample(kept, [DOUBLE, NEVER], cfg)
    assert len(recs) == 20000 and {r["task_id"] for r in recs} == {"t/double"}  # no codes, no records
    assert all(r["prompt"] == DOUBLE.prompt for r in recs)  # the ORIGINAL description's prompt
    freq = np.bincount([r["round"] for r in recs], minlength=3) / len(recs)
    assert np.allclose(freq, ppl_softmax([1.0, 1.5, 2.0], 2.0), atol=0.015)
    assert resample(kept, [DOUBLE], GiFTConfig(k=8, seed=3)) == resample(kept, [DOUBLE], GiFTConfig(k=8, seed=3))


def test_uniform_draws_distinct_codes_when_a_problem_has_k():
    # The official code's unweighted pick is random.sample (no repeats) when there are >= k codes,
    # random.choices (repeats) when there are fewer.
    kept = [{"task_id": "t/double", "round": 0, "completion": f"    return {i}\n", "ppl": None, "description": None}
            for i in range(5)]
    for seed in range(20):
        recs = resample(kept, [DOUBLE], GiFTConfig(k=5, weighting="uniform", seed=seed))
        assert sorted(r["completion"] for r in recs) == sorted(k["completion"] for k in kept)
    few = resample(kept[:2], [DOUBLE], GiFTConfig(k=6, weighting="uniform", seed=0))
    assert len(few) == 6 and {r["completion"] for r in few} <= {k["completion"] for k in kept[:2]}
    stats = resampling_stats(kept, [DOUBLE, NEVER], GiFTConfig(k=5, weighting="uniform"),
                             resample(kept, [DOUBLE], GiFTConfig(k=5, weighting="uniform")))
    assert stats["problems_with_candidates"] == 1 and stats["problems_with_choice"] == 1
    assert stats["effective_candidates_mean"] == pytest.approx(5.0) and stats["distinct_drawn_mean"] == 5


@pytest.mark.parametrize("field,value", [("weighting", "ppl"), ("no_pass", "retry"), ("iters", 0), ("k", 0),
                                         ("temperature", 0.0), ("shot", "two"), ("tests_limit", 0),
                                         ("train_set", "gold")])
def test_config_mistakes_name_their_field(field, value):
    with pytest.raises(UserError) as e:
        GiFTConfig(**{field: value}).validate()
    assert e.value.where == field or (field == "temperature" and e.value.where == "temperature")


# -- the chain ------------------------------------------------------------------------------------------

def test_chain_logic_with_a_scripted_generator_and_tiny_model_perplexity(tmp_path, tiny_model_dir):
    from codeloop.models import load_model
    from codeloop.scoring import completion_logprobs

    model, tok = load_model(str(tiny_model_dir))
    gen = ScriptedGenerator()
    problems = [DOUBLE, INC, NEVER]
    sft, stats = gift(problems, small_cfg(), gen, model_scorer(model, tok), tmp_path / "chains")

    # One generation call for the codes and one for the summaries per round, across problems.
    assert len(gen.calls) == 4
    assert [len(ps) for ps, _ in gen.calls] == [3, 3, 3, 3]
    assert gen.calls[0][1].n == 3 and gen.calls[0][1].temperature == 1.0
    assert gen.calls[1][1].n == 1 and gen.calls[1][1].top_p == 0.95

    r0 = _rounds(tmp_path / "chains")[0]
    d = r0["t/double"]
    assert d["description"] is None and d["code_prompt"] == DOUBLE.prompt and d["passed"] == 2
    assert [s["status"] for s in d["samples"]] == ["passed", "passed", "failed"]
    kept = d["kept"]["completion"]
    assert kept in ("    return x + x\n", "    return 2 * x\n")
    assert d["next_description"] == f"Describe: {kept.strip()}"  # trimmed at the next ###, stripped
    # PPL = exp(mean NLL of body + EOS | the prompt that generated it), under the tiny model.
    direct = completion_logprobs(model, tok, [DOUBLE.prompt], [kept], add_eos=True)[0]
    assert d["kept"]["n_tokens"] == direct.n_tokens == len(tok(kept, add_special_tokens=False).input_ids) + 1
    assert d["kept"]["ppl"] == pytest.approx(math.exp(-direct.logprob / direct.n_tokens), rel=1e-5)
    assert r0["t/inc"]["passed"] == 1 and r0["t/inc"]["kept"]["completion"] == "print(int(input()) + 1)\n"
    assert r0["t/never"]["kept"] is None and r0["t/never"]["summarised"] == "reference"
    assert r0["t/never"]["next_description"] == "Describe: return 42"

    # Round 1 writes code from the new description, in the reference frame.
    round1_prompts = dict(zip(["t/double", "t/inc", "t/never"], gen.calls[2][0]))
    assert round1_prompts["t/double"] == code_prompt(DOUBLE, d["next_description"])
    assert round1_prompts["t/inc"] == code_prompt(INC, r0["t/inc"]["next_description"])
    per = stats["per_round"]
    assert per[0]["problems_with_pass"] == 2 and per[0]["share_with_pass"] == pytest.approx(2 / 3)
    assert per[0]["distinct_code_share"] == pytest.approx(6 / 9)  # inc's two failing and never's three repeat
    assert per[0]["description_drift"] == 0.0 and per[1]["description_drift"] > 0

    # Resampling: k records per problem with kept codes, original prompt, a kept code as completion.
    all_kept = kept_codes([r for rs in _rounds(tmp_path / "chains").values() for r in rs.values()])
    kept_by_task: dict[str, set[str]] = {}
    for k in all_kept:
        kept_by_task.setdefault(k["task_id"], set()).add(k["completion"])
    drawn = [r for r in sft if r["source"] == "gift"]
    assert len(drawn) == 8 and {r["task_id"] for r in drawn} == {"t/double", "t/inc"}
    for r in drawn:
        assert r["prompt"] == {"t/double": DOUBLE.prompt, "t/inc": INC.prompt}[r["task_id"]]
        assert r["completion"] in kept_by_task[r["task_id"]]
    assert len(sft) == 8 + 3 and stats["gold_records"] == 3 and stats["resampled_records"] == 8
    assert stats["kept_codes"] == 4 and stats["problems_with_kept"] == 2 and stats["chain_samples_per_s"] > 0
    assert stats["kept_per_round"] == [2, 2] and stats["resampling"]["problems_with_candidates"] == 2

    paths = plot_chain(stats, all_kept, tmp_path)
    assert [p.name for p in paths] == ["gift_rounds.png", "gift_ppl_hist.png", "gift_resampling.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    table = rounds_table(stats)
    assert "| 0 | 3 | 2 | 2 |" in table and "| 1 | 3 | 2 | 4 |" in table  # round, active, kept, kept so far
    assert "| 3 | 8 | 11 |" in table  # gold, resampled, records


def test_the_training_set_holds_the_gold_solutions_and_the_resampled_codes(tmp_path):
    # The official code fine-tunes on the seed data with its reference code plus the resampled
    # self-generated codes (APPS/utils.py, MBPP/utils.py: data.extend(data1)); both arms alike.
    problems = [DOUBLE, INC, NEVER]
    sft, stats = gift(problems, small_cfg(), ScriptedGenerator(), length_scorer, tmp_path / "g")
    gold = [(r["task_id"], r["prompt"], r["completion"]) for r in sft if r["source"] == "gold"]
    assert gold == [(p.task_id, p.prompt, p.canonical_solution) for p in problems]  # once each, NEVER too
    assert {r["source"] for r in sft} == {"gold", "gift"} and stats["train_set"] == "gold+resampled"
    again = ScriptedGenerator()
    only, _ = gift(problems, small_cfg(train_set="resampled"), again, length_scorer, tmp_path / "g")
    assert only == [r for r in sft if r["source"] == "gift"]  # the same draws, without the gold
    assert again.calls == []  # the switch acts after the chains: their finished rounds are reused

    st, st_stats = self_training(problems, small_cfg(), ScriptedGenerator(), tmp_path / "s")
    assert [(r["task_id"], r["completion"]) for r in st if r["source"] == "gold"] == \
        [(p.task_id, p.canonical_solution) for p in problems]
    drawn = [r for r in st if r["source"] == "self-training"]
    assert {r["task_id"] for r in drawn} == {"t/double", "t/inc", "t/flaky"} - {"t/flaky"}
    assert len(drawn) == 2 * 4 and st_stats["gold_records"] == 3 and st_stats["resampled_records"] == 8
    st_only, _ = self_training(problems, small_cfg(train_set="resampled"), ScriptedGenerator(), tmp_path / "s")
    assert st_only == drawn


def _rounds(root: Path) -> dict[int, dict[str, dict]]:
    out: dict[int, dict[str, dict]] = {}
    for sd in sorted(root.glob("round-*")):
        recs = [json.loads(x) for f in sorted(sd.glob("shard-*.jsonl")) for x in f.read_text().splitlines()]
        out[int(sd.name.split("-")[1])] = {r["task_id"]: r for r in recs}
    return out


def shown_program(request: str) -> str:
    """The last code block of a summary request: the program the summariser is asked about."""
    return request.rsplit("```python\n", 1)[1].split("```")[0]


class InstructionScriptedGenerator(ScriptedGenerator):
    """Answers as an instruct model does: the whole function, restating its task in a docstring."""

    def code(self, prompt: str, j: int) -> str:
        if "Describe the task this Python program solves" in prompt:  # the summary conversation
            shown = shown_program(prompt)
            return f"Task: Describe: {[ln.strip() for ln in shown.splitlines() if ln.strip()][-1]}\n\nMore words."
        body = super().code(prompt, j)
        if "def double" in prompt:
            return f'def double(x):\n    """Doubles x, as the task says."""\n{body}'
        return body  # stdin/stdout: the program itself


def test_instruction_prompts_ask_in_words_and_train_on_the_chat_answer(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from codeloop.generation import GenerationParams, build_prompt

    gen, scored = InstructionScriptedGenerator(), []
    gen.tokenizer = tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))  # it has a chat template

    def scorer(prompts, completions):
        scored.extend(zip(prompts, completions))
        return length_scorer(prompts, completions)

    cfg = small_cfg(prompt_format="instruction", iters=2)
    sft, stats = gift([DOUBLE, INC], cfg, gen, scorer, tmp_path / "chains")
    asked = GenerationParams(prompt_format="instruction")
    original = {p.task_id: build_prompt(p, asked, tok) for p in (DOUBLE, INC)}
    code_calls = gen.calls[0][0], gen.calls[2][0]
    assert list(code_calls[0]) == [original["t/double"], original["t/inc"]]
    r = _rounds(tmp_path / "chains")
    d0 = r[0]["t/double"]
    assert d0["model_prompt"] == original["t/double"] and d0["code_prompt"] == DOUBLE.prompt
    assert d0["kept"]["program"].startswith("import math\n") and "def double(x):" in d0["kept"]["program"]
    # The perplexity is of the answer given the text it was written from.
    assert (original["t/double"], d0["kept"]["completion"] + "```") in scored  # ends where its block closes
    # The summariser is asked in words about the program, without the docstring that restated the task,
    # the 1-shot example an earlier exchange; its answer's first paragraph, unlabelled, is the next description.
    request = gen.calls[1][0][0]
    shown = shown_program(request)
    assert request.startswith("user: Describe the task") and request.endswith("assistant: ")
    assert f"assistant: {BUILTIN_SHOT[1]}\nuser: Describe the task" in request and request.count("```python") == 2
    assert "def double(x):" in shown and "Doubles x" not in shown and shown.rstrip().endswith(
        d0["kept"]["completion"].strip().splitlines()[-1].strip())
    assert d0["next_description"] == "Describe: " + d0["kept"]["completion"].strip().splitlines()[-1].strip()
    # Round 1 asks for the code of the new description, in words, stdin/stdout problems too.
    d1 = r[1]["t/double"]["description"]
    assert d1 == d0["next_description"] and d1 in code_calls[1][0] and code_calls[1][0].startswith("user: Complete")
    assert r[1]["t/inc"]["description"] in code_calls[1][1]
    # Training records: the original prompt as the model saw it, the answer with its fence closed.
    drawn = [x for x in sft if x["source"] == "gift"]
    assert drawn and all(x["prompt"] == original[x["task_id"]] for x in sft)
    assert all(x["completion"].endswith("\n```") for x in sft)
    # Self-generated codes lose their docstrings before training, as in the official code.
    kept = {k["completion"] for k in kept_codes([x for rs in r.values() for x in rs.values()])
            if k["task_id"] == "t/double"}
    assert all('"""' in k for k in kept)
    assert {x["completion"] for x in drawn if x["task_id"] == "t/double"} <= \
        {k.replace('    """Doubles x, as the task says."""\n', "") + "```" for k in kept}
    gold = {x["task_id"]: x["completion"] for x in sft if x["source"] == "gold"}
    assert gold["t/double"] == "import math\n\n\ndef double(x):\n    return 2 * x\n```"
    assert gold["t/inc"] == INC.canonical_solution + "```"
    compile(gold["t/double"].removesuffix("```"), "<gold>", "exec")

    plain = InstructionScriptedGenerator()  # without a chat template: the plain templates, summaries included
    gift([DOUBLE, INC], cfg, plain, scorer, tmp_path / "plain")
    assert plain.calls[0][0][0].startswith("### Instruction:") and plain.calls[1][0][0].startswith(SUMMARY_HEADER)
    st_gen = InstructionScriptedGenerator()
    st_gen.tokenizer = tok
    st, _ = self_training([DOUBLE, INC], cfg, st_gen, tmp_path / "s")
    assert st and all(x["prompt"] == original[x["task_id"]] and x["completion"].endswith("```") for x in st)


def test_summaries_drop_docstrings_only():
    from codeloop.methods.gift.prompts import without_docstrings

    code = ('"""Module."""\nimport math\n\n\ndef f(x):\n    """Says what f does.\n\n    Long.\n    """\n'
            '    def g():\n        "only a docstring"\n    s = """kept: not a docstring"""\n    return s\n\n\n'
            'class A:\n    \'\'\'Doc.\'\'\'\n    y = 1\n\n\ndef h(): "same line"; return 1\n')
    out = without_docstrings(code)
    for gone in ("Module.", "Says what", "Long.", "only a docstring", "Doc."):
        assert gone not in out
    assert '"""kept: not a docstring"""' in out and 'def h(): "same line"; return 1' in out
    ns: dict = {}
    exec(compile(out, "<out>", "exec"), ns)
    assert ns["f"](1) == "kept: not a docstring" and ns["A"].y == 1 and ns["h"]() == 1
    assert without_docstrings("def broken(:\n") == "def broken(:\n"


@pytest.mark.parametrize("policy", ["keep-last", "restart-reference", "stop"])
def test_no_pass_fallbacks(tmp_path, policy):
    # FLAKY passes in round 0 ("return 1") and fails afterwards ("return 0"); NEVER never passes.
    records, per_round = run_chains([FLAKY, NEVER], small_cfg(iters=3, no_pass=policy), ScriptedGenerator(),
                                    length_scorer, tmp_path)
    rounds = _rounds(tmp_path)
    assert rounds[0]["t/flaky"]["kept"]["completion"] == "    return 1\n"
    assert rounds[0]["t/flaky"]["summarised"] == "kept"
    f1, n0 = rounds[1]["t/flaky"], rounds[0]["t/never"]
    assert f1["kept"] is None
    if policy == "keep-last":  # continue from the last passing state: summarise round 0's kept code again
        assert f1["summarised"] == "last-kept" and f1["next_description"] == "Describe: return 1"
        assert n0["summarised"] == "reference" and n0["next_description"] == "Describe: return 42"
        assert set(rounds[2]) == {"t/flaky", "t/never"}
    elif policy == "restart-reference":  # the published behaviour
        assert f1["summarised"] == "reference" and f1["next_description"] == "Describe: return 0 + 1"
        assert n0["summarised"] == "reference"
        assert set(rounds[2]) == {"t/flaky", "t/never"}
    else:  # stop: a chain ends at its first round without a pass
        assert n0["summarised"] is None and n0["next_description"] is None
        assert f1["next_description"] is None
        assert set(rounds[1]) == {"t/flaky"} and rounds.get(2, {}) == {}
    expected = {"keep-last": {"last-kept": 1, "reference": 1}, "restart-reference": {"reference": 2},
                "stop": {"stopped": 1}}[policy]
    assert per_round[1]["fallbacks"] == expected
    assert len([k for k in kept_codes(records) if k["task_id"] == "t/flaky"]) == 1


def test_keep_last_without_any_reference_stops_the_chain(tmp_path):
    bare = Problem(task_id="t/bare", prompt=NEVER.prompt, entry_point="never", test=NEVER.test)
    run_chains([bare], small_cfg(iters=2), ScriptedGenerator(), length_scorer, tmp_path)
    r = _rounds(tmp_path)
    assert r[0]["t/bare"]["summarised"] is None and r[0]["t/bare"]["next_description"] is None
    assert r.get(1, {}) == {}


def test_resume_after_a_kill_between_rounds(tmp_path):
    problems = [DOUBLE, FLAKY, INC]
    cfg = small_cfg(iters=3, shot="other-problem")
    killed = ScriptedGenerator(fail_on_call=3)  # round 1's code generation
    with pytest.raises(RuntimeError, match="killed"):
        run_chains(problems, cfg, killed, length_scorer, tmp_path / "a")
    assert (tmp_path / "a" / "round-00" / "_DONE").exists() and not (tmp_path / "a" / "round-01" / "_DONE").exists()
    again = ScriptedGenerator()
    records, per_round = run_chains(problems, cfg, again, length_scorer, tmp_path / "a")
    assert len(again.calls) == 4  # rounds 1 and 2 only: round 0 was read back
    straight = ScriptedGenerator()
    ref_records, _ = run_chains(problems, cfg, straight, length_scorer, tmp_path / "b")
    assert len(straight.calls) == 6

    def key(rs):
        return sorted((r["round"], r["task_id"], r["description"], r["next_description"],
                       (r["kept"] or {}).get("completion")) for r in rs)

    assert key(records) == key(ref_records)
    assert [m["round"] for m in per_round] == [0, 1, 2]
    # A finished chain is read back whole without generating anything.
    idle = ScriptedGenerator()
    run_chains(problems, cfg, idle, length_scorer, tmp_path / "a")
    assert idle.calls == []


def test_gift_recipe_loads_and_compares_on_the_same_budget(tmp_path):
    from codeloop.pipeline.recipe import load_recipe

    r = load_recipe(RECIPE)
    by = {s.name: s for s in r.stages}
    g, st = by["gift"].config, by["self_training"].config
    assert r.model == "coder" and by["gift"].type == "gift" and by["self_training"].type == "self_training"
    # MBPP train as the seeds, at least the evidence floor of 100; the arms differ only by the method.
    assert (g.problems, g.split) == ("mbpp", "train") and (g.limit is None or g.limit >= 100)
    assert st.budget_from == "gift" and (st.k, st.temperature, st.limit, st.problems, st.split, st.train_set) == \
        (g.k, g.temperature, g.limit, g.problems, g.split, g.train_set)
    # The Instruct model is asked the same way by the chains, the baseline and every eval.
    evals = [s for s in r.stages if s.type == "eval"]
    assert {x.prompt_format for x in [g, st] + [e.config for e in evals]} == {"instruction"}
    assert (st.max_new_tokens, st.chat) == (g.max_new_tokens, g.chat)
    assert g.train_set == "gold+resampled" and g.weighting == "ppl-softmax" and g.resample_temperature == 2.0
    assert by["train_gift"].config.input == "gift" and by["train_self"].config.input == "self_training"
    a, b = by["train_gift"].config, by["train_self"].config
    assert a.max_steps == b.max_steps > 0 and dataclasses_equal_but(a, b, {"input"})
    evals = [s for s in r.stages if s.type == "eval"]
    # The headline is greedy pass@1 (the paper's metric) on MBPP test and on MBPP+ test.
    assert all(e.config.temperature == 0 and e.config.n == 1 and e.config.ks == [1] for e in evals)
    bench = {(e.config.benchmark, e.config.split, e.config.limit) for e in evals}
    assert bench == {("mbpp", "test", None), ("mbpp+", "test", None)}
    for benchmark in ("mbpp", "mbpp+"):
        assert {e.config.adapter_from for e in evals if e.config.benchmark == benchmark} == \
            {None, "train_gift", "train_self"}
    small = load_recipe(RECIPE, ["vars.train_limit=24", "vars.eval_limit=40", "vars.train_set=resampled"])
    assert small.stage("gift").config.limit == 24 and small.stage("eval_gift").config.limit == 40
    assert small.stage("gift").config.train_set == small.stage("self_training").config.train_set == "resampled"
    data = tmp_path / "mbpp.jsonl"  # the recipe is checked whole at load, problem files included
    data.write_text("")
    mbpp = load_recipe(RECIPE, [f"vars.problems=mbpp:{data}", "vars.iters=20", "vars.k=8"])
    assert mbpp.stage("gift").config.problems == f"mbpp:{data}" and mbpp.stage("gift").config.iters == 20


def dataclasses_equal_but(a, b, names: set[str]) -> bool:
    import dataclasses

    return all(getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(a) if f.name not in names)


def test_recipe_mistakes_name_their_key(tmp_path):
    from codeloop.pipeline.recipe import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text("name: t\nstages:\n  - {name: g, type: gift, weighting: ppl}\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    assert e.value.where.endswith("stages.g.weighting")
    p.write_text("name: t\nstages:\n  - {name: s, type: self_training}\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    assert e.value.where.endswith("stages.s.samples_per_problem")
    p.write_text("name: t\nstages:\n  - {name: s, type: self_training, samples_per_problem: 3, train_set: gold}\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    assert e.value.where.endswith("stages.s.train_set")


def test_an_answer_cut_by_the_token_limit_trains_on_its_program():
    from codeloop.methods.gift.chain import training_completion
    from codeloop.methods.gift.prompts import summary_text

    cfg = small_cfg(prompt_format="instruction")
    whole = {"completion": 'def f(x):\n    """Twice."""\n    return 2 * x\n'}
    assert training_completion(whole, cfg) == "def f(x):\n    return 2 * x\n```"
    cut = {"completion": "def f(x):\n    return 2 * x\n\nprint(f(", "program": "def f(x):\n    return 2 * x\n"}
    assert training_completion(cut, cfg) == "def f(x):\n    return 2 * x\n```"
    assert training_completion(cut, small_cfg()) == cut["completion"]  # completion prompts: as sampled
    assert summary_text("**Task:** Write f.\n\nIt doubles.", True) == "Write f."
    assert summary_text(" Describe: x\n### Code:\nmore", False) == "Describe: x"
