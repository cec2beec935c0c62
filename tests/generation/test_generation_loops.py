"""The hf backend on batched ``model.generate`` against codeloop's own KV-cache loop (tiny model, fp32)."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from codeloop.errors import UserError  # noqa: E402
from codeloop.generation import GenerationParams, HFGenerator, get_generator  # noqa: E402
from codeloop.models import load_model  # noqa: E402

PROMPTS = ["def add(a, b):\n", "for i in range(10):\n    print(i)\nclass Stack:\n", "import sys\n", ""]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(str(tiny_model_dir), dtype="fp32", device="cpu")


def free(**kw) -> GenerationParams:
    base = dict(default_stops=False, max_new_tokens=20, temperature=1.0, top_p=1.0, top_k=0)
    base.update(kw)
    return GenerationParams(**base)


def rows(out):
    return [[(s.token_ids, s.text, s.finish_reason, s.n_tokens) for s in row] for row in out]


def test_own_is_the_default_loop_and_generate_calls_model_generate(loaded, monkeypatch):
    model, tok = loaded
    monkeypatch.delenv("CODELOOP_HF_LOOP", raising=False)
    assert HFGenerator(model, tok, name="tiny").loop == "own"
    gen = HFGenerator(model, tok, name="tiny", loop="generate")
    calls = []
    real = model.generate
    monkeypatch.setattr(model, "generate", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    gen.generate_texts(PROMPTS, free(temperature=0, batch_size=3))
    sizes = [c["input_ids"].shape[0] for c in calls]
    assert sum(sizes) == 4 and max(sizes) > 1 and len(calls) < 4  # batched, not one call per row


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_greedy_outputs_match_the_own_loop(loaded, batch_size):
    model, tok = loaded
    own = HFGenerator(model, tok, loop="own").generate_texts(PROMPTS, free(temperature=0, batch_size=batch_size))
    new = HFGenerator(model, tok, loop="generate").generate_texts(PROMPTS, free(temperature=0, batch_size=batch_size))
    assert rows(new) == rows(own)
    for a, b in zip(own, new):
        assert b[0].logprob == pytest.approx(a[0].logprob, rel=1e-5, abs=1e-5)


def test_greedy_with_stop_strings_matches_the_own_loop(loaded):
    model, tok = loaded
    own = HFGenerator(model, tok, loop="own")
    (full,), *_ = own.generate_texts(PROMPTS[:1], free(temperature=0, max_new_tokens=24))
    stop = full.text[len(full.text) // 2: len(full.text) // 2 + 2]
    params = free(temperature=0, max_new_tokens=24, stop=[stop], n=2, batch_size=4)
    a = own.generate_texts(PROMPTS, params)
    b = HFGenerator(model, tok, loop="generate").generate_texts(PROMPTS, params)
    assert rows(a) == rows(b)
    assert a[0][0].finish_reason == "stop"
    assert [s.logprob for r in a for s in r] == pytest.approx([s.logprob for r in b for s in r], rel=1e-5, abs=1e-5)


def test_seeded_sampling_is_reproducible_on_generate(loaded):
    model, tok = loaded
    gen = HFGenerator(model, tok, loop="generate")
    p = free(n=3, seed=11, top_p=0.9, batch_size=4)
    a, b = gen.generate_texts(PROMPTS, p), gen.generate_texts(PROMPTS, p)
    c = gen.generate_texts(PROMPTS, p.replace(seed=12))
    assert rows(a) == rows(b)
    assert rows(a) != rows(c)


def test_the_models_own_generation_defaults_do_not_leak_in(loaded):
    """A hub model's generation_config (sampling on, repetition penalty) must not change greedy
    decoding or the recorded log-prob (the raw model's)."""
    model, tok = loaded
    own = HFGenerator(model, tok, loop="own").generate_texts(PROMPTS, free(temperature=0))
    cfg = model.generation_config
    saved = cfg.to_dict()
    cfg.do_sample, cfg.temperature, cfg.top_k, cfg.repetition_penalty = True, 0.3, 5, 3.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            new = HFGenerator(model, tok, loop="generate").generate_texts(PROMPTS, free(temperature=0))
    finally:
        for k in ("do_sample", "temperature", "top_k", "repetition_penalty"):
            setattr(cfg, k, saved.get(k))
    assert rows(new) == rows(own)
    assert model.generation_config.repetition_penalty == saved.get("repetition_penalty")


@pytest.mark.parametrize("loop", ["generate", "own"])
def test_no_deprecation_warnings(loaded, loop):
    model, tok = loaded
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        HFGenerator(model, tok, loop=loop).generate_texts(PROMPTS, free(n=2, max_new_tokens=6))
    bad = [str(w.message) for w in seen if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert bad == []


def test_the_loop_switch(loaded, monkeypatch):
    model, tok = loaded
    monkeypatch.setenv("CODELOOP_HF_LOOP", "own")
    assert HFGenerator(model, tok).loop == "own"
    monkeypatch.setenv("CODELOOP_HF_LOOP", "fast")
    with pytest.raises(UserError) as err:
        HFGenerator(model, tok)
    assert "fast" in err.value.message and err.value.where == "CODELOOP_HF_LOOP"
    monkeypatch.delenv("CODELOOP_HF_LOOP")
    assert get_generator("hf", str(model.codeloop_name), dtype="fp32", device="cpu", loop="own").loop == "own"


def test_batches_hold_no_more_tokens_than_batch_size_typical_rows():
    from codeloop.generation.hf import plan_batches

    # one 1,754-token outlier among short prompts (MBPP test's shape), longest first
    lengths = [1754] + [150] * 40 + [50] * 60
    spans = plan_batches(lengths, batch_size=32, max_new_tokens=64)
    # every row in exactly one batch, in order
    assert spans[0][0] == 0 and spans[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    typical = sorted(lengths)[len(lengths) // 2] + 64
    for start, end in spans:
        assert 1 <= end - start <= 32
        assert (end - start) * (lengths[start] + 64) <= max(32 * typical, lengths[start] + 64)
    assert spans[0] == (0, 32 * typical // (1754 + 64))  # the outlier's batch is small...
    assert any(end - start == 32 for start, end in spans)  # ...and typical prompts still fill batch_size
    assert plan_batches([], 8, 10) == []
    assert plan_batches([5000], 8, 10) == [(0, 1)]  # a prompt over the budget still runs, alone
