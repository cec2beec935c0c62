"""Dynamic Pack: row planning, collator layouts, and attention isolation proved on a real model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeloop.training.packing import IGNORE_INDEX, STATS_KEY, DynamicPackCollator, plan_rows


def _area(lengths, rows):
    return len(rows) * max(sum(lengths[i] for i in row) for row in rows)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=40), st.integers(64, 200),
       st.sampled_from(["balanced", "next-fit"]))
def test_plan_rows_is_a_partition_into_sorted_runs_within_max_length(lengths, max_length, layout):
    rows = plan_rows(lengths, max_length, layout)
    flat = [i for row in rows for i in row]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= max_length for row in rows)
    assert all([lengths[i] for i in row] == sorted(lengths[i] for i in row) for row in rows)
    if layout == "next-fit":  # CodeACT: consecutive runs of the ascending order
        seq = [lengths[i] for i in flat]
        assert seq == sorted(seq)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=40), st.integers(64, 200))
def test_balanced_layout_never_pads_more_than_next_fit(lengths, max_length):
    greedy = plan_rows(lengths, max_length, "next-fit")
    balanced = plan_rows(lengths, max_length, "balanced")
    assert len(balanced) <= len(greedy)
    assert _area(lengths, balanced) <= _area(lengths, greedy)


def test_balanced_evens_out_rows_that_next_fit_leaves_ragged():
    lengths = [10] * 6  # next-fit at 40: 40 + 20 -> 2 rows of width 40; balanced: 30 + 30
    assert [len(r) for r in plan_rows(lengths, 40, "next-fit")] == [4, 2]
    assert [len(r) for r in plan_rows(lengths, 40, "balanced")] == [3, 3]


def _examples():
    return [{"input_ids": [5] * n, "labels": [IGNORE_INDEX] * (n // 2) + [7] * (n - n // 2)} for n in (3, 9, 4, 6)]


def test_pad_modes_keep_one_row_per_sample():
    longest = DynamicPackCollator(pad_token_id=0, mode="pad-to-longest", max_length=32)(_examples())
    assert longest["input_ids"].shape == (4, 9)
    assert longest["attention_mask"].sum().item() == 22
    assert longest[STATS_KEY].tolist() == [22, 36, 4, 4]
    full = DynamicPackCollator(pad_token_id=0, mode="pad-to-max", max_length=32)(_examples())
    assert full["input_ids"].shape == (4, 32)
    assert (full["labels"][full["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_codeact_shares_one_causal_row_and_isolated_restarts_positions():
    codeact = DynamicPackCollator(pad_token_id=0, mode="codeact", max_length=32)(_examples())
    assert codeact["input_ids"].shape == (1, 22)
    assert "position_ids" not in codeact and codeact["attention_mask"].all()
    isolated = DynamicPackCollator(pad_token_id=0, mode="isolated", max_length=32)(_examples())
    assert "attention_mask" not in isolated
    # sorted 3, 4, 6, 9: positions restart at each sample
    assert isolated["position_ids"][0].tolist() == [*range(3), *range(4), *range(6), *range(9)]
    assert isolated[STATS_KEY].tolist() == [22, 22, 4, 1]


def test_rows_respect_max_length_and_padding_is_never_a_target():
    out = DynamicPackCollator(pad_token_id=0, mode="isolated", max_length=12)(_examples())
    assert out["input_ids"].shape[1] <= 12 and out["input_ids"].shape[0] >= 2
    pad = out["input_ids"] == 0
    assert (out["labels"][pad] == IGNORE_INDEX).all()


def test_flash_attention_gets_one_varlen_row():
    out = DynamicPackCollator(pad_token_id=0, mode="isolated", max_length=32,
                              attn_implementation="flash_attention_2")(_examples())
    assert out["input_ids"].shape == (1, 22)
    assert out["cu_seq_lens_q"].tolist() == [0, 3, 12, 16, 22]
    assert out["max_length_q"] == 9


# ---------------------------------------------------------------------------------------------
# Isolation on a real (tiny) model


def _per_sample_loss(model, batch, segments):
    """Mean next-token NLL of each sample, read from the rows the collator built."""
    import torch

    inputs = {k: v for k, v in batch.items() if k not in ("labels", STATS_KEY)}
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                            batch["labels"][:, 1:].reshape(-1), reduction="none",
                                            ignore_index=IGNORE_INDEX).view(batch["labels"][:, 1:].shape)
    target = batch["labels"][:, 1:] != IGNORE_INDEX
    losses = []
    for row, start, end in segments:
        sl = slice(max(start - 1, 0), end - 1)
        losses.append((nll[row, sl].sum() / target[row, sl].sum()).item())
    return losses


def _segments(batch, lengths_in_order, rows):
    segs = []
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            segs.append((i, r, start, start + lengths_in_order[i]))
            start += lengths_in_order[i]
    return [s[1:] for s in sorted(segs)]


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def _random_samples(n_samples=6, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    samples = []
    for n in torch.randint(5, 30, (n_samples,), generator=g).tolist():
        ids = torch.randint(3, 300, (n,), generator=g).tolist()
        samples.append({"input_ids": ids, "labels": [IGNORE_INDEX] * (n // 3) + ids[n // 3:]})
    return samples


@pytest.mark.parametrize("seed", [0, 1])
def test_isolated_packing_gives_each_sample_the_loss_it_has_alone(tiny_model, seed):
    samples = _random_samples(seed=seed)
    alone = [_per_sample_loss(tiny_model, DynamicPackCollator(pad_token_id=0, mode="pad-to-longest",
                                                              max_length=128)([s]), [(0, 0, len(s["input_ids"]))])[0]
             for s in samples]
    lengths = [len(s["input_ids"]) for s in samples]
    rows = plan_rows(lengths, 64)
    assert len(rows) < len(samples) and any(len(r) > 1 for r in rows)  # something really is packed
    packed = DynamicPackCollator(pad_token_id=0, mode="isolated", max_length=64)(samples)
    got = _per_sample_loss(tiny_model, packed, _segments(packed, lengths, rows))
    assert got == pytest.approx(alone, abs=1e-5)


def test_codeact_packing_lets_samples_see_each_other(tiny_model):
    # the same check fails for the paper's shared rows: the isolation test can tell them apart
    samples = _random_samples(seed=0)
    lengths = [len(s["input_ids"]) for s in samples]
    alone = [_per_sample_loss(tiny_model, DynamicPackCollator(pad_token_id=0, mode="pad-to-longest",
                                                              max_length=128)([s]), [(0, 0, len(s["input_ids"]))])[0]
             for s in samples]
    rows = plan_rows(lengths, 64)
    packed = DynamicPackCollator(pad_token_id=0, mode="codeact", max_length=64)(samples)
    got = _per_sample_loss(tiny_model, packed, _segments(packed, lengths, rows))
    assert max(abs(a - b) for a, b in zip(got, alone)) > 1e-4


@pytest.mark.gpu
def test_isolated_varlen_flash_attention_matches_alone_on_gpu(tiny_model_dir):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from codeloop.training.config import flash_attn_installed

    if not flash_attn_installed():
        pytest.skip("flash-attn is not installed")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16,
                                                 attn_implementation="flash_attention_2").cuda().eval()
    samples = _random_samples(seed=3)
    lengths = [len(s["input_ids"]) for s in samples]
    packed = DynamicPackCollator(pad_token_id=0, mode="isolated", max_length=256,
                                 attn_implementation="flash_attention_2")(samples)
    packed = {k: v.cuda() if hasattr(v, "cuda") else v for k, v in packed.items()}
    bounds = packed["cu_seq_lens_q"].tolist()
    got = _per_sample_loss(model, packed, [(0, bounds[i], bounds[i + 1]) for i in range(len(samples))])
    alone = []
    for s in samples:
        b = DynamicPackCollator(pad_token_id=0, mode="pad-to-longest", max_length=256)([s])
        b = {k: v.cuda() for k, v in b.items()}
        alone.append(_per_sample_loss(model, b, [(0, 0, len(s["input_ids"]))])[0])
    assert got == pytest.approx(alone, abs=2e-2)  # bf16 kernels
    assert sum(lengths) == packed["input_ids"].shape[1]
