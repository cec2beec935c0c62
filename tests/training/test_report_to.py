"""report_to reaches TRL from a recipe train stage and `codeloop train sft|dpo --report-to`; a
missing integration package is named, with its pip line, before any training starts."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from codeloop.errors import UserError
from codeloop.pipeline.stages import TrainDPOConfig, TrainSFTConfig
from codeloop.steps import build_config
from codeloop.training.config import SFTRunConfig, report_targets

wandb_missing = pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")


@wandb_missing
@pytest.mark.parametrize("cls", [TrainSFTConfig, TrainDPOConfig])
def test_a_recipe_stage_asking_for_wandb_fails_at_load_with_the_pip_line(cls):
    with pytest.raises(UserError) as err:
        build_config(cls, {"input": "data", "report_to": ["wandb", "tensorboard"]}, "stages.train")
    assert "pip install wandb" in err.value.message and err.value.where == "stages.train.report_to"


@wandb_missing
@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_the_command_fails_before_training(tmp_path, kind):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "a", "completion": "b", "chosen": "b", "rejected": "c"}\n')
    flag = "--data" if kind == "sft" else "--pairs"
    out = subprocess.run([sys.executable, "-m", "codeloop", "train", kind, flag, str(data), "--report-to", "wandb",
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "CODELOOP_QUIET": "1"})
    assert out.returncode != 0
    assert "pip install wandb" in out.stdout + out.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_report_to_reaches_the_trainer_arguments(tmp_path, monkeypatch):
    from codeloop.training import run as training_run

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: real("json") if name == "wandb" else real(name, *a))
    cfg = SFTRunConfig(model="m", out_dir=str(tmp_path), report_to="wandb,tensorboard")
    cfg.validate()
    args = training_run._Run("sft", [{"prompt": "a", "completion": "b"}], cfg, None, False)._common_args(False, False)
    assert args["report_to"][0] == "wandb"
    assert "gradient_checkpointing" not in args or "activation_checkpointing" not in _training_arguments()


def _training_arguments() -> set[str]:
    import dataclasses

    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}


def test_report_targets():
    assert report_targets("wandb, tensorboard") == ["wandb", "tensorboard"]
    assert report_targets(["none"]) == [] and report_targets("none") == []
