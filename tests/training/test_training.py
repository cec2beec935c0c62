"""SFT and DPO end to end on a tiny model: outputs, metrics, reload, curriculum order, user errors."""

from __future__ import annotations

import json
import re

import pytest

from codeloop.errors import UserError
from codeloop.training import (DPORunConfig, SFTRunConfig, curriculum_order, train_dpo,
                               train_sft)


def _sft_records(n=12):
    return [{"prompt": f"# task {i:02d}\ndef f(x):\n", "completion": "    return x" + " + 1" * (i % 5) + "\n"}
            for i in range(n)]


def _pairs(n=12):
    return [{"prompt": f"# task {i:02d}\ndef f(x):\n", "chosen": "    return x + 1\n", "rejected": "    pass\n",
             "bucket": i % 3, "order": (7 * i) % n} for i in range(n)]


def _task_ids(tokenizer, examples, key):
    return [int(re.search(r"task (\d+)", tokenizer.decode(ex[key])).group(1)) for ex in examples]


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_sft_lora_end_to_end_and_reload(tiny_model_dir, tmp_path):
    out = tmp_path / "sft"
    cfg = SFTRunConfig(model=str(tiny_model_dir), out_dir=str(out), max_steps=4, save_steps=2,
                       per_device_batch_size=4, max_length=64, packing="isolated", learning_rate=1e-3)
    result = train_sft(_sft_records(), cfg)
    assert result.adapter and result.steps == 4 and result.output_dir == out / "final"
    assert (out / "final" / "adapter_config.json").exists()
    assert (out / "final" / "tokenizer_config.json").exists()
    assert list((out / "tensorboard").glob("events.out.tfevents*"))
    rows = _metrics(out)
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(0 <= r["padding_ratio"] < 1 and r["real_tokens_per_s"] > 0 for r in steps)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["kind"] == "sft"

    from codeloop.models import load_model

    model, tok = load_model(str(tiny_model_dir), adapter=str(result.output_dir), dtype="fp32", device="cpu")
    assert any("lora" in name for name, _ in model.named_parameters())

    again = train_sft(_sft_records(), cfg)  # same command after completion: nothing to do
    assert again.skipped and again.steps == 4


def test_sft_loss_only_on_completion_and_learns(tiny_model_dir, tmp_path):
    seen = []
    cfg = SFTRunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "sft"), max_steps=12, save_steps=50,
                       per_device_batch_size=4, max_length=64, lora=False, learning_rate=3e-3)
    result = train_sft(_sft_records(4), cfg, on_batch=seen.extend)
    assert (result.output_dir / "model.safetensors").exists() and not result.adapter
    ex = seen[0]
    n_prompt = sum(1 for label in ex["labels"] if label == -100)
    assert 0 < n_prompt < len(ex["input_ids"])
    assert all(label == -100 for label in ex["labels"][:n_prompt])  # the prompt is never a target
    assert result.metrics["loss"] < result.metrics["first_loss"]


def test_curriculum_feeds_pairs_in_their_order(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pairs = _pairs(12)
    seen = []
    cfg = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "dpo"), max_steps=3, save_steps=50,
                       per_device_batch_size=4, curriculum=True, seed=5)
    train_dpo(pairs, cfg, on_batch=seen.extend)
    fed = _task_ids(tok, seen, "prompt_ids")
    expected = [int(re.search(r"task (\d+)", p["prompt"]).group(1)) for p in curriculum_order(pairs)]
    assert fed == expected
    assert [pairs[i]["order"] for i in fed] == sorted(pairs[i]["order"] for i in fed)

    shuffled = []
    cfg.curriculum, cfg.out_dir = False, str(tmp_path / "dpo-shuffled")
    train_dpo(pairs, cfg, on_batch=shuffled.extend)
    assert _task_ids(tok, shuffled, "prompt_ids") != expected  # without the curriculum the loader shuffles


def test_sft_curriculum_follows_explicit_order(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = _sft_records(8)
    for rank, rec in zip([5, 2, 7, 0, 1, 6, 3, 4], records):
        rec["order"] = rank
    seen = []
    cfg = SFTRunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "sft"), max_steps=2, save_steps=50,
                       per_device_batch_size=4, max_length=64, curriculum=True, packing="pad-to-longest")
    train_sft(records, cfg, on_batch=seen.extend)
    assert _task_ids(tok, seen, "input_ids") == [3, 4, 1, 6, 7, 0, 5, 2]


@pytest.mark.parametrize("variant", ["lora", "lora-precompute", "full", "given-ref"])
def test_dpo_runs_and_logs_rewards(tiny_model_dir, tmp_path, variant):
    pairs = _pairs(8)
    if variant == "given-ref":
        for p in pairs:
            p["ref_chosen_logps"], p["ref_rejected_logps"] = 100.0, -100.0
    cfg = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "dpo"), max_steps=2, save_steps=50,
                       per_device_batch_size=4, lora=variant != "full", learning_rate=1e-3, beta=0.2,
                       precompute_ref_log_probs=variant == "lora-precompute")
    result = train_dpo(pairs, cfg)
    first = _metrics(tmp_path / "dpo")[0]
    for key in ("loss", "rewards/chosen", "rewards/margins", "rewards/accuracies"):
        assert key in first
    if variant == "given-ref":
        # margin = beta * ((c - 100) - (r + 100)): the supplied values, not a recomputed reference
        assert first["rewards/margins"] < -30
    else:
        assert first["rewards/margins"] == pytest.approx(0.0, abs=1e-4)  # policy == reference at step 1
    final = result.output_dir
    assert (final / ("adapter_config.json" if variant != "full" else "model.safetensors")).exists()


def test_dpo_loss_type_is_passed_to_trl(tiny_model_dir, tmp_path):
    cfg = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "dpo"), max_steps=1, save_steps=50,
                       per_device_batch_size=4, loss_type="ipo", beta=0.5)
    result = train_dpo(_pairs(4), cfg)
    # IPO at step 1 (policy == reference): (0 - 1/(2*beta))^2 = 1.0; sigmoid would be log 2
    assert result.metrics["loss"] == pytest.approx(1.0, abs=1e-3)


def test_curriculum_order_is_the_given_order_never_the_buckets():
    rows = [{"id": i, "bucket": i % 3, "order": o} for i, o in enumerate([3, 0, 2, 1])]
    assert [r["id"] for r in curriculum_order(rows)] == [1, 3, 2, 0]
    with pytest.raises(UserError, match="codeloop curriculum") as err:  # bucket alone: the step that orders is named
        curriculum_order([{"id": 0, "bucket": 1}])
    assert err.value.where == "record 0"
    with pytest.raises(UserError, match="'order'"):
        curriculum_order([{"id": 0}])


def test_user_errors_name_the_place(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n" + json.dumps({"prompt": "p"}) + "\n")
    cfg = SFTRunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "o"), max_steps=1)
    with pytest.raises(UserError) as err:
        train_sft(str(bad), cfg)
    assert err.value.where == f"{bad}:2" and "completion" in err.value.message
    with pytest.raises(UserError) as err:
        train_sft(_sft_records(), SFTRunConfig(model=str(tiny_model_dir), packing="zip"))
    assert err.value.where == "--packing"
    with pytest.raises(UserError):
        train_dpo(_pairs(), DPORunConfig(model=str(tiny_model_dir), packing="isolated"))
    with pytest.raises(UserError):
        train_dpo([{"prompt": "p", "chosen": "a", "rejected": "a"}], DPORunConfig(model=str(tiny_model_dir)))


def test_finished_run_with_other_config_is_refused(tiny_model_dir, tmp_path):
    cfg = SFTRunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "o"), max_steps=1, max_length=64)
    train_sft(_sft_records(4), cfg)
    cfg.learning_rate = 1e-3
    with pytest.raises(UserError) as err:
        train_sft(_sft_records(4), cfg)
    assert "--overwrite" in err.value.message
    assert train_sft(_sft_records(4), cfg, overwrite=True).steps == 1


def test_cli_train_sft(tiny_model_dir, tmp_path, capsys):
    from codeloop.cli import main

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _sft_records(6)))
    rc = main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "o"),
               "--max-steps", "2", "--packing", "codeact", "--max-length", "64"])
    assert rc == 0 and (tmp_path / "o" / "final" / "adapter_config.json").exists()
    rc = main(["train", "dpo", "--model", str(tiny_model_dir), "--pairs", str(data), "--out", str(tmp_path / "p")])
    assert rc == 2  # SFT records are not pairs: one clear error, no traceback
