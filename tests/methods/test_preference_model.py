"""The DPO method's model-facing steps with a tiny model: distances against a direct computation,
and the order in which the trainer actually feeds the curriculum to the model."""

import re

import pytest
import torch

from codeloop.methods.preference import PreferenceConfig, assign_curriculum, pair_distances
from codeloop.records import Pair, to_dict


def _direct_logprob(model, tok, prompt: str, completion: str) -> float:
    """Sum of log p(completion token | everything before), one unbatched full-vocabulary forward."""
    from codeloop.models import encode_continuation, encode_prompt

    p_ids, c_ids = encode_prompt(tok, prompt), encode_continuation(tok, completion)
    ids = torch.tensor([p_ids + c_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    return sum(float(logp[len(p_ids) + i - 1, t]) for i, t in enumerate(c_ids))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from codeloop.models import load_model

    return load_model(str(tiny_model_dir), dtype="fp32", device="cpu")


def _pairs():
    return [Pair(task_id=f"t{i}", prompt=f"# task {i:02d}\ndef f(x):\n", chosen="    return x + %d\n" % i,
                 rejected="    pass\n" * (1 + i % 3)) for i in range(9)]


@pytest.mark.parametrize("length_normalized", [False, True])
def test_distance_equals_a_direct_computation(tiny, length_normalized):
    model, tok = tiny
    pairs = pair_distances(model, tok, _pairs(), length_normalized=length_normalized, batch_size=4)
    for p in pairs:
        lc, lr = _direct_logprob(model, tok, p.prompt, p.chosen), _direct_logprob(model, tok, p.prompt, p.rejected)
        if length_normalized:
            lc, lr = lc / p.extra["chosen_tokens"], lr / p.extra["rejected_tokens"]
        assert p.distance == pytest.approx(abs(lc - lr), rel=1e-4, abs=1e-4)


def test_signed_distance_equals_a_direct_computation(tiny):
    model, tok = tiny
    pairs = pair_distances(model, tok, _pairs(), batch_size=4, signed=True)
    gaps = [_direct_logprob(model, tok, p.prompt, p.chosen) - _direct_logprob(model, tok, p.prompt, p.rejected)
            for p in pairs]
    assert [p.distance for p in pairs] == pytest.approx(gaps, rel=1e-4, abs=1e-4)
    assert any(g < 0 for g in gaps) or any(g > 0 for g in gaps)


def test_trainer_sees_the_curriculum_order(tiny, tiny_model_dir, tmp_path):
    from codeloop.training import DPORunConfig, train_dpo

    model, tok = tiny
    pairs = assign_curriculum(pair_distances(model, tok, _pairs()), PreferenceConfig(seed=3))
    expected = [int(re.search(r"task (\d+)", p.prompt).group(1)) for p in pairs]
    records = [to_dict(p) for p in reversed(pairs)]  # file order is not training order: `order` is
    fed = []
    cfg = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "dpo"), max_steps=3, save_steps=50,
                       per_device_batch_size=3, curriculum=True, seed=3)
    train_dpo(records, cfg, on_batch=fed.extend)
    seen = [int(re.search(r"task (\d+)", tok.decode(ex["prompt_ids"])).group(1)) for ex in fed]
    assert seen == expected
    distances = {int(re.search(r"task (\d+)", p.prompt).group(1)): p.bucket for p in pairs}
    assert [distances[i] for i in seen] == sorted((distances[i] for i in seen), reverse=True)  # easy first
