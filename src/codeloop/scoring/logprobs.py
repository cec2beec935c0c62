"""Log-probabilities of completions given prompts, perplexity and IFD.

Tokenization (the same as the hf sampler's, so a sample's log-prob and its later score agree):
the prompt is encoded with the tokenizer's special tokens and always starts with BOS when the
tokenizer has one; the completion is encoded on its own without special tokens (plus EOS when
``add_eos``), and the two id lists are concatenated. Every completion token is scored given
everything before it. With an empty prompt the context is BOS alone; a tokenizer without BOS
cannot score the first completion token, which is then left out (and not counted).

Batches: records are sorted by length and cut into batches of ``batch_size``, right-padded, so
each row's numbers equal a batch-size-1 run up to float rounding. Logits are never materialised
for the whole batch: the decoder's hidden states at the scored positions go through the LM head
in chunks, which keeps memory flat with a 262k vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from codeloop.console import progress_bar
from codeloop.models import encode_continuation, encode_prompt

# Rows of hidden states sent through the LM head at once (x vocab floats each).
HEAD_CHUNK = 512
IFD_TEMPLATE = "Question:\n{q}\n\nAnswer:\n"


@dataclass
class TokenScores:
    """Scores of one completion given its prompt."""

    logprob: float  # summed log-prob of the scored completion tokens (nats)
    n_tokens: int
    token_logprobs: list[float] = field(default_factory=list, repr=False)

    @property
    def mean_nll(self) -> float:
        return -self.logprob / self.n_tokens if self.n_tokens else float("nan")

    @property
    def ppl(self) -> float:
        return math.exp(self.mean_nll) if self.n_tokens else float("nan")


@dataclass
class IFDScore:
    """Instruction-Following Difficulty of one (instruction, answer) pair."""

    ppl_conditional: float  # PPL(answer | template(instruction))
    ppl_unconditional: float  # PPL(answer | BOS)
    n_tokens: int

    @property
    def ifd(self) -> float:
        if not self.ppl_unconditional or math.isnan(self.ppl_unconditional):
            return float("nan")
        return self.ppl_conditional / self.ppl_unconditional


def _split_model(model: Any):
    """(decoder, lm_head, softcap) so hidden states can go through the head in chunks.

    Works for PEFT-wrapped models too (LoRA layers live inside the base model's modules).
    Returns None when the model does not expose them; then full logits are used.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        decoder = base.get_decoder()
        head = base.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or head is None or decoder is base:
        return None
    softcap = getattr(getattr(base, "config", None), "final_logit_softcapping", None)
    return decoder, head, softcap


def _score_batch(model: Any, parts: Any, rows: list[tuple[list[int], int]], pad_id: int) -> list[list[float]]:
    """Token log-probs of the last `n_scored` tokens of each row (ids, n_scored)."""
    import torch

    dev = next(model.parameters()).device
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=dev)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=dev)
    for b, (r, _) in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r, device=dev)
        mask[b, :len(r)] = 1
    # Position t predicts token t+1: gather the positions that predict scored tokens.
    b_idx, t_idx, targets = [], [], []
    for b, (r, n_scored) in enumerate(rows):
        for t in range(len(r) - n_scored, len(r)):
            b_idx.append(b)
            t_idx.append(t - 1)
            targets.append(r[t])
    if not targets:
        return [[] for _ in rows]
    b_t = torch.tensor(b_idx, device=dev)
    t_t = torch.tensor(t_idx, device=dev)
    tgt = torch.tensor(targets, device=dev)
    if parts is not None:
        decoder, head, softcap = parts
        hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        picked = hidden[b_t, t_t]
        out = []
        for s in range(0, picked.shape[0], HEAD_CHUNK):
            logits = head(picked[s:s + HEAD_CHUNK]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            out.append(logits.gather(-1, tgt[s:s + HEAD_CHUNK, None]).squeeze(-1) - torch.logsumexp(logits, -1))
        flat = torch.cat(out)
    else:
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        picked = logits[b_t, t_t].float()
        flat = picked.gather(-1, tgt[:, None]).squeeze(-1) - torch.logsumexp(picked, -1)
    flat_l = flat.tolist()
    res: list[list[float]] = [[] for _ in rows]
    for b, v in zip(b_idx, flat_l):
        res[b].append(v)
    return res


def _encode_pair(tokenizer: Any, prompt: str, completion: str, add_eos: bool,
                 max_length: int | None) -> tuple[list[int], int]:
    p = encode_prompt(tokenizer, prompt)
    c = encode_continuation(tokenizer, completion)
    if add_eos and tokenizer.eos_token_id is not None:
        c = c + [tokenizer.eos_token_id]
    if max_length is not None and len(p) + len(c) > max_length:
        # Keep the completion whole when possible: cut the prompt's oldest tokens (after BOS).
        room = max_length - len(c)
        keep_bos = 1 if p and p[0] == getattr(tokenizer, "bos_token_id", None) else 0
        if room > keep_bos:
            p = p[:keep_bos] + p[len(p) - (room - keep_bos):]
        else:
            p = p[:keep_bos] if keep_bos else p[:1]
            c = c[:max(1, max_length - len(p))]
    if not p:  # no BOS and no prompt: the first completion token has no context
        return c, max(len(c) - 1, 0)
    return p + c, len(c)


def completion_logprobs(model: Any, tokenizer: Any, prompts: Sequence[str], completions: Sequence[str],
                        batch_size: int = 8, add_eos: bool = False, max_length: int | None = None,
                        description: str = "scoring") -> list[TokenScores]:
    """Scores of each completion given its prompt (see module doc for tokenization)."""
    import torch

    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    encoded = [_encode_pair(tokenizer, p, c, add_eos, max_length) for p, c in zip(prompts, completions)]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    parts = _split_model(model)
    out: list[TokenScores | None] = [None] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), progress_bar(description, len(encoded)) as advance:
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                token_lps = _score_batch(model, parts, [encoded[i] for i in idx], pad_id)
                for i, lps in zip(idx, token_lps):
                    out[i] = TokenScores(logprob=float(sum(lps)), n_tokens=len(lps), token_logprobs=lps)
                advance(len(idx))
    finally:
        if was_training:
            model.train()
    return out  # type: ignore[return-value]


def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], prompts: Sequence[str] | None = None,
               batch_size: int = 8, add_eos: bool = False, max_length: int | None = None) -> list[float]:
    """exp(mean NLL) of each text, given its prompt (or BOS alone)."""
    prompts = list(prompts) if prompts is not None else [""] * len(texts)
    return [s.ppl for s in completion_logprobs(model, tokenizer, prompts, texts, batch_size, add_eos, max_length)]


def ifd_scores(model: Any, tokenizer: Any, instructions: Sequence[str], answers: Sequence[str],
               template: str = IFD_TEMPLATE, batch_size: int = 8,
               max_length: int | None = None) -> list[IFDScore]:
    """IFD = PPL(answer | template.format(q=instruction)) / PPL(answer | BOS).

    Both perplexities are over the same answer tokens (see the module doc); a ratio near or
    above 1 means the instruction does not help predict the answer. Both passes go into one
    length-sorted batch queue.
    """
    if "{q}" not in template:
        raise ValueError("the IFD template must contain {q}")
    n = len(instructions)
    if n != len(answers):
        raise ValueError(f"{n} instructions but {len(answers)} answers")
    prompts = [template.format(q=q) for q in instructions] + [""] * n
    scores = completion_logprobs(model, tokenizer, prompts, list(answers) * 2, batch_size=batch_size,
                                 max_length=max_length, description="IFD scoring")
    return [IFDScore(ppl_conditional=scores[i].ppl, ppl_unconditional=scores[n + i].ppl,
                     n_tokens=scores[i].n_tokens) for i in range(n)]
