"""Generation settings shared by every backend, and the per-sample text result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from codeloop.errors import UserError

PROMPT_FORMATS = ("completion", "instruction")
CHAT_MODES = ("auto", "chat", "plain")


@dataclass
class GenerationParams:
    """How to sample. ``temperature == 0`` means greedy; ``top_k == 0`` / ``top_p == 1`` switch those off.

    `stop`: extra stop strings on top of the defaults for the problem kind (see prompts.py) when
    `default_stops` is true. `batch_size`: rows (prompt x sample) decoded together by the hf backend;
    requests in flight for the openai backend.
    """

    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 384
    stop: list[str] = field(default_factory=list)
    default_stops: bool = True
    seed: int = 0
    batch_size: int = 8
    prompt_format: str = "completion"  # completion | instruction
    chat: str = "auto"  # instruction format: auto (chat template if the tokenizer has one) | chat | plain
    plain_template: str = "### Instruction:\n{instruction}\n\n### Response:\n"
    system_prompt: str = ""
    response_prefix: str = "```python\n"  # instruction format: text the answer starts with
    stop_at_code_end: bool = True  # instruction format: stop once the fenced code block closes

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(field_name: str, msg: str) -> UserError:
            return UserError(msg, "-n" if field_name == "n" else f"--{field_name.replace('_', '-')}")

        if self.n < 1:
            raise bad("n", f"must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise bad("temperature", f"must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise bad("top_p", f"must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise bad("top_k", f"must be >= 0 (0 = off), got {self.top_k}")
        if self.max_new_tokens < 1:
            raise bad("max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise bad("batch_size", f"must be >= 1, got {self.batch_size}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise bad("prompt_format", f"must be one of {', '.join(PROMPT_FORMATS)}, got {self.prompt_format!r}")
        if self.chat not in CHAT_MODES:
            raise bad("chat", f"must be one of {', '.join(CHAT_MODES)}, got {self.chat!r}")
        if "{instruction}" not in self.plain_template:
            raise bad("plain_template", "must contain {instruction}")
        if any(not s for s in self.stop):
            raise bad("stop", "stop strings must not be empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def replace(self, **changes: Any) -> "GenerationParams":
        return dataclasses.replace(self, **changes)

    def record(self) -> dict[str, Any]:
        """What goes into Sample.params (the settings that shape a sample)."""
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed,
                "prompt_format": self.prompt_format, "n": self.n}


@dataclass
class TextSample:
    """One generated continuation of one prompt."""

    text: str  # after stop trimming
    logprob: float | None = None  # summed log-prob (temperature 1 model distribution) of the kept tokens
    n_tokens: int = 0  # tokens kept (a stop string's tokens are not counted)
    finish_reason: str = "length"  # stop | eos | length
    token_ids: list[int] | None = None
