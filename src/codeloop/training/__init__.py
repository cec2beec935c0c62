"""Fine-tuning on TRL: SFT and DPO runs, Dynamic Pack collator, curriculum order.

Light to import: torch/transformers/TRL load only when a run starts (or a heavy name is used).
"""

from __future__ import annotations

from codeloop.training.config import DPORunConfig, SFTRunConfig, TrainResult
from codeloop.training.data import curriculum_order, load_dpo_pairs, load_sft_records
from codeloop.training.packing import PACKING_MODES, DynamicPackCollator, plan_rows
from codeloop.training.run import FINAL_DIRNAME, last_complete_checkpoint, train_dpo, train_sft

__all__ = ["SFTRunConfig", "DPORunConfig", "TrainResult", "train_sft", "train_dpo", "DynamicPackCollator",
           "PACKING_MODES", "plan_rows", "curriculum_order", "load_sft_records",
           "load_dpo_pairs", "last_complete_checkpoint", "FINAL_DIRNAME"]
