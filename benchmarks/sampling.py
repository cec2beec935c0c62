"""Sampling throughput of the `hf` backend against a naive per-sample `model.generate` loop.

Same model (the default, Gemma 3 270M, in the dtype `load_model` picks), same HumanEval prompts.

  baseline   for each prompt, for each sample: model.generate(do_sample=True) with transformers'
             default sampling (its generation config: top-k 50, temperature 1), batch size 1
  hf-same    codeloop's hf backend, same distribution (temperature 1, top-k 50), no stops
  hf-top-p   hf backend, temperature 0.8, top-p 0.95 (no top-k: the growing partial selection)
  hf-stops   hf-top-p with the HumanEval stop strings (what `codeloop sample` does)

tokens/s = generated tokens (EOS excluded) / wall time. Every mode runs in this process, one after
the other. On a machine shared with other work, wall time swings with the neighbours' load, so
tokens per CPU-second of this process (``time.process_time``, all threads) is printed too: the
work each mode needs, independent of how much CPU it was given.

Run:  .venv/bin/python benchmarks/sampling.py [--prompts 4] [--n 2] [--max-new-tokens 64]
Speed depends on the machine and its load (the dev machine is shared): compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CODELOOP_QUIET", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    import torch

    from codeloop.generation import GenerationParams, HFGenerator, generate
    from codeloop.models import encode_prompt, load_model
    from codeloop.problems import load_problems

    t0 = time.perf_counter()
    model, tok = load_model(args.model, dtype=args.dtype)
    print(f"model {args.model}: {type(model).__name__} {next(model.parameters()).dtype}, "
          f"loaded in {time.perf_counter() - t0:.1f}s; torch threads {torch.get_num_threads()}")
    problems = load_problems("humaneval", limit=args.prompts)
    gen = HFGenerator(model, tok, name=args.model)
    rows = []
    print(f"{args.prompts} HumanEval prompts x {args.n} samples, max {args.max_new_tokens} new tokens, "
          f"batch {args.batch_size}")
    print(f"{'mode':30s} {'tokens':>6s} {'wall s':>7s} {'tok/s':>6s} {'ratio':>7s} "
          f"{'cpu s':>7s} {'tok/cpu-s':>7s} {'ratio':>7s}", flush=True)

    # Baseline: one model.generate call per sample, transformers' default sampling.
    torch.manual_seed(0)
    tokens, start, cpu = 0, time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for p in problems:
            ids = torch.tensor([encode_prompt(tok, p.prompt)])
            for _ in range(args.n):
                out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                     max_new_tokens=args.max_new_tokens, pad_token_id=tok.pad_token_id)
                new = out[0, ids.shape[1]:].tolist()
                tokens += sum(1 for t in new if t not in gen.eos_ids and t != tok.pad_token_id)
    rows.append(("baseline (generate, bs 1)", tokens, time.perf_counter() - start, time.process_time() - cpu))
    report(rows[-1], rows[0])

    modes = [
        ("hf-same (T=1, top-k 50)", dict(temperature=1.0, top_k=50, top_p=1.0, default_stops=False)),
        ("hf-top-p (T=0.8, top-p .95)", dict(temperature=0.8, top_k=0, top_p=0.95, default_stops=False)),
        ("hf-stops (+HumanEval stops)", dict(temperature=0.8, top_k=0, top_p=0.95, default_stops=True)),
    ]
    for name, kw in modes:
        params = GenerationParams(n=args.n, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                  seed=0, **kw)
        start, cpu = time.perf_counter(), time.process_time()
        samples = generate(problems, params, generator=gen)
        rows.append((name, sum(s.n_tokens or 0 for s in samples), time.perf_counter() - start,
                     time.process_time() - cpu))
        report(rows[-1], rows[0])


def report(row, base) -> None:
    name, n_tok, secs, cpu = row
    rate, cpu_rate = n_tok / secs, n_tok / cpu
    print(f"{name:30s} {n_tok:6d} {secs:7.1f} {rate:6.1f} {rate / (base[1] / base[2]):6.2f}x "
          f"{cpu:7.1f} {cpu_rate:7.1f} {cpu_rate / (base[1] / base[3]):6.2f}x", flush=True)


if __name__ == "__main__":
    main()
