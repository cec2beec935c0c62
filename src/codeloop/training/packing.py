"""Batch layouts for causal-LM training: padding baselines and Dynamic Pack (CodeACT).

Every mode receives the same samples per step (one micro-batch from the dataloader) and only
changes how they are laid out in rows:

- ``pad-to-max``: one row per sample, padded to ``max_length``.
- ``pad-to-longest``: one row per sample, padded to the longest sample of the batch.
- ``codeact``: Dynamic Pack as in the CodeACT paper: samples sorted by length and concatenated
  into rows of at most ``max_length``; a row is one causal sequence, so packed samples attend to
  the samples before them in the row (the paper's exact behaviour).
- ``isolated``: the same rows, but positions restart at 0 for every sample and attention cannot
  cross sample boundaries. With SDPA/eager attention transformers turns the restarting
  ``position_ids`` into a block-diagonal causal mask; with flash-attention the whole batch becomes
  one padding-free row and the kernel runs variable-length (``cu_seq_lens``).

Row layout (``layout``): ``next-fit`` is the paper's greedy fill of the length-sorted samples;
``balanced`` uses the fewest rows that fit and fills them longest-first into the emptiest row,
so rows come out near-equal and the batch (padded to its longest row) is padded far less.

Each batch carries ``packing_stats`` (real tokens, all tokens, samples, rows); the trainer pops it
before the forward pass and logs the padding ratio and real tokens per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

PACKING_MODES = ("none", "pad-to-max", "pad-to-longest", "codeact", "isolated")
PACKED_MODES = ("codeact", "isolated")
LAYOUTS = ("balanced", "next-fit")
STATS_KEY = "packing_stats"
IGNORE_INDEX = -100
FLASH_IMPLEMENTATIONS = ("flash_attention_2", "flash_attention_3", "kernels-community/flash-attn")


def _next_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Split indices 0..n-1 (already in packing order) into contiguous runs of total <= capacity."""
    rows: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if current and used + n > capacity:
            rows.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        rows.append(current)
    return rows


def plan_rows(lengths: Sequence[int], max_length: int, layout: str = "balanced") -> list[list[int]]:
    """Group sample indices into packed rows (indices refer to `lengths`), each row's total
    length at most ``max_length`` (longer samples must have been truncated before).

    ``next-fit`` (CodeACT): sort ascending, fill rows greedily in that order. ``balanced``: the
    fewest rows that fit, filled longest-first into the emptiest row, so rows come out
    near-equal and the batch (padded to its longest row) wastes little; within a row samples stay
    in ascending order. It never pads more than next-fit: the smaller layout of the two is kept.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    greedy = [[order[i] for i in row] for row in _next_fit([lengths[i] for i in order], max_length)]
    if layout == "next-fit" or len(greedy) <= 1:
        return greedy
    balanced = _balanced(lengths, max_length, len(greedy))
    if balanced is None or _area(lengths, balanced) >= _area(lengths, greedy):
        return greedy
    return balanced


def _area(lengths: Sequence[int], rows: list[list[int]]) -> int:
    return len(rows) * max(sum(lengths[i] for i in row) for row in rows)


def _balanced(lengths: Sequence[int], max_length: int, max_rows: int) -> list[list[int]] | None:
    """Longest-first into the emptiest row that still fits, with the fewest rows that work."""
    total = sum(lengths)
    descending = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for n_rows in range(max(1, -(-total // max_length)), max_rows + 1):
        rows: list[list[int]] = [[] for _ in range(n_rows)]
        used = [0] * n_rows
        for i in descending:
            fits = [r for r in range(n_rows) if used[r] + lengths[i] <= max_length]
            if not fits:
                break
            r = min(fits, key=lambda r: used[r])
            rows[r].append(i)
            used[r] += lengths[i]
        else:
            return [sorted(row, key=lambda i: lengths[i]) for row in rows if row]
    return None


def _round_up(n: int, multiple: int | None) -> int:
    if not multiple:
        return n
    return -(-n // multiple) * multiple


@dataclass
class DynamicPackCollator:
    """Collate tokenized samples (``input_ids`` and optional ``labels``) in one of `PACKING_MODES`.

    `attn_implementation` decides how `isolated` rows keep samples apart: flash-attention kernels
    get one flattened row with ``cu_seq_lens``; everything else gets ``position_ids`` that restart
    per sample (transformers builds the block-diagonal mask from them).
    """

    pad_token_id: int
    mode: str = "isolated"
    max_length: int = 1024
    layout: str = "balanced"
    attn_implementation: str | None = "sdpa"
    pad_to_multiple_of: int | None = None
    return_stats: bool = True

    def __post_init__(self) -> None:
        if self.mode not in PACKING_MODES or self.mode == "none":
            raise ValueError(f"mode must be one of {PACKING_MODES[1:]}, got {self.mode!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")

    @property
    def varlen(self) -> bool:
        return self.mode == "isolated" and (self.attn_implementation or "") in FLASH_IMPLEMENTATIONS

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids = [list(ex["input_ids"])[: self.max_length] for ex in examples]
        labels = [list(ex.get("labels", ex["input_ids"]))[: self.max_length] for ex in examples]
        lengths = [len(x) for x in ids]
        real = sum(lengths)

        if self.mode in ("pad-to-max", "pad-to-longest"):
            width = self.max_length if self.mode == "pad-to-max" else _round_up(max(lengths), self.pad_to_multiple_of)
            width = max(width, max(lengths))
            out = {
                "input_ids": torch.tensor([x + [self.pad_token_id] * (width - len(x)) for x in ids]),
                "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
                "labels": torch.tensor([y + [IGNORE_INDEX] * (width - len(y)) for y in labels]),
            }
            n_rows = len(ids)
        elif self.varlen:
            out = self._varlen(ids, labels, torch)
            n_rows = 1
        else:
            rows = plan_rows(lengths, self.max_length, self.layout)
            out = self._packed_rows(rows, ids, labels, torch)
            n_rows = len(rows)

        if self.return_stats:
            total = int(out["input_ids"].numel())
            out[STATS_KEY] = torch.tensor([real, total, len(ids), n_rows], dtype=torch.long)
        return out

    def _packed_rows(self, rows, ids, labels, torch) -> dict[str, Any]:
        isolated = self.mode == "isolated"
        row_ids, row_labels, row_pos = [], [], []
        for row in rows:
            r_ids, r_lab, r_pos = [], [], []
            for i in row:
                seg_labels = list(labels[i])
                if isolated and seg_labels:
                    # the first token of a sample would be predicted from the previous sample's last
                    # token; alone it is never a target, so it is not one here either
                    seg_labels[0] = IGNORE_INDEX
                r_ids += ids[i]
                r_lab += seg_labels
                r_pos += list(range(len(ids[i])))
            row_ids.append(r_ids)
            row_labels.append(r_lab)
            row_pos.append(r_pos)
        width = _round_up(max(len(r) for r in row_ids), self.pad_to_multiple_of)
        out = {
            "input_ids": torch.tensor([r + [self.pad_token_id] * (width - len(r)) for r in row_ids]),
            "labels": torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in row_labels]),
        }
        if isolated:
            # padding forms its own segment (positions from 0), so no real token attends to it
            out["position_ids"] = torch.tensor([r + list(range(width - len(r))) for r in row_pos])
        else:
            out["attention_mask"] = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in row_ids])
        return out

    def _varlen(self, ids, labels, torch) -> dict[str, Any]:
        flat_ids, flat_labels, flat_pos, bounds = [], [], [], [0]
        for x, y in zip(ids, labels):
            seg_labels = list(y)
            if seg_labels:
                seg_labels[0] = IGNORE_INDEX
            flat_ids += x
            flat_labels += seg_labels
            flat_pos += list(range(len(x)))
            bounds.append(bounds[-1] + len(x))
        cu = torch.tensor(bounds, dtype=torch.int32)
        longest = int(max(len(x) for x in ids))
        return {
            "input_ids": torch.tensor([flat_ids]),
            "labels": torch.tensor([flat_labels]),
            "position_ids": torch.tensor([flat_pos]),
            "cu_seq_lens_q": cu,
            "cu_seq_lens_k": cu,
            "max_length_q": longest,
            "max_length_k": longest,
        }


def padding_ratio(stats) -> float:
    """pad tokens / all tokens for one `packing_stats` tensor (or a summed one)."""
    real, total = int(stats[0]), int(stats[1])
    return 0.0 if total == 0 else (total - real) / total
