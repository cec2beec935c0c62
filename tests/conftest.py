"""Shared fixtures. Tiny random models are built in-process: nothing comes from a model hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CODELOOP_QUIET", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n):\n    \"\"\"Return True if n is even.\"\"\"\n    return n % 2 == 0\n",
    "for i in range(10):\n    print(i)\n",
    "import sys\nx = int(sys.stdin.readline())\nprint(x * 2)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "Question:\nWrite a function.\n\nAnswer:\n```python\nreturn [x for x in xs if x > 0]\n```\n",
    "assert candidate([1, 2, 3]) == 6\nwhile True:\n    break\n",
]


def build_tiny_model(path: Path, seed: int = 0, vocab_size: int = 384, arch: str = "llama") -> Path:
    """Write a tiny random causal LM + byte-level BPE tokenizer to `path` (HF format)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}assistant: {% endif %}")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama-style causal LM with its tokenizer, saved in HF format."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (MBPP copies); tests that need it skip cleanly when it is absent."""
    if not (SHARED_DATA / "mbpp.jsonl").exists():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA
