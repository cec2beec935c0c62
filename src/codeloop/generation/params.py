"""Generation settings shared by every backend, and the per-sample text result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from codeloop.errors import UserError
from codeloop.steps import option

PROMPT_FORMATS = ("completion", "instruction")
CHAT_MODES = ("auto", "chat", "plain")


@dataclass
class GenerationParams:
    """How to sample. ``temperature == 0`` means greedy; ``top_k == 0`` / ``top_p == 1`` switch those off.

    `stop`: extra stop strings on top of the defaults for the problem kind (see prompts.py) when
    `default_stops` is true. `batch_size`: rows (prompt x sample) decoded together by the hf backend;
    requests in flight for the openai backend.
    """

    n: int = option(1, flags=("-n",), min=1, help="Samples per problem.")
    temperature: float = option(0.8, flags=("-t",), min=0, help="Sampling temperature; 0 = greedy.")
    top_p: float = option(0.95, gt=0, help="Nucleus sampling mass (1 = off).")
    top_k: int = option(0, min=0, help="Sample among the k most likely tokens only (0 = off).")
    max_new_tokens: int = option(384, min=1, help="Tokens per sample at most.")
    stop: list[str] = option(default_factory=list, comma=False,
                             help="Extra stop strings, on top of the defaults for the problem kind (repeat the "
                                  "flag for several).")
    default_stops: bool = option(True, help="Stop where a completion-style program ends (a new top-level def, "
                                            "class, if, print...), as HumanEval's harness does.")
    seed: int = option(0, help="Sampling seed.")
    batch_size: int = option(8, min=1, help="Rows (prompt x sample) decoded together by the hf backend; "
                                            "requests in flight for the openai backend.")
    prompt_format: str = option("completion", choices=PROMPT_FORMATS,
                                help="completion: the model continues the problem's code prompt; instruction: "
                                     "it is asked in words and answers with a code block.")
    chat: str = option("auto", choices=CHAT_MODES,
                       help="Instruction prompts: auto (the tokenizer's chat template if it has one), chat, or "
                            "plain (plain_template).")
    plain_template: str = option("### Instruction:\n{instruction}\n\n### Response:\n",
                                 help="Instruction prompts without a chat template: the text around the task "
                                      "({instruction}).")
    system_prompt: str = option("", help="Instruction prompts: a system message (empty: none).")
    response_prefix: str = option("```python\n", help="Instruction prompts: text the answer starts with.")
    stop_at_code_end: bool = option(True, help="Instruction prompts: stop once the fenced code block closes.")

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
