"""Cost of drawing the next token from a full softmax (temperature > 0, no top-k / top-p).

This is GiFT's code sampling setting (T = 1.0 over Gemma's 262,144-token vocabulary): every
decode step draws one token per row from the whole distribution.

  baseline   torch.multinomial(probs, 1)            (what transformers' sampling calls)
  codeloop   generation.sampling._draw: cumulative sum + binary search (inverse CDF)

Both take the same softmax; the softmax itself is timed apart. The check column compares the
two draws' token shares over many rows of one small distribution (max absolute difference).

Run:  .venv/bin/python benchmarks/draw.py [--vocab 262144] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time


def _ms(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=262_144)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    import torch

    from codeloop.generation.sampling import _draw

    print(f"vocabulary {args.vocab}, torch threads {torch.get_num_threads()}, mean of {args.repeats} draws")
    print(f"{'rows':>4s} {'softmax ms':>10s} {'multinomial ms':>14s} {'codeloop ms':>11s} {'speed-up':>8s}")
    gen = torch.Generator().manual_seed(0)
    for rows in (1, 8, 16, 32):
        logits = torch.randn(rows, args.vocab, generator=gen) * 3
        soft = _ms(lambda: torch.softmax(logits, -1), args.repeats)
        probs = torch.softmax(logits, -1)
        base = _ms(lambda: torch.multinomial(probs, 1, generator=gen), args.repeats)
        ours = _ms(lambda: _draw(probs, gen), args.repeats)
        print(f"{rows:4d} {soft:10.2f} {base:14.2f} {ours:11.2f} {base / ours:7.1f}x")

    small = torch.softmax(torch.randn(1, 50, generator=gen), -1).expand(200_000, -1)
    a = torch.bincount(torch.multinomial(small, 1, generator=gen).squeeze(-1), minlength=50) / 200_000
    b = torch.bincount(_draw(small, gen), minlength=50) / 200_000
    print(f"check: token shares over 200k draws, max |multinomial - codeloop| = {float((a - b).abs().max()):.4f}")


if __name__ == "__main__":
    main()
