"""Thin TRL subclasses and callbacks: batch statistics, metrics.jsonl, supplied reference log-probs.

TRL runs the training loop; these only add what codeloop logs (padding ratio, real tokens per
second, a JSONL copy of every log) and accept reference log-probs that came with the pairs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback
from trl import DPOTrainer, SFTTrainer

from codeloop.records import JsonlAppender
from codeloop.training.packing import STATS_KEY


class BatchStatsCollator:
    """Wrap a collator: report each batch's raw examples to `observer` and attach `packing_stats`
    (real tokens, all tokens, samples, rows) when the inner collator does not."""

    def __init__(self, inner: Callable, observer: Callable[[list[dict[str, Any]]], None] | None = None):
        self.inner = inner
        self.observer = observer

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if self.observer is not None:
            self.observer(examples)
        batch = self.inner(examples)
        if STATS_KEY not in batch:
            ids = batch["input_ids"]
            if "attention_mask" in batch and batch["attention_mask"].dim() == 2:
                real = int(batch["attention_mask"].sum())
            else:  # padding-free: one flattened row, every token real
                real = int(ids.numel())
            # TRL's packed rows carry the lengths of the samples inside them
            n_samples = sum(len(ex["seq_lengths"]) for ex in examples) if "seq_lengths" in examples[0] \
                else len(examples)
            batch[STATS_KEY] = torch.tensor([real, int(ids.numel()), n_samples, int(ids.shape[0])])
        return batch


class _StatsMixin:
    """Pops `packing_stats` before the forward pass and adds them to TRL's per-step metrics."""

    def _init_stats(self) -> None:
        self._pack_real = 0
        self._pack_total = 0
        self._pack_samples = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        stats = inputs.pop(STATS_KEY, None)
        if stats is not None and model.training:
            self._pack_real += int(stats[0])
            self._pack_total += int(stats[1])
            self._pack_samples += int(stats[2])
        inputs.setdefault("use_cache", False)  # a cache would switch off packed-sequence masking
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs.pop(STATS_KEY, None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)


class CodeloopSFTTrainer(_StatsMixin, SFTTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_stats()


class CodeloopDPOTrainer(_StatsMixin, DPOTrainer):
    def __init__(self, *args, **kwargs):
        self._init_stats()
        super().__init__(*args, **kwargs)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        # reference log-probs supplied with the pairs are used as they are
        if {"ref_chosen_logps", "ref_rejected_logps"} <= set(dataset.column_names):
            return dataset
        return super()._precompute_ref_logps(dataset, name, batch_size)


class QuietProgressCallback(ProgressCallback):
    """transformers' step progress bar without its per-step printing of the log dict."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102
        return None


class ThroughputCallback(TrainerCallback):
    """Per optimizer step: padding ratio and real (non-pad) tokens per second of wall time,
    data loading included (time between consecutive step ends)."""

    def __init__(self) -> None:
        self.trainer: Any = None
        self._last: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        t = self.trainer
        now = time.perf_counter()
        dt = now - (self._last or now)
        self._last = now
        if t is None or t._pack_total == 0:
            return
        metrics = t._metrics["train"]
        metrics["padding_ratio"].append((t._pack_total - t._pack_real) / t._pack_total)
        metrics["real_tokens"].append(float(t._pack_real))
        metrics["step_time_s"].append(dt)
        if dt > 0:
            metrics["real_tokens_per_s"].append(t._pack_real / dt)
            metrics["samples_per_s"].append(t._pack_samples / dt)
        t._pack_real = t._pack_total = t._pack_samples = 0


class StepSnapshotCallback(TrainerCallback):
    """Keep the model at chosen optimizer steps (the ends of curriculum buckets) in folders of its
    own: transformers' checkpoints rotate (save_total_limit) and carry optimizer state; these are
    what an evaluation loads, and stay."""

    def __init__(self, steps: set[int], save: Callable[[int], Any]):
        self.steps = set(steps)
        self.save = save

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            self.save(state.global_step)


class MetricsJsonlCallback(TrainerCallback):
    """Every log (loss, lr, DPO rewards, padding, throughput) as one line of OUT/metrics.jsonl."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._out: JsonlAppender | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if self._out is None:
            self._out = JsonlAppender(self.path)
        row = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3)}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str, bool)) or v is None})
        self._out.write(row)

    def on_train_end(self, args, state, control, **kwargs):
        if self._out is not None:
            self._out.close()
            self._out = None


def trim_metrics(path: Path, max_step: int) -> None:
    """Drop logged rows past `max_step` (written after the checkpoint a resumed run restarts from)."""
    from codeloop.records import atomic_write_text

    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if int(row.get("step", 0)) <= max_step:
            keep.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in keep))
