"""Run configurations for SFT and DPO, and the result every training run returns."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeloop.errors import UserError
from codeloop.training.packing import LAYOUTS, PACKING_MODES

# "trl-bfd": TRL's own packing (best-fit decreasing + padding-free), the external baseline
TRAIN_PACKING_MODES = PACKING_MODES + ("trl-bfd",)
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


@dataclass
class _RunConfig:
    model: str = "default"
    out_dir: str = "runs/train"
    lora: bool | None = None  # None: LoRA on CPU, full fine-tuning on GPU
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    per_device_batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    bf16: bool | str = "auto"  # "auto": where the device supports it
    gradient_checkpointing: bool | None = None  # None: on for CUDA, off on CPU (speed)
    save_steps: int = 50
    save_total_limit: int | None = 2
    logging_steps: int = 1
    seed: int = 0
    warmup: float = 0.0  # steps, or a fraction of all steps when < 1
    lr_scheduler_type: str = "linear"
    packing: str = "pad-to-longest"
    pack_layout: str = "balanced"
    curriculum: bool = False
    attn_implementation: str | None = None  # None: keep the model's; flash-attention for `isolated` on CUDA if installed
    report_to: list[str] | str = "tensorboard"
    dataloader_num_workers: int = 0

    def validate(self) -> None:
        where = type(self).__name__
        if self.packing not in TRAIN_PACKING_MODES:
            raise UserError(f"unknown packing mode {self.packing!r}; choose one of {', '.join(TRAIN_PACKING_MODES)}",
                            "--packing")
        if self.pack_layout not in LAYOUTS:
            raise UserError(f"unknown pack layout {self.pack_layout!r}; choose one of {', '.join(LAYOUTS)}",
                            "--pack-layout")
        if isinstance(self.bf16, str) and self.bf16 not in ("auto", "true", "false", "on", "off"):
            raise UserError("bf16 must be auto, on or off", "--bf16")
        for name in ("per_device_batch_size", "grad_accum", "max_length", "save_steps", "lora_r"):
            if getattr(self, name) < 1:
                raise UserError(f"must be >= 1, got {getattr(self, name)}", f"{where}.{name}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise UserError("set epochs > 0 or max_steps > 0", f"{where}.epochs")
        if self.learning_rate <= 0:
            raise UserError("must be > 0", f"{where}.learning_rate")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SFTRunConfig(_RunConfig):
    """Supervised fine-tuning on prompt/completion records, loss on the completion only."""

    completion_only_loss: bool = True


@dataclass
class DPORunConfig(_RunConfig):
    """DPO on prompt/chosen/rejected pairs. Reference: the frozen base (adapter disabled with LoRA)."""

    learning_rate: float = 5e-6
    beta: float = 0.1
    loss_type: str | list[str] = "sigmoid"
    precompute_ref_log_probs: bool = False
    packing: str = "none"

    def validate(self) -> None:
        super().validate()
        if self.packing not in ("none", "pad-to-longest"):
            raise UserError(f"DPO pads chosen and rejected to the longest of the batch; packing {self.packing!r} "
                            "is only for SFT", "--packing")
        for loss in [self.loss_type] if isinstance(self.loss_type, str) else self.loss_type:
            if loss not in DPO_LOSS_TYPES:
                raise UserError(f"unknown DPO loss type {loss!r}; choose one of {', '.join(DPO_LOSS_TYPES)}",
                                "--loss-type")
        if self.beta <= 0:
            raise UserError("must be > 0", "--beta")


@dataclass
class TrainResult:
    output_dir: Path  # OUT/final: the adapter (PEFT) or full model, with the tokenizer
    run_dir: Path
    adapter: bool
    steps: int
    wall_time_s: float
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed_from_step: int = 0
    skipped: bool = False  # the run was already complete with the same configuration

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["output_dir"], d["run_dir"] = str(self.output_dir), str(self.run_dir)
        return d


# ---------------------------------------------------------------------------------------------
# Device capabilities


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matmuls run natively (roughly 2x fp32 on this machine)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_bf16(setting: bool | str) -> bool:
    if isinstance(setting, bool):
        return setting
    if setting in ("true", "on"):
        return True
    if setting in ("false", "off"):
        return False
    if cuda_available():
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


def flash_attn_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None
