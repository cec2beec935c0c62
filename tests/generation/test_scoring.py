"""Scoring: completion log-probs, perplexity, IFD (tiny random model) and embeddings."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from codeloop.models import encode_continuation, encode_prompt, load_model  # noqa: E402
from codeloop.scoring import (IFD_TEMPLATE, completion_logprobs, embed_texts, ifd_scores,  # noqa: E402
                              perplexity)

PROMPTS = ["def add(a, b):\n", "", "Question:\nWrite a function.\n\nAnswer:\n", "for i in range(10):\n",
           "import sys\n", "class Stack:\n    def __init__(self):\n"]
COMPLETIONS = ["    return a + b\n", "x = 1\n", "```python\nreturn [x for x in xs if x > 0]\n```\n",
               "    print(i)\n", "x = int(sys.stdin.readline())\nprint(x * 2)\n", "        self.items = []\n"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), dtype="fp32", device="cpu")


def reference_logprob(model, tok, prompt, completion, add_eos=False):
    """Batch size 1, full logits, plain log_softmax: the textbook computation."""
    p = encode_prompt(tok, prompt)
    c = encode_continuation(tok, completion) + ([tok.eos_token_id] if add_eos else [])
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return sum(logp[len(p) + k - 1, c[k]].item() for k in range(len(c))), len(c)


def test_batched_scores_match_batch_size_one_reference(tiny):
    model, tok = tiny
    prompts, comps = PROMPTS * 3, COMPLETIONS[::-1] * 3  # mixed lengths -> padding in every batch
    batched = completion_logprobs(model, tok, prompts, comps, batch_size=4)
    for p, c, s in zip(prompts, comps, batched):
        ref, n = reference_logprob(model, tok, p, c)
        assert s.n_tokens == n
        assert s.logprob == pytest.approx(ref, rel=1e-4)
        assert len(s.token_logprobs) == n and all(v <= 0 for v in s.token_logprobs)
        assert s.ppl == pytest.approx(math.exp(-ref / n), rel=1e-4)
    single = completion_logprobs(model, tok, prompts, comps, batch_size=1)
    assert [s.logprob for s in single] == pytest.approx([s.logprob for s in batched], rel=1e-4)


def test_results_come_back_in_input_order_and_eos_adds_a_token(tiny):
    model, tok = tiny
    plain = completion_logprobs(model, tok, PROMPTS, COMPLETIONS, batch_size=3)
    with_eos = completion_logprobs(model, tok, PROMPTS, COMPLETIONS, batch_size=3, add_eos=True)
    for p, c, a, b in zip(PROMPTS, COMPLETIONS, plain, with_eos):
        assert b.n_tokens == a.n_tokens + 1
        ref, _ = reference_logprob(model, tok, p, c, add_eos=True)
        assert b.logprob == pytest.approx(ref, rel=1e-4)


def test_full_logits_path_gives_the_same_numbers(tiny, monkeypatch):
    from codeloop.scoring import logprobs as lp

    model, tok = tiny
    chunked = completion_logprobs(model, tok, PROMPTS, COMPLETIONS, batch_size=4)
    monkeypatch.setattr(lp, "_split_model", lambda m: None)
    monkeypatch.setattr(lp, "HEAD_CHUNK", 3)
    full = completion_logprobs(model, tok, PROMPTS, COMPLETIONS, batch_size=4)
    assert [s.logprob for s in full] == pytest.approx([s.logprob for s in chunked], rel=1e-4)


def test_max_length_keeps_the_completion_and_cuts_the_prompt(tiny):
    model, tok = tiny
    long_prompt = "def add(a, b):\n    return a + b\n" * 20
    full = completion_logprobs(model, tok, [long_prompt], ["    return a + b\n"])[0]
    cut = completion_logprobs(model, tok, [long_prompt], ["    return a + b\n"], max_length=24)[0]
    assert cut.n_tokens == full.n_tokens
    assert math.isfinite(cut.logprob)


def test_ifd_is_the_ratio_of_conditional_to_unconditional_perplexity(tiny):
    model, tok = tiny
    qs = ["Write a function that adds.", "Print the numbers.", "Read a number and double it."]
    answers = COMPLETIONS[:3]
    scores = ifd_scores(model, tok, qs, answers, batch_size=2)
    cond = perplexity(model, tok, answers, prompts=[IFD_TEMPLATE.format(q=q) for q in qs])
    uncond = perplexity(model, tok, answers)
    for s, c, u in zip(scores, cond, uncond):
        assert s.ppl_conditional == pytest.approx(c, rel=1e-4)
        assert s.ppl_unconditional == pytest.approx(u, rel=1e-4)
        assert s.ifd == pytest.approx(c / u, rel=1e-4)
    with pytest.raises(ValueError):
        ifd_scores(model, tok, qs, answers, template="no placeholder")


def test_peft_wrapped_model_scores_through_its_adapter(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    try:
        wrapped = completion_logprobs(peft_model, tok, PROMPTS, COMPLETIONS)
        refs = [reference_logprob(peft_model, tok, p, c)[0] for p, c in zip(PROMPTS, COMPLETIONS)]
        assert [s.logprob for s in wrapped] == pytest.approx(refs, rel=1e-4)
    finally:
        peft_model.unload()


def test_embeddings_are_normalised_and_similar_texts_are_close():
    emb = embed_texts(["sort a list of numbers", "sort a list of integers", "print hello world"])
    assert emb.shape == (3, 384)
    assert (abs((emb ** 2).sum(1) - 1) < 1e-4).all()
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2]
    assert embed_texts([]).shape == (0, 384)
