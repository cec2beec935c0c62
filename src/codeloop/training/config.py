"""Run configurations for SFT and DPO, and the result every training run returns."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeloop.errors import UserError
from codeloop.models import cpu_supports_bf16
from codeloop.steps import option
from codeloop.training.packing import LAYOUTS, PACKING_MODES

# "trl-bfd": TRL's own packing (best-fit decreasing + padding-free), the external baseline
TRAIN_PACKING_MODES = PACKING_MODES + ("trl-bfd",)
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


@dataclass
class _RunConfig:
    model: str = option("default", help="Base model: 'default' (the embedded one), a hub id or a local path.")
    out_dir: str = option("runs/train", help="Run folder: checkpoints, metrics.jsonl, final/.", cli=False)
    lora: bool | None = option(None, help="LoRA adapter (true) or full fine-tuning (false); default: LoRA on CPU, "
                                          "full on GPU.", flags=("--lora/--full",))
    lora_r: int = option(16, help="LoRA rank.")
    lora_alpha: int = option(32, help="LoRA alpha.")
    lora_dropout: float = option(0.05, help="LoRA dropout.")
    target_modules: list[str] | str = option("all-linear", help="Modules LoRA adapts: all-linear or a list of names.")
    learning_rate: float = option(2e-4, help="Peak learning rate.", flags=("--lr",))
    epochs: float = option(1.0, help="Passes over the data (ignored when max_steps > 0).")
    max_steps: int = option(-1, help="Optimizer steps; > 0 overrides epochs.")
    per_device_batch_size: int = option(4, help="Samples per device per micro-batch.", flags=("--batch-size",),
                                        aliases=("batch_size",))
    grad_accum: int = option(1, help="Gradient accumulation steps.")
    max_length: int = option(1024, help="Longest tokenized sequence (and packed row).")
    bf16: bool | str = option("auto", help="auto | on | off (auto: where the device runs bf16 natively).")
    gradient_checkpointing: bool | None = option(None, help="Recompute activations to save memory; default: on "
                                                            "for CUDA, off on CPU (speed).")
    save_steps: int = option(50, help="Checkpoint every N optimizer steps (the resume point).")
    save_total_limit: int | None = option(2, help="Checkpoints kept (older ones are deleted).")
    logging_steps: int = option(1, help="Log metrics every N steps.")
    seed: int = option(0, help="Seed for initialisation and data order.")
    warmup: float = option(0.0, help="Warm-up: steps, or a fraction of all steps when < 1.")
    lr_scheduler_type: str = option("linear", help="transformers learning-rate schedule (linear, cosine, ...).")
    packing: str = option("pad-to-longest", choices=TRAIN_PACKING_MODES,
                          help="Batch layout: pad-to-longest, pad-to-max, codeact (Dynamic Pack, shared causal "
                               "rows), isolated (Dynamic Pack, samples cannot see each other), none (TRL's "
                               "collator), trl-bfd (TRL's own packing).")
    pack_layout: str = option("balanced", choices=LAYOUTS, help="Dynamic Pack row layout.")
    curriculum: bool = option(False, help="Feed records in their curriculum 'order' (from the curriculum step) "
                                          "instead of shuffling.")
    attn_implementation: str | None = option(None, help="Attention kernel; default: the model's (flash-attention "
                                                        "for 'isolated' packing on CUDA when installed).")
    report_to: list[str] | str = option("tensorboard", help="Where metrics go: tensorboard, wandb, none, ...")
    dataloader_num_workers: int = option(0, help="Data-loading worker processes.")

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
        for name in report_targets(self.report_to):
            module, pip = REPORT_PACKAGES.get(name, (None, None))
            if module and importlib.util.find_spec(module) is None:
                raise UserError(f"report_to {name} needs the '{module}' package: pip install {pip}",
                                f"{where}.report_to")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# report_to targets (transformers integrations) -> (module, pip line). tensorboard is not here: the
# default, it falls back to metrics.jsonl with a warning when missing (training/run.py).
REPORT_PACKAGES = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow"), "comet_ml": ("comet_ml", "comet-ml"),
                   "clearml": ("clearml", "clearml"), "dvclive": ("dvclive", "dvclive"),
                   "trackio": ("trackio", "trackio"), "swanlab": ("swanlab", "swanlab"),
                   "neptune": ("neptune", "neptune"), "codecarbon": ("codecarbon", "codecarbon")}


def report_targets(report_to: list[str] | str) -> list[str]:
    """`report_to` as a list of names ("wandb,tensorboard" and ["wandb"] alike), without none."""
    items = [report_to] if isinstance(report_to, str) else list(report_to)
    names = [n.strip() for item in items for n in str(item).split(",")]
    return [n for n in names if n and n != "none"]


@dataclass
class SFTRunConfig(_RunConfig):
    """Supervised fine-tuning on prompt/completion records, loss on the completion only."""

    completion_only_loss: bool = option(True, help="Loss on the completion tokens only (not the prompt).")


@dataclass
class DPORunConfig(_RunConfig):
    """DPO on prompt/chosen/rejected pairs. Reference: the frozen base (adapter disabled with LoRA)."""

    learning_rate: float = option(5e-6, help="Peak learning rate.", flags=("--lr",))
    beta: float = option(0.1, help="DPO beta (strength of the KL anchor to the reference).")
    loss_type: str | list[str] = option("sigmoid", help="TRL DPO loss: sigmoid, ipo, hinge, robust, ... "
                                                        "(a list to combine).")
    precompute_ref_log_probs: bool = option(False, help="Compute the reference log-probs once before training "
                                                        "(no reference forward per step).",
                                            flags=("--precompute-ref",))
    packing: str = option("none", choices=("none", "pad-to-longest"),
                          help="Batch layout: none (TRL's collator) or pad-to-longest.")
    checkpoint_buckets: bool = option(False, help="Keep the adapter (or model) at each optimizer step where the "
                                                  "pairs, read in their curriculum 'order', finish a 'bucket' "
                                                  "(OUT/bucket_checkpoints/step-N/): the points of the per-bucket "
                                                  "eval curve. A shuffled run keeps the same step counts.")
    checkpoint_steps: list[int] = option(default_factory=list, min=1,
                                         help="Also keep the adapter at these optimizer steps (e.g. a shuffled "
                                              "arm at a curriculum arm's bucket ends).")

    def validate(self) -> None:
        super().validate()
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.checkpoint_steps):
            raise UserError(f"must be optimizer steps >= 1, got {self.checkpoint_steps!r}", "--checkpoint-steps")
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
    # models kept at chosen steps (DPO `checkpoint_buckets` / `checkpoint_steps`):
    # {"step", "buckets", "pairs_seen", "path"} each, `path` relative to run_dir
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["output_dir"], d["run_dir"] = str(self.output_dir), str(self.run_dir)
        return d


# ---------------------------------------------------------------------------------------------
# Device capabilities


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


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
