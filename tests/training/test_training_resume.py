"""Kill during training, rerun the same command: it resumes from the checkpoint. Plus the slow
default-model DPO run and the GPU-only bf16 path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codeloop.training import DPORunConfig, SFTRunConfig, last_complete_checkpoint, train_dpo, train_sft


def _write_data(path: Path, n: int = 16) -> Path:
    rows = [{"instruction": f"# task {i}\ndef f(x):\n", "response": "    return x" + " * 2" * (i % 4) + "\n"}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_kill_then_same_command_resumes_from_checkpoint(tiny_model_dir, tmp_path):
    data = _write_data(tmp_path / "d.jsonl")
    out = tmp_path / "run"
    max_steps = 30
    cmd = [sys.executable, "-m", "codeloop", "train", "sft", "--model", str(tiny_model_dir), "--data", str(data),
           "--out", str(out), "--max-steps", str(max_steps), "--save-steps", "5", "--batch-size", "2",
           "--max-length", "64", "--packing", "isolated", "--bf16", "off"]
    env = {**os.environ, "CODELOOP_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while last_complete_checkpoint(out / "checkpoints") is None:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    killed_at = json.loads((last_complete_checkpoint(out / "checkpoints") / "trainer_state.json").read_text())
    assert 0 < killed_at["global_step"] < max_steps
    assert not (out / "train_summary.json").exists()

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["resumed_from_step"] >= killed_at["global_step"] > 0
    assert summary["steps"] == max_steps
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, max_steps + 1))  # nothing repeated, nothing lost
    assert "resumed from step" in done.stderr


@pytest.mark.slow
def test_two_lora_dpo_steps_on_the_default_model(tmp_path):
    from codeloop.models import resolve_model_path

    try:
        resolve_model_path("default")
    except Exception as exc:  # the PyPI GGUF package is part of the install; skip only if it is truly absent
        pytest.skip(f"default model unavailable: {exc}")
    pairs = [{"prompt": "def add(a, b):\n", "chosen": "    return a + b\n", "rejected": "    return a - b\n"},
             {"prompt": "def is_even(n):\n", "chosen": "    return n % 2 == 0\n", "rejected": "    return n % 2\n"}]
    cfg = DPORunConfig(model="default", out_dir=str(tmp_path / "dpo"), lora=True, max_steps=2, save_steps=50,
                       per_device_batch_size=2, max_length=128, learning_rate=1e-4)
    result = train_dpo(pairs, cfg)
    assert result.steps == 2 and result.adapter
    assert (result.output_dir / "adapter_model.safetensors").exists()
    assert "rewards/margins" in result.metrics


@pytest.mark.gpu
def test_bf16_sft_on_cuda(tiny_model_dir, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    records = [{"prompt": f"p{i}", "completion": f" c{i}"} for i in range(8)]
    cfg = SFTRunConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "o"), max_steps=2, lora=True,
                       bf16="auto", packing="isolated", max_length=64)
    result = train_sft(records, cfg)
    summary = json.loads((tmp_path / "o" / "train_summary.json").read_text())
    assert summary["device"] == "cuda" and summary["bf16"] == torch.cuda.is_bf16_supported()
    assert result.steps == 2
