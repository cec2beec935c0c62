"""`codeloop train sft|dpo`: fine-tune with TRL (LoRA or full), resumable, metrics to JSONL + TensorBoard.

Runs the same under `accelerate launch` (DeepSpeed ZeRO-2/3, FSDP; see configs/ and docs/training.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codeloop.console import summary

_PACKING_HELP = ("Batch layout: pad-to-longest (default), pad-to-max, codeact (Dynamic Pack, shared causal rows), "
                 "isolated (Dynamic Pack, samples cannot see each other), none (TRL's collator), "
                 "trl-bfd (TRL's own packing).")



def register(app: typer.Typer) -> None:
    train_app = typer.Typer(help="Fine-tune a model with SFT or DPO (TRL, PEFT, accelerate).", no_args_is_help=True)
    app.add_typer(train_app, name="train")

    common = dict(
        lora=typer.Option(None, "--lora/--full", help="LoRA adapter or full fine-tuning [default: LoRA on CPU, "
                                                      "full on GPU]."),
        lora_r=typer.Option(16, help="LoRA rank."),
        lora_alpha=typer.Option(32, help="LoRA alpha."),
        epochs=typer.Option(1.0, help="Passes over the data (ignored when --max-steps > 0)."),
        max_steps=typer.Option(-1, help="Optimizer steps; > 0 overrides --epochs."),
        batch_size=typer.Option(4, help="Samples per device per micro-batch."),
        grad_accum=typer.Option(1, help="Gradient accumulation steps."),
        max_length=typer.Option(1024, help="Longest tokenized sequence (and packed row)."),
        bf16=typer.Option("auto", help="auto | on | off (auto: where the device runs bf16 natively)."),
        save_steps=typer.Option(50, help="Checkpoint every N optimizer steps (the resume point)."),
        seed=typer.Option(0, help="Seed for initialisation and data order."),
        curriculum=typer.Option(False, help="Train in the records' 'order' (or 'bucket' easy->hard, shuffled "
                                            "within a bucket) instead of shuffling."),
        overwrite=typer.Option(False, help="Delete OUT first instead of resuming."),
    )

    @train_app.command("sft")
    def sft(model: str = typer.Option("default", help="Base model: 'default', hub id or local path."),
            data: Path = typer.Option(..., help="JSONL of {prompt, completion} (or {instruction, response})."),
            out: Path = typer.Option(..., help="Run folder: checkpoints, metrics.jsonl, final/."),
            learning_rate: float = typer.Option(2e-4, "--lr", help="Learning rate."),
            packing: str = typer.Option("pad-to-longest", help=_PACKING_HELP),
            lora: Optional[bool] = common["lora"], lora_r: int = common["lora_r"],
            lora_alpha: int = common["lora_alpha"], epochs: float = common["epochs"],
            max_steps: int = common["max_steps"], batch_size: int = common["batch_size"],
            grad_accum: int = common["grad_accum"], max_length: int = common["max_length"],
            bf16: str = common["bf16"], save_steps: int = common["save_steps"], seed: int = common["seed"],
            curriculum: bool = common["curriculum"], overwrite: bool = common["overwrite"]) -> None:
        """Supervised fine-tuning, loss on the completion only. Rerun the same command to resume."""
        from codeloop.training import SFTRunConfig, train_sft

        config = SFTRunConfig(model=model, out_dir=str(out), lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                              learning_rate=learning_rate, epochs=epochs, max_steps=max_steps,
                              per_device_batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
                              bf16=bf16, save_steps=save_steps, seed=seed, packing=packing, curriculum=curriculum)
        result = train_sft(str(data), config, overwrite=overwrite)
        _report("SFT", result)

    @train_app.command("dpo")
    def dpo(model: str = typer.Option("default", help="Base model: 'default', hub id or local path."),
            pairs: Path = typer.Option(..., help="JSONL of {prompt, chosen, rejected} (+ bucket/order)."),
            out: Path = typer.Option(..., help="Run folder: checkpoints, metrics.jsonl, final/."),
            learning_rate: float = typer.Option(5e-6, "--lr", help="Learning rate."),
            beta: float = typer.Option(0.1, help="DPO beta (strength of the KL anchor to the reference)."),
            loss_type: str = typer.Option("sigmoid", help="TRL DPO loss: sigmoid, ipo, hinge, robust, ... "
                                                          "(comma-separated to combine)."),
            precompute_ref: bool = typer.Option(False, help="Compute the reference log-probs once before "
                                                            "training (no reference forward per step)."),
            lora: Optional[bool] = common["lora"], lora_r: int = common["lora_r"],
            lora_alpha: int = common["lora_alpha"], epochs: float = common["epochs"],
            max_steps: int = common["max_steps"], batch_size: int = common["batch_size"],
            grad_accum: int = common["grad_accum"], max_length: int = common["max_length"],
            bf16: str = common["bf16"], save_steps: int = common["save_steps"], seed: int = common["seed"],
            curriculum: bool = common["curriculum"], overwrite: bool = common["overwrite"]) -> None:
        """Direct preference optimisation against the frozen base. Rerun the same command to resume."""
        from codeloop.training import DPORunConfig, train_dpo

        losses = [x.strip() for x in loss_type.split(",") if x.strip()]
        config = DPORunConfig(model=model, out_dir=str(out), lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                              learning_rate=learning_rate, epochs=epochs, max_steps=max_steps,
                              per_device_batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
                              bf16=bf16, save_steps=save_steps, seed=seed, beta=beta,
                              loss_type=losses[0] if len(losses) == 1 else losses,
                              precompute_ref_log_probs=precompute_ref, curriculum=curriculum)
        result = train_dpo(str(pairs), config, overwrite=overwrite)
        _report("DPO", result)


def _report(kind: str, result) -> None:
    m = result.metrics
    what = "adapter" if result.adapter else "model"
    if result.skipped:
        summary(f"{kind} already complete ({result.steps} steps): {what} in {result.output_dir}")
        return
    parts = [f"{result.steps} steps in {result.wall_time_s:.1f}s"]
    if "first_loss" in m and "loss" in m:
        parts.append(f"loss {m['first_loss']:.4f} -> {m['loss']:.4f}")
    if "rewards/accuracies_avg" in m:
        parts.append(f"reward acc {m['rewards/accuracies_avg']:.2f}, margin {m.get('rewards/margins', 0):.4f}")
    if "padding_ratio_avg" in m:
        parts.append(f"padding {m['padding_ratio_avg']:.1%}, {m.get('real_tokens_per_s_avg', 0):.0f} real tok/s")
    if result.resumed_from_step:
        parts.append(f"resumed from step {result.resumed_from_step}")
    summary(f"{kind}: " + "; ".join(parts) + f"; {what} in {result.output_dir}")
