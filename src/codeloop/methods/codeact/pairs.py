"""The (instruction, response) pair CDAS embeds and scores: the pair training learns.

IFD only says something about a record's worth for training when it is computed on what training
will see. So the texts do not come from CDAS's own reading of the record: every record goes through
the SFT formatter (`codeloop.training.data.load_sft_records`, the function `train sft` and the
`train_sft*` steps feed TRL from), and the pair is read off the row it returns. A change to which
fields training reads, or how, therefore changes what CDAS scores with it.

- prompt/completion strings (``instruction``/``response`` are the formatter's aliases, ``prompt``
  wins when both are there): training tokenizes the prompt as it is, so the instruction is the
  prompt string and the response the completion string.
- conversations (``messages``, or TRL's conversational prompt/completion): training renders them with
  the tokenizer's chat template, so the instruction is the rendered prompt with the generation prompt
  and the response what the template adds after it for the assistant turn, as tokenize_messages
  and TRL mask it. One assistant turn, at the end: CDAS scores one pair per record.
- text records have no instruction to condition on: CDAS refuses them (random selection takes them).

The clustering embeds the instruction before any chat template (the official get_embedding.py
embeds the raw question): the prompt string, or the user turns' contents of a conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from codeloop.errors import UserError
from codeloop.training.data import SFT_ALIASES, load_sft_records, sft_kind

# The IFD prompt around the instruction. "{q}": the trained prompt as it is, so PPL(answer | prompt)
# is taken under exactly the context training conditions on.
TRAINED_TEMPLATE = "{q}"


@dataclass(frozen=True)
class TrainedPair:
    instruction: str  # the text the model is given in training (chat-rendered for conversations)
    response: str  # the text it learns to produce (the loss-bearing part)
    query: str  # what the clustering embeds: the instruction before any chat template


def sft_rows(numbered: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The SFT formatter's rows for `numbered` (where, record) pairs; its mistakes name the record's
    own place (``file.jsonl:LINE``) rather than the formatter's ``record N``."""
    try:
        return load_sft_records([rec for _, rec in numbered])
    except UserError as exc:
        where = exc.where or ""
        m = re.match(r"record (\d+)(.*)", where, re.S)
        if m and int(m.group(1)) < len(numbered):
            where = numbered[int(m.group(1))][0] + m.group(2)
        hint = ("; or name the fields to score with --instruction-field/--response-field"
                if "missing required field" in exc.message else "")
        raise UserError(exc.message + hint, where or None) from None


def formatter_fields(record: dict[str, Any]) -> tuple[str, str]:
    """The names of the fields the formatter reads the pair from (for the stats and the trl format)."""
    if record.get("messages") is not None:
        return "messages", "messages"
    if not any(record.get(k) is not None for k in SFT_ALIASES["prompt"]) and record.get("text") is not None:
        return "text", "text"
    pick = [next((k for k in SFT_ALIASES[part] if record.get(k) is not None), SFT_ALIASES[part][0])
            for part in ("prompt", "completion")]
    return pick[0], pick[1]


def trained_pair(row: dict[str, Any], tokenizer: Any = None, where: str = "") -> TrainedPair:
    """The pair training learns from one formatter row (see the module doc)."""
    kind = sft_kind(row)
    if kind == "prompt-completion":
        return TrainedPair(row["prompt"], row["completion"], row["prompt"])
    if kind == "text":
        raise UserError("a text record has no instruction: CDAS and ifd-only score instruction -> response "
                        "pairs (random selection takes text records)", where or None)
    if kind == "messages":
        msgs = row["messages"]
        assistant = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
        if len(assistant) != 1 or assistant[0] != len(msgs) - 1:
            raise UserError(f"a conversation with {len(assistant)} assistant turn(s) (training learns every one): "
                            "CDAS scores one instruction -> response pair, give one assistant turn at the end",
                            where or None)
        prompt, completion = msgs[:-1], msgs[-1:]
    else:  # TRL's conversational prompt-completion
        prompt, completion = row["prompt"], row["completion"]
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise UserError("the records are conversations: their trained text is the chat template's rendering, "
                        "and the model's tokenizer has no chat template", where or None)
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    if not full.startswith(prompt_text):
        raise UserError("the chat template renders the prompt differently on its own than inside the whole "
                        "conversation: no text boundary between instruction and response to score",
                        where or None)
    response = full[len(prompt_text):]
    # the scorer adds BOS when it encodes the prompt; a template that writes it too would double it
    bos = getattr(tokenizer, "bos_token", None)
    if bos and prompt_text.startswith(bos):
        prompt_text = prompt_text[len(bos):]
    query = "\n\n".join(m["content"] for m in prompt if m["role"] == "user") or prompt_text
    return TrainedPair(prompt_text, response, query)
