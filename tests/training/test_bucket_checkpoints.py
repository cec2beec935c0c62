"""Models kept at curriculum bucket ends: the step arithmetic, and a tiny DPO run that keeps them."""

import json

import pytest

from codeloop.errors import UserError
from codeloop.training import DPORunConfig, SFTRunConfig, train_dpo, train_sft
from codeloop.training.data import bucket_ends


def test_bucket_ends_step_arithmetic():
    b = [3, 3, 1, 1, 1, 2, 2]
    assert bucket_ends(b, 1) == [{"step": 2, "buckets": [3], "pairs_seen": 2},
                                 {"step": 5, "buckets": [1], "pairs_seen": 5},
                                 {"step": 7, "buckets": [2], "pairs_seen": 7}]
    # batch 2: [3 3][1 1][1 2][2] -> bucket 1 ends inside step 3's batch
    assert [e["step"] for e in bucket_ends(b, 2)] == [1, 3, 4]
    # two buckets ending within one optimizer step share its entry
    assert bucket_ends(b, 2, grad_accum=2) == [{"step": 1, "buckets": [3], "pairs_seen": 2},
                                               {"step": 2, "buckets": [1, 2], "pairs_seen": 7}]
    assert [e["step"] for e in bucket_ends(b, 1, world_size=2)] == [1, 3, 4]
    assert bucket_ends([], 4) == []


def _rows(n=7, buckets=(3, 3, 1, 1, 1, 2, 2)):
    # file order is not training order: `order` is
    return [{"prompt": f"# task {i}\ndef f(x):\n", "chosen": f"    return x + {i}\n", "rejected": "    pass\n",
             "bucket": buckets[i], "order": i} for i in range(n)][::-1]


def _adapter_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_dpo_keeps_a_model_at_each_bucket_end_and_the_shuffled_arm_at_the_same_steps(tiny_model_dir, tmp_path):
    rows = _rows()
    cfg = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "cur"), per_device_batch_size=2,
                       curriculum=True, checkpoint_buckets=True, save_steps=50, seed=1)
    res = train_dpo(rows, cfg)
    fed = sorted(rows, key=lambda r: r["order"])
    assert [r["bucket"] for r in fed] == [3, 3, 1, 1, 1, 2, 2]
    assert [(c["step"], c["buckets"]) for c in res.checkpoints] == [(1, [3]), (3, [1]), (4, [2])]
    index = json.loads((tmp_path / "cur" / "bucket_checkpoints.json").read_text())
    assert index == res.checkpoints
    for c in index:
        folder = tmp_path / "cur" / c["path"]
        assert (folder / "adapter_config.json").exists() and (folder / "codeloop_model.json").exists()
    # the last bucket ends at the last step: that kept model is the final one, and earlier ones differ
    last, first = _adapter_weights(tmp_path / "cur" / index[-1]["path"]), _adapter_weights(tmp_path / "cur" / index[0]["path"])
    final = _adapter_weights(tmp_path / "cur" / "final")
    assert all((last[k] == final[k]).all() for k in final)
    assert any(not (first[k] == final[k]).all() for k in final)
    again = train_dpo(rows, cfg)
    assert again.skipped and again.checkpoints == res.checkpoints

    shuffled = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "shuf"), per_device_batch_size=2,
                            curriculum=False, checkpoint_steps=[c["step"] for c in res.checkpoints], save_steps=50,
                            seed=1)
    sres = train_dpo(rows, shuffled)
    assert [c["step"] for c in sres.checkpoints] == [1, 3, 4]
    # a shuffled run asked for bucket ends gets the step counts the curriculum run had
    buckets_too = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "shuf2"), per_device_batch_size=2,
                               curriculum=False, checkpoint_buckets=True, max_steps=3, save_steps=50, seed=1)
    assert [c["step"] for c in train_dpo(rows, buckets_too).checkpoints] == [1, 3]  # none past the last step


def test_bucket_ends_count_only_the_pairs_trl_keeps(tiny_model_dir, tmp_path):
    rows = _rows()
    long_prompt = "# " + "x " * 200 + "\n"
    rows[-1] = {**rows[-1], "prompt": long_prompt}  # order 0 (bucket 3): TRL drops it at max_length 64
    cfg = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "d"), per_device_batch_size=1,
                       curriculum=True, checkpoint_buckets=True, max_length=64, save_steps=50)
    res = train_dpo(rows, cfg)
    assert [(c["step"], c["buckets"]) for c in res.checkpoints] == [(1, [3]), (4, [1]), (6, [2])]


def test_bucket_checkpoints_need_buckets(tiny_model_dir, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "bucket"} for r in _rows()]
    cfg = DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "d"), per_device_batch_size=2,
                       curriculum=True, checkpoint_buckets=True)
    with pytest.raises(UserError, match="bucket") as e:
        train_dpo(rows, cfg)
    assert e.value.where == "checkpoint_buckets"
    with pytest.raises(UserError):
        DPORunConfig(checkpoint_steps=[0]).validate()


def test_sft_and_plain_dpo_keep_no_extra_models(tiny_model_dir, tmp_path):
    sft = train_sft([{"prompt": "def f():\n", "completion": "    return 1\n"}] * 4,
                    SFTRunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "sft"), max_steps=1))
    assert sft.checkpoints == [] and not (tmp_path / "sft" / "bucket_checkpoints").exists()
    dpo = train_dpo(_rows(), DPORunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "dpo"), max_steps=1))
    assert dpo.checkpoints == [] and not (tmp_path / "dpo" / "bucket_checkpoints.json").exists()
    assert "checkpoint_buckets" not in json.loads((tmp_path / "dpo" / "run_config.json").read_text())["config"]
