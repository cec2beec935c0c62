"""Sampling throughput of the `hf` backend: codeloop's own KV-cache loop against batched `model.generate`.

Same model, same prompts (HumanEval by default, any benchmark with --benchmark), same batch size, in one process, one mode after the other:

  own      HFGenerator(loop="own"), the default: codeloop's decode loop (each distinct prompt prefilled once,
           finished rows leave the batch)
  generate HFGenerator(loop="generate"): batched, left-padded ``model.generate`` with
           codeloop's token chooser (logits processor) and stop strings (stopping criterion)

for each sampling setting:

  greedy     temperature 0, no stops
  top-p      temperature 0.8, top-p 0.95, no stops
  stops      top-p with the HumanEval stop strings (what `codeloop sample` does)

tokens/s = kept tokens (EOS excluded, stop-trimmed) / wall time; tokens per CPU-second of this
process (``time.process_time``, all threads) too: the work each mode needs, independent of how
much CPU a shared machine gave it. The ratio column is generate / own for the same setting.

Check: in fp32 (``--dtype fp32``, the default here) greedy outputs of the two loops must be
token-identical; the script says so, or lists the rows that differ, and exits 1 when they do.

Run:  .venv/bin/python benchmarks/sampling.py [--model default] [--prompts 8] [--n 4] \\
          [--max-new-tokens 128] [--batch-size 16] [--dtype fp32] [--repeats 1] \\
          [--benchmark humaneval] [--split S] [--offset 0] [--prompt-format completion]
The README's figure (answers of varying length, where finished rows leaving the batch pays):
      benchmarks/sampling.py --model coder --benchmark mbpp --split test --offset 100 --prompts 64 \\
          --batch-size 32 --max-new-tokens 384 --prompt-format instruction --settings greedy
Compare ratios within one run; run it alone on the machine for wall-time figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CODELOOP_QUIET", "1")

SETTINGS = {
    "greedy": dict(temperature=0.0, top_k=0, top_p=1.0, default_stops=False, n=1),
    "top-p": dict(temperature=0.8, top_k=0, top_p=0.95, default_stops=False),
    "stops": dict(temperature=0.8, top_k=0, top_p=0.95, default_stops=True),
}
LOOPS = ("own", "generate")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--n", type=int, default=4, help="samples per prompt (greedy: 1)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default="fp32", help="fp32 for the greedy identity check; auto/bf16 for speed")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=1, help="runs per mode; the best wall time is kept")
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma list of: " + ", ".join(SETTINGS))
    ap.add_argument("--benchmark", default="humaneval", help="problem set the prompts come from")
    ap.add_argument("--split", default=None, help="its split (default: all of it)")
    ap.add_argument("--offset", type=int, default=0, help="skip this many problems first")
    ap.add_argument("--prompt-format", default="completion", choices=("completion", "instruction"),
                    help="instruction: through the model's chat template")
    args = ap.parse_args()

    import torch

    from codeloop.generation import GenerationParams, HFGenerator, generate
    from codeloop.models import load_model
    from codeloop.problems import load_problems

    t0 = time.perf_counter()
    model, tok = load_model(args.model, dtype=args.dtype, device=args.device)
    print(f"model {args.model}: {type(model).__name__} {next(model.parameters()).dtype} on "
          f"{next(model.parameters()).device}, loaded in {time.perf_counter() - t0:.1f}s; "
          f"torch threads {torch.get_num_threads()}")
    problems = load_problems(args.benchmark, split=args.split)[args.offset:args.offset + args.prompts]
    gens = {loop: HFGenerator(model, tok, name=args.model, loop=loop) for loop in LOOPS}
    print(f"{len(problems)} {args.benchmark} prompts ({args.prompt_format}) x {args.n} samples, max {args.max_new_tokens} new tokens, "
          f"batch {args.batch_size}, best of {args.repeats}")
    print(f"{'setting':8s} {'loop':9s} {'tokens':>7s} {'wall s':>8s} {'tok/s':>8s} {'cpu s':>8s} "
          f"{'tok/cpu-s':>9s} {'gen/own':>8s}", flush=True)

    greedy_out = {}
    for setting in [s.strip() for s in args.settings.split(",") if s.strip()]:
        kw = dict(SETTINGS[setting])
        n = kw.pop("n", args.n)
        params = GenerationParams(n=n, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=0,
                                  prompt_format=args.prompt_format, **kw)
        rates = {}
        for loop in LOOPS:
            best = None
            for _ in range(args.repeats):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                start, cpu = time.perf_counter(), time.process_time()
                samples = generate(problems, params, generator=gens[loop])
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
                if best is None or wall < best[1]:
                    best = (sum(s.n_tokens or 0 for s in samples), wall, cpu_s, samples)
            tokens, wall, cpu_s, samples = best
            rates[loop] = tokens / wall if wall else 0.0
            ratio = f"{rates['generate'] / rates['own']:7.2f}x" if loop == "generate" and rates.get("own") else ""
            print(f"{setting:8s} {loop:9s} {tokens:7d} {wall:8.2f} {rates[loop]:8.1f} {cpu_s:8.2f} "
                  f"{tokens / cpu_s if cpu_s else 0.0:9.1f} {ratio:>8s}", flush=True)
            if setting == "greedy":
                greedy_out[loop] = [(s.task_id, s.completion) for s in samples]

    if greedy_out:
        differ = [a[0] for a, b in zip(greedy_out["own"], greedy_out["generate"]) if a != b]
        if differ:
            print(f"greedy outputs DIFFER between the loops on {len(differ)} of {len(greedy_out['own'])} prompts: "
                  f"{', '.join(differ[:8])}" + (" (expected identical in fp32)" if args.dtype == "fp32" else ""))
            if args.dtype == "fp32":
                sys.exit(1)
        else:
            print(f"greedy outputs identical between the loops on all {len(greedy_out['own'])} prompts")


if __name__ == "__main__":
    main()
