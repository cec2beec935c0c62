"""`train_sft` and `train_dpo`: build the TRL trainer from a run config, resume, save, summarise.

Run folder (``config.out_dir``)::

    run_config.json        what this folder trains (a rerun with another config is refused)
    checkpoints/checkpoint-N/   TRL/transformers checkpoints every `save_steps` (resume point)
    tensorboard/           TensorBoard event files (report_to)
    metrics.jsonl          one line per log: loss, lr, grad norm, DPO rewards, padding, tokens/s
    final/                 the LoRA adapter (PEFT) or the full model, with the tokenizer
    bucket_checkpoints/step-N/  DPO with checkpoint_buckets / checkpoint_steps: the model at step N,
                           as final/ (kept, never rotated); bucket_checkpoints.json lists them
    train_summary.json     written last: the run is complete

A rerun of the same command resumes from the newest complete checkpoint; a rerun after
completion returns the stored result without training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from codeloop.console import console, warn
from codeloop.errors import UserError
from codeloop.records import atomic_write_text
from codeloop.models import peft_deprecations_quiet
from codeloop.training.config import report_targets
from codeloop.training.config import (DPORunConfig, SFTRunConfig, TrainResult, _RunConfig, cuda_available,
                                      flash_attn_installed, resolve_bf16)
from codeloop.training.data import (bucket_ends, check_chat_template, curriculum_order, fingerprint,
                                    load_dpo_pairs, load_sft_records, needs_chat_template, tokenize_messages)
from codeloop.training.packing import FLASH_IMPLEMENTATIONS, DynamicPackCollator

# fields that change where/how often things are written, not what is trained
_NOT_IDENTITY = ("out_dir", "save_steps", "save_total_limit", "logging_steps", "report_to",
                 "dataloader_num_workers")
FINAL_DIRNAME = "final"
MODEL_INFO = "codeloop_model.json"
SNAPSHOT_DIRNAME = "bucket_checkpoints"
# DPO fields absent from the run identity while unset, so runs made before they existed keep their hash
_IDENTITY_WHEN_SET = ("checkpoint_buckets", "checkpoint_steps")

Observer = Callable[[list[dict[str, Any]]], None]


def train_sft(records: list[dict] | str | os.PathLike, config: SFTRunConfig, *, on_batch: Observer | None = None,
              overwrite: bool = False) -> TrainResult:
    """Supervised fine-tuning with TRL's SFTTrainer; loss on the completion tokens only.

    `records`: prompt/completion dicts (or instruction/response, TRL's conversational messages or
    prompt/completion lists, or text), or a records file (JSONL, Parquet, a datasets folder). `on_batch` sees
    the tokenized examples of every batch in the order the dataloader feeds them to the model.
    """
    config.validate()
    rows = load_sft_records(records)
    return _Run("sft", rows, config, on_batch, overwrite).execute()


def train_dpo(pairs: list | str | os.PathLike, config: DPORunConfig, *, on_batch: Observer | None = None,
              overwrite: bool = False) -> TrainResult:
    """DPO with TRL's DPOTrainer. The reference is the frozen base model (the LoRA adapter
    disabled, or a frozen copy for full fine-tuning), log-probs precomputed by TRL when
    `precompute_ref_log_probs`, or the `ref_chosen_logps`/`ref_rejected_logps` given with the pairs."""
    config.validate()
    rows = load_dpo_pairs(pairs)
    return _Run("dpo", rows, config, on_batch, overwrite).execute()


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint-N whose trainer state, optimizer and weights were all written."""
    if not folder.is_dir():
        return None
    found = []
    for p in folder.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and p.name[11:].isdigit():
            found.append((int(p.name[11:]), p))
    for _, p in sorted(found, reverse=True):
        has_weights = any((p / name).exists() for name in (
            "adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json",
            "pytorch_model.bin", "adapter_model.bin")) or any(p.glob("global_step*")) or any(p.glob("pytorch_model_fsdp*"))
        has_state = (p / "trainer_state.json").exists()
        has_optim = (p / "optimizer.pt").exists() or any(p.glob("global_step*")) or any(p.glob("optimizer*"))
        if has_weights and has_state and has_optim:
            return p
    return None


class _Run:
    def __init__(self, kind: str, rows: list[dict[str, Any]], config: _RunConfig, on_batch: Observer | None,
                 overwrite: bool):
        self.kind, self.rows, self.config, self.on_batch = kind, rows, config, on_batch
        self.run_dir = Path(config.out_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        if overwrite and self.run_dir.exists() and _is_main_process():
            shutil.rmtree(self.run_dir)
        identity = {k: v for k, v in config.to_dict().items()
                    if k not in _NOT_IDENTITY and not (k in _IDENTITY_WHEN_SET and not v)}
        self.identity = {"kind": kind, "config": identity, "data": fingerprint(rows), "n_records": len(rows)}
        self.config_hash = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]

    # -----------------------------------------------------------------------------------------
    def execute(self) -> TrainResult:
        done = self._completed()
        if done is not None:
            return done
        self._claim_run_dir()
        if os.environ.get("CODELOOP_QUIET") == "1":
            import datasets
            import transformers

            datasets.disable_progress_bars()
            transformers.utils.logging.disable_progress_bar()

        on_gpu = cuda_available()
        lora = self.config.lora if self.config.lora is not None else not on_gpu
        bf16 = resolve_bf16(self.config.bf16)
        model, tokenizer = self._load_model()
        if needs_chat_template(self.rows):
            check_chat_template(tokenizer, self.config.model)
        self._set_attention(model, on_gpu)
        rows = curriculum_order(self.rows) if self.config.curriculum else self.rows
        args = self._trainer_args(on_gpu=on_gpu, bf16=bf16)
        peft_config = self._lora_config() if lora else None

        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        from codeloop.training.trainers import (BatchStatsCollator, MetricsJsonlCallback, QuietProgressCallback,
                                                ThroughputCallback, trim_metrics)

        throughput = ThroughputCallback()
        callbacks = [throughput, MetricsJsonlCallback(self.run_dir / "metrics.jsonl")]
        with _tensorboard_dir(self.run_dir / "tensorboard"):
            with peft_deprecations_quiet():  # TRL wraps the model with peft here
                trainer = self._build_trainer(model, tokenizer, rows, args, peft_config, callbacks, lora)
            if len(trainer.train_dataset) == 0:  # TRL drops examples whose prompt fills max_length
                raise UserError(f"none of the {len(rows)} records fits in max_length={self.config.max_length} "
                                "tokens (each prompt alone is that long); raise max_length", "max_length")
        throughput.trainer = trainer
        trainer.data_collator = BatchStatsCollator(trainer.data_collator, self.on_batch)
        snapshots = self._snapshot_plan(trainer, rows)
        if snapshots:
            from codeloop.training.trainers import StepSnapshotCallback

            trainer.add_callback(StepSnapshotCallback(
                {s["step"] for s in snapshots},
                lambda step: self._save_model(trainer, tokenizer, lora, self.run_dir / s_path(step))))
        # Per-step dicts go to metrics.jsonl, not the terminal: keep the bar, drop its log printing.
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        if os.environ.get("CODELOOP_QUIET") != "1":
            trainer.add_callback(QuietProgressCallback())

        resume = last_complete_checkpoint(self.ckpt_dir)
        resumed_step = 0
        if resume is not None:
            resumed_step = json.loads((resume / "trainer_state.json").read_text())["global_step"]
            if _is_main_process():
                trim_metrics(self.run_dir / "metrics.jsonl", resumed_step)
                console.print(f"resuming {self.kind} from {resume} (step {resumed_step})")
        elif _is_main_process() and (self.run_dir / "metrics.jsonl").exists():
            (self.run_dir / "metrics.jsonl").unlink()  # a run killed before its first checkpoint

        t0 = time.perf_counter()
        train_out = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        wall = time.perf_counter() - t0
        final = self._save_final(trainer, tokenizer, lora)
        metrics = _summarise(trainer.state.log_history, train_out.metrics)
        kept = [{**s, "path": s_path(s["step"])} for s in snapshots if (self.run_dir / s_path(s["step"])).is_dir()]
        if snapshots and trainer.is_world_process_zero():
            atomic_write_text(self.run_dir / f"{SNAPSHOT_DIRNAME}.json", json.dumps(kept, indent=2) + "\n")
        result = TrainResult(output_dir=final, run_dir=self.run_dir, adapter=lora, steps=trainer.state.global_step,
                             wall_time_s=round(wall, 3), metrics=metrics, resumed_from_step=resumed_step,
                             checkpoints=kept)
        if trainer.is_world_process_zero():
            summary = {"config_hash": self.config_hash, **self.identity, "bf16": bf16,
                       "device": "cuda" if on_gpu else "cpu", **result.to_dict()}
            atomic_write_text(self.run_dir / "train_summary.json", json.dumps(summary, indent=2) + "\n")
        return result

    # -----------------------------------------------------------------------------------------
    def _completed(self) -> TrainResult | None:
        path = self.run_dir / "train_summary.json"
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        if data.get("config_hash") != self.config_hash:
            raise UserError("this folder holds a finished run with a different configuration or data; "
                            "choose another --out or pass --overwrite", str(self.run_dir))
        if not (self.run_dir / FINAL_DIRNAME).is_dir():
            return None
        return TrainResult(output_dir=self.run_dir / FINAL_DIRNAME, run_dir=self.run_dir, adapter=data["adapter"],
                           steps=data["steps"], wall_time_s=data["wall_time_s"], metrics=data.get("metrics", {}),
                           resumed_from_step=data.get("resumed_from_step", 0), skipped=True,
                           checkpoints=data.get("checkpoints", []))

    def _snapshot_plan(self, trainer, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The steps at which to keep the model: where the pairs TRL kept, read in their `order`,
        finish a bucket (`checkpoint_buckets`; a shuffled run gets the step counts a curriculum run
        on the same pairs would have), plus `checkpoint_steps`; none past the run's last step."""
        c = self.config
        want_buckets, extra = getattr(c, "checkpoint_buckets", False), getattr(c, "checkpoint_steps", [])
        if not want_buckets and not extra:
            return []
        plan: dict[int, dict[str, Any]] = {}
        if want_buckets:
            kept = _kept_rows(rows, trainer.train_dataset)
            lacking = [i for i, r in enumerate(kept) if r.get("bucket") is None or r.get("order") is None]
            if lacking:
                raise UserError(f"checkpoint_buckets needs 'bucket' and 'order' on every pair ({len(lacking)} of "
                                f"{len(kept)} lack them): train on the curriculum step's pairs",
                                "checkpoint_buckets")
            ordered = sorted(kept, key=lambda r: r["order"])
            world = int(os.environ.get("WORLD_SIZE", "1"))
            for s in bucket_ends([r["bucket"] for r in ordered], c.per_device_batch_size, c.grad_accum, world):
                plan[s["step"]] = s
        for step in extra:
            plan.setdefault(int(step), {"step": int(step), "buckets": [], "pairs_seen": None})
        last = _planned_steps(trainer)
        return [plan[k] for k in sorted(plan) if k <= last]

    def _claim_run_dir(self) -> None:
        path = self.run_dir / "run_config.json"
        if path.exists():
            try:
                old = json.loads(path.read_text()).get("config_hash")
            except json.JSONDecodeError:
                old = None
            if old != self.config_hash and last_complete_checkpoint(self.ckpt_dir) is not None:
                raise UserError("this folder holds checkpoints of a run with a different configuration or data; "
                                "choose another --out or pass --overwrite", str(self.run_dir))
        if _is_main_process():
            atomic_write_text(path, json.dumps({"config_hash": self.config_hash, **self.identity}, indent=2) + "\n")

    def _load_model(self):
        from codeloop.models import load_model

        # fp32 master weights; bf16 runs as autocast (mixed precision) inside the trainer
        model, tokenizer = load_model(self.config.model, dtype="fp32", device="cpu", trainable=True)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.use_cache = False
        return model, tokenizer

    def _set_attention(self, model, on_gpu: bool) -> None:
        impl = self.config.attn_implementation
        if impl is None and on_gpu and self.config.packing == "isolated" and flash_attn_installed():
            impl = "flash_attention_2"
        if impl is None:
            return
        if impl in FLASH_IMPLEMENTATIONS and impl.startswith("flash_attention") and not flash_attn_installed():
            from codeloop.errors import MissingDependency

            raise MissingDependency("flash-attention varlen packing", "flash-attn", "flash")
        model.set_attn_implementation(impl)

    def _lora_config(self):
        from peft import LoraConfig

        c = self.config
        return LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                          target_modules=c.target_modules, task_type="CAUSAL_LM")

    def _common_args(self, on_gpu: bool, bf16: bool) -> dict[str, Any]:
        c = self.config
        report_to = report_targets(c.report_to)  # wandb & co were checked importable by validate()
        if "tensorboard" in report_to:
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                warn("tensorboard is not installed: metrics go to metrics.jsonl only")
                report_to.remove("tensorboard")
        gc = c.gradient_checkpointing if c.gradient_checkpointing is not None else on_gpu
        return dict(
            output_dir=str(self.ckpt_dir), per_device_train_batch_size=c.per_device_batch_size,
            gradient_accumulation_steps=c.grad_accum, learning_rate=c.learning_rate, num_train_epochs=c.epochs,
            max_steps=c.max_steps, bf16=bf16, use_cpu=not on_gpu, **{_checkpointing_arg(): gc},
            save_strategy="steps", save_steps=c.save_steps, save_total_limit=c.save_total_limit,
            logging_steps=c.logging_steps, seed=c.seed, data_seed=c.seed, report_to=report_to or "none",
            max_length=c.max_length, warmup_steps=c.warmup, lr_scheduler_type=c.lr_scheduler_type,
            dataloader_num_workers=c.dataloader_num_workers,
            train_sampling_strategy="sequential" if c.curriculum else "random",
            disable_tqdm=os.environ.get("CODELOOP_QUIET") == "1",
        )

    def _trainer_args(self, on_gpu: bool, bf16: bool):
        common = self._common_args(on_gpu, bf16)
        c = self.config
        if self.kind == "sft":
            from trl import SFTConfig

            trl_packing = c.packing == "trl-bfd"
            return SFTConfig(**common, completion_only_loss=c.completion_only_loss, packing=trl_packing,
                             packing_strategy="bfd", shuffle_dataset=False)
        from trl import DPOConfig

        loss = [c.loss_type] if isinstance(c.loss_type, str) else list(c.loss_type)
        return DPOConfig(**common, beta=c.beta, loss_type=loss,
                         precompute_ref_log_probs=c.precompute_ref_log_probs or self._pairs_have_ref())

    def _pairs_have_ref(self) -> bool:
        return bool(self.rows) and "ref_chosen_logps" in self.rows[0]

    def _build_trainer(self, model, tokenizer, rows, args, peft_config, callbacks, lora):
        from datasets import Dataset

        c = self.config
        if self.kind == "sft":
            from codeloop.training.trainers import CodeloopSFTTrainer

            if "messages" in rows[0]:  # assistant turns through the chat template, tokenized here
                dataset = Dataset.from_list([tokenize_messages(tokenizer, r["messages"]) for r in rows])
            elif "text" in rows[0]:  # language modelling on the whole text
                dataset = Dataset.from_list([{"text": r["text"]} for r in rows])
            else:
                dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
            collator = None
            if c.packing not in ("none", "trl-bfd"):
                collator = DynamicPackCollator(
                    pad_token_id=tokenizer.pad_token_id, mode=c.packing, max_length=c.max_length,
                    layout=c.pack_layout, attn_implementation=model.config._attn_implementation)
            return CodeloopSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                      data_collator=collator, peft_config=peft_config, callbacks=callbacks)
        from codeloop.training.trainers import CodeloopDPOTrainer

        keep = ["prompt", "chosen", "rejected"] + (["ref_chosen_logps", "ref_rejected_logps"]
                                                   if self._pairs_have_ref() else [])
        dataset = Dataset.from_list([{k: r[k] for k in keep} for r in rows])
        ref_model = None
        if not lora and not args.precompute_ref_log_probs:
            ref_model, _ = self._load_model()  # the frozen base
            ref_model.eval().requires_grad_(False)
        return CodeloopDPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=dataset,
                                  processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)

    def _save_final(self, trainer, tokenizer, lora: bool) -> Path:
        return self._save_model(trainer, tokenizer, lora, self.run_dir / FINAL_DIRNAME)

    def _save_model(self, trainer, tokenizer, lora: bool, final: Path) -> Path:
        """The model as it is now, with its tokenizer and MODEL_INFO, into `final` (atomically)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.tmp"
        if trainer.is_world_process_zero() and tmp.exists():
            shutil.rmtree(tmp)
        trainer.save_model(str(tmp))  # every rank takes part (ZeRO-3/FSDP gather)
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(str(tmp))
            info = {"base_model": self.config.model, "adapter": lora, "kind": self.kind,
                    "config_hash": self.config_hash}
            atomic_write_text(tmp / MODEL_INFO, json.dumps(info, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        trainer.accelerator.wait_for_everyone()
        return final


def s_path(step: int) -> str:
    """Where the model kept at `step` goes, relative to the run folder."""
    return f"{SNAPSHOT_DIRNAME}/step-{step}"


def _kept_rows(rows: list[dict[str, Any]], dataset: Any) -> list[dict[str, Any]]:
    """The rows TRL kept, in feeding order. TRL drops a pair whose prompt alone fills max_length and
    keeps the rest in order, prompt text unchanged (it appends EOS to the answers): rows with equal
    prompts share their fate, so matching prompts in one pass is exact."""
    if len(dataset) == len(rows):
        return rows
    kept, i = [], 0
    for prompt in dataset["prompt"]:
        while i < len(rows) and rows[i]["prompt"] != prompt:
            i += 1
        if i < len(rows):
            kept.append(rows[i])
            i += 1
    return kept


def _planned_steps(trainer: Any) -> int:
    """The optimizer steps the run will take, as transformers counts them (max_steps, else epochs
    times the update steps per epoch)."""
    import math

    args = trainer.args
    if args.max_steps and args.max_steps > 0:
        return int(args.max_steps)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    batches = math.ceil(len(trainer.train_dataset) / (args.per_device_train_batch_size * world))
    per_epoch = math.ceil(batches / args.gradient_accumulation_steps)
    return math.ceil(args.num_train_epochs * per_epoch)


def _checkpointing_arg() -> str:
    """transformers 5 renamed TrainingArguments.gradient_checkpointing (a deprecated alias that warns)
    to activation_checkpointing."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


@contextlib.contextmanager
def _tensorboard_dir(path: Path):
    """transformers' TensorBoard callback reads its folder from the environment at construction."""
    key = "TENSORBOARD_LOGGING_DIR"
    old = os.environ.get(key)
    os.environ.setdefault(key, str(path))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)


_SUMMARY_KEYS = ("loss", "grad_norm", "learning_rate", "mean_token_accuracy", "padding_ratio", "real_tokens_per_s",
                 "samples_per_s", "step_time_s", "rewards/chosen", "rewards/rejected", "rewards/margins",
                 "rewards/accuracies", "logps/chosen", "logps/rejected")


def _summarise(log_history: list[dict[str, Any]], train_metrics: dict[str, Any]) -> dict[str, Any]:
    """Last value and run mean of the main logged metrics, plus TRL's end-of-training figures."""
    out: dict[str, Any] = {}
    for key in _SUMMARY_KEYS:
        values = [row[key] for row in log_history if key in row and isinstance(row[key], (int, float))]
        if values:
            out[key] = values[-1]
            out[f"{key}_avg"] = sum(values) / len(values)
    if "loss" in out:
        first = next(row["loss"] for row in log_history if "loss" in row)
        out["first_loss"] = first
    for key in ("train_runtime", "train_loss", "train_samples_per_second", "train_steps_per_second"):
        if key in train_metrics:
            out[key] = train_metrics[key]
    return out


def _config_from_dict(cls: type, data: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
