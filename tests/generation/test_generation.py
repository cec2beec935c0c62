"""hf generation backend on a tiny random model, sampling rules, prompt formats, code extraction."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from codeloop.errors import UserError  # noqa: E402
from codeloop.generation import (GenerationParams, HFGenerator, build_prompt, extract_code,  # noqa: E402
                                 generate, generate_texts, sanitize)
from codeloop.generation.sampling import choose_tokens, token_logprobs  # noqa: E402
from codeloop.generation.stops import FUNCTION_STOPS, StopChecker, trim  # noqa: E402
from codeloop.models import encode_prompt, load_model  # noqa: E402
from codeloop.records import Problem  # noqa: E402

PROMPTS = ["def add(a, b):\n", "for i in range(10):\n    print(i)\nclass Stack:\n", "import sys\n"]


@pytest.fixture(scope="module")
def gen(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
    return HFGenerator(model, tok, name="tiny")


def free(**kw) -> GenerationParams:
    """No stop strings: the tiny random model's text is arbitrary."""
    base = dict(default_stops=False, max_new_tokens=16, temperature=1.0, top_p=1.0, top_k=0)
    base.update(kw)
    return GenerationParams(**base)


def test_greedy_matches_transformers_generate_in_a_padded_batch(gen):
    out = gen.generate_texts(PROMPTS, free(temperature=0, batch_size=3))
    for prompt, (s,) in zip(PROMPTS, out):
        ids = torch.tensor([encode_prompt(gen.tokenizer, prompt)])
        ref = gen.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                                 pad_token_id=gen.pad_id)[0, ids.shape[1]:].tolist()
        eos = [k for k, t in enumerate(ref) if t in gen.eos_ids]
        ref = ref[:eos[0]] if eos else ref
        assert s.token_ids == ref
        assert s.n_tokens == len(ref)
        assert s.finish_reason == ("eos" if eos else "length")


def test_logprob_is_the_models_sum_over_the_kept_tokens(gen):
    out = gen.generate_texts(PROMPTS, free(n=2, batch_size=4, seed=3))
    for prompt, row in zip(PROMPTS, out):
        p = encode_prompt(gen.tokenizer, prompt)
        for s in row:
            ids = torch.tensor([p + s.token_ids])
            with torch.no_grad():
                logp = torch.log_softmax(gen.model(input_ids=ids).logits[0].float(), -1)
            ref = sum(logp[len(p) + k - 1, t].item() for k, t in enumerate(s.token_ids))
            assert s.logprob == pytest.approx(ref, rel=1e-4, abs=1e-4)


def test_same_seed_same_samples_and_another_seed_differs(gen):
    a = gen.generate_texts(PROMPTS, free(n=2, seed=7))
    b = gen.generate_texts(PROMPTS, free(n=2, seed=7))
    c = gen.generate_texts(PROMPTS, free(n=2, seed=8))
    ids = lambda out: [s.token_ids for row in out for s in row]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)


def test_batch_size_does_not_change_greedy_results(gen):
    one = gen.generate_texts(PROMPTS, free(temperature=0, n=2, batch_size=1))
    many = gen.generate_texts(PROMPTS, free(temperature=0, n=2, batch_size=5))
    assert [[s.token_ids for s in r] for r in one] == [[s.token_ids for s in r] for r in many]


def test_stop_string_trims_text_tokens_and_logprob(gen):
    (full,), = gen.generate_texts(PROMPTS[:1], free(temperature=0, max_new_tokens=24))
    text = full.text
    assert len(text) > 6
    stop = text[len(text) // 2: len(text) // 2 + 3]
    (cut,), = gen.generate_texts(PROMPTS[:1], free(temperature=0, max_new_tokens=24, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert cut.text == text[:text.find(stop)]  # cut at the character, a straddling token's code kept
    assert cut.token_ids == full.token_ids[:cut.n_tokens]
    covered = gen._decode(cut.token_ids)
    assert covered.startswith(cut.text)  # the fewest tokens that cover the text
    assert cut.n_tokens == 0 or len(gen._decode(cut.token_ids[:-1])) < len(cut.text)
    ref_lp = gen.generate_texts(PROMPTS[:1], free(temperature=0, max_new_tokens=cut.n_tokens))[0][0].logprob \
        if cut.n_tokens else 0.0
    assert cut.logprob == pytest.approx(ref_lp, rel=1e-5, abs=1e-6)


def test_top_k_one_is_greedy(gen):
    greedy = gen.generate_texts(PROMPTS, free(temperature=0))
    k1 = gen.generate_texts(PROMPTS, free(temperature=1.5, top_k=1, n=2))
    for g, row in zip(greedy, k1):
        assert all(s.token_ids == g[0].token_ids for s in row)


def test_generate_makes_samples_grouped_by_problem(gen):
    problems = [Problem(task_id=f"t/{i}", prompt=p, entry_point="add") for i, p in enumerate(PROMPTS)]
    seen = []
    samples = generate(problems, free(n=3, batch_size=2), generator=gen, on_sample=seen.append)
    assert [(s.task_id, s.sample_id) for s in samples] == [(f"t/{i}", j) for i in range(3) for j in range(3)]
    assert sorted((s.task_id, s.sample_id) for s in seen) == sorted((s.task_id, s.sample_id) for s in samples)
    for s in samples:
        assert s.code.rstrip("\n") == (s.prompt + s.completion).rstrip("\n") and s.code.endswith("\n")
        assert s.model == "tiny" and s.params["n"] == 3 and s.extra["backend"] == "hf"
        assert s.logprob is not None and s.n_tokens is not None


def test_generate_texts_with_a_loaded_model(gen):
    out = generate_texts(["x = "], free(n=2), generator=gen)
    assert len(out) == 1 and len(out[0]) == 2


# -- sampling ------------------------------------------------------------------------------------

def nucleus(logits: torch.Tensor, top_p: float) -> set[int]:
    """Full-sort top-p (the textbook definition) for one row."""
    probs, idx = torch.sort(torch.softmax(logits, -1), descending=True)
    before = probs.cumsum(-1) - probs
    return set(idx[before < top_p].tolist())


def test_top_p_without_full_sort_samples_exactly_the_nucleus():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 5000) * 0.3  # flat: the nucleus needs far more than the first 64 candidates
    logits[0, :5] += 4.0
    want = nucleus(logits[0], 0.6)
    assert len(want) > 64
    draws = choose_tokens(logits.expand(20000, -1), 1.0, top_k=0, top_p=0.6, generator=g)
    got = set(draws.tolist())
    assert got <= want
    assert len(got) > 0.8 * len(want)


def test_top_k_then_top_p_and_greedy():
    g = torch.Generator().manual_seed(1)
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    draws = set(choose_tokens(logits.expand(4000, -1), 1.0, top_k=4, top_p=1.0, generator=g).tolist())
    assert draws == {0, 1, 2, 3}
    draws = set(choose_tokens(logits.expand(4000, -1), 1.0, top_k=4, top_p=0.7, generator=g).tolist())
    assert draws == {0, 1}  # p(0) ~ 0.64 < 0.7, so token 1 completes the nucleus
    assert choose_tokens(logits, 0, generator=g).tolist() == [0]
    full = set(choose_tokens(logits.expand(4000, -1), 1.0, generator=g).tolist())
    assert full == set(range(6))


def test_full_softmax_draw_follows_the_probabilities_and_skips_zero_weights():
    from codeloop.generation.sampling import _draw

    g = torch.Generator().manual_seed(2)
    weights = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0]]).expand(40000, -1)
    counts = torch.bincount(_draw(weights, g), minlength=6).float() / 40000
    assert counts[[0, 2, 5]].sum() == 0
    # 40k draws: the standard error of each share is < 0.0025; 4 of them is a loose bound.
    assert torch.allclose(counts, weights[0], atol=0.01)
    # Unnormalised weights give the same shares.
    counts2 = torch.bincount(_draw(weights * 7.0, g), minlength=6).float() / 40000
    assert torch.allclose(counts2, weights[0], atol=0.01)
    # The temperature reshapes the softmax: the draw's shares follow softmax(logits / T).
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    for t in (0.5, 1.0, 2.0):
        got = torch.bincount(choose_tokens(logits.expand(40000, -1), t, generator=g), minlength=3).float() / 40000
        assert torch.allclose(got, torch.softmax(logits[0] / t, -1), atol=0.01)


def test_token_logprobs_are_log_softmax():
    logits = torch.randn(3, 50)
    toks = torch.tensor([1, 2, 3])
    ref = torch.log_softmax(logits, -1)[torch.arange(3), toks]
    assert torch.allclose(token_logprobs(logits, toks), ref, atol=1e-6)


# -- stops, prompts, extraction ------------------------------------------------------------------

def test_stop_checker_finds_stops_split_across_steps():
    chk = StopChecker(FUNCTION_STOPS)
    assert chk("    return 1\n") is None
    assert chk("    return 1\nde") is None
    assert chk("    return 1\ndef g") == len("    return 1")
    assert trim("a\nclass B: pass", FUNCTION_STOPS) == ("a", True)
    code = StopChecker([], code_end=True, prefix_open=True)
    assert code("x = 1\n```\nmore") == len("x = 1\n")
    closed = StopChecker([], code_end=True, prefix_open=False)
    assert closed("Sure:\n```python\nx = 1\n") is None
    assert closed("Sure:\n```python\nx = 1\n```\nbye") == len("Sure:\n```python\nx = 1\n```")


def test_completion_and_instruction_prompts(gen):
    fn = Problem(task_id="a", prompt="def add(a, b):\n    \"\"\"Add.\"\"\"\n", entry_point="add")
    io = Problem(task_id="b", prompt="", description="Read n, print 2n.", io_tests=[{"input": "1", "output": "2"}])
    assert build_prompt(fn, GenerationParams()) == fn.prompt
    chat = build_prompt(fn, GenerationParams(prompt_format="instruction"), gen.tokenizer)
    assert chat.startswith("user: Complete the following Python function") and chat.endswith("assistant: ```python\n")
    plain = build_prompt(io, GenerationParams(prompt_format="instruction", chat="plain"), gen.tokenizer)
    assert plain.startswith("### Instruction:\nRead n, print 2n.") and "standard input" in plain
    with pytest.raises(UserError):
        build_prompt(fn, GenerationParams(prompt_format="instruction", chat="chat"), None)


def test_instruction_samples_are_extracted_and_sanitized(gen):
    fn = Problem(task_id="a", prompt="from typing import List\n\ndef add(a, b):\n", entry_point="add")
    params = free(prompt_format="instruction", n=2, max_new_tokens=8)
    for s in generate([fn], params, generator=gen):
        assert s.prompt.endswith("```python\n")
        assert s.code.startswith("from typing import List") or s.code == ""


def test_extract_code_prefers_python_blocks():
    text = "Here:\n```text\nnot code\n```\n```python\ndef f():\n    return 1\n```\nDone."
    assert extract_code(text) == "def f():\n    return 1\n"
    assert extract_code("def f():\n    return 2\n```\nexplanation", prefix="```python\n") == "def f():\n    return 2\n"
    assert extract_code("x = 1") == "x = 1\n"
    assert extract_code("```py\ny = 2") == "y = 2\n"  # unterminated block


def test_sanitize_keeps_the_target_and_what_it_uses():
    code = ("import math\n\nHELPER_K = 3\n\ndef helper(x):\n    return x * HELPER_K\n\n"
            "def unused():\n    pass\n\ndef target(x):\n    return helper(math.floor(x))\n\n"
            "print(target(2))\nassert target(1) == 3\n")
    out = sanitize(code, "target", prompt="from typing import List\n\ndef target(x):\n")
    assert "def target" in out and "def helper" in out and "HELPER_K = 3" in out and "import math" in out
    assert "unused" not in out and "print(" not in out and "assert" not in out
    assert out.startswith("from typing import List")
    compile(out, "<s>", "exec")
    broken = "def target(x):\n    return x\n\ndef other(:\n"
    assert sanitize(broken, "target") == "def target(x):\n    return x\n"


def test_params_are_validated():
    for bad in (dict(n=0), dict(temperature=-1), dict(top_p=0), dict(top_k=-1), dict(prompt_format="x"),
                dict(stop=[""]), dict(max_new_tokens=0)):
        with pytest.raises(UserError):
            GenerationParams(**bad)
