"""The embedded models side by side: sampling tokens/s and one LoRA training step, same inputs, one run.

For each model named (default: `default` = Gemma 3 270M and `coder` = Qwen2.5-Coder 0.5B Instruct):

  sample    HFGenerator (batched `model.generate`), greedy, HumanEval prompts, no stop strings, in
            the dtypes asked for (fp32 = evaluation's default; bf16 = sampling's `auto` on a CPU
            that runs it natively). tokens/s = kept tokens / wall time.
  lora      one optimizer step of LoRA (r=16 on every linear projection) on a batch of 4 rows of
            256 tokens, loss on all tokens, after one warm-up step; the median of `--steps` steps.

The last column is the ratio to the first model in the same run. Run it alone on the machine:
other jobs change wall times (the script prints the load average it started under).

Run:  .venv/bin/python benchmarks/models.py [--models default,coder] [--prompts 8]
          [--max-new-tokens 128] [--dtypes fp32,bf16] [--steps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CODELOOP_QUIET", "1")


def sample_rate(model: str, dtype: str, prompts: list[str], max_new_tokens: int, batch_size: int) -> float:
    from codeloop.generation import GenerationParams
    from codeloop.generation.hf import HFGenerator

    gen = HFGenerator.load(model, dtype=dtype)
    params = GenerationParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, default_stops=False,
                              batch_size=batch_size)
    gen.generate_texts(prompts[:1], params.replace(max_new_tokens=4))  # warm-up: first-call allocations
    t0 = time.perf_counter()
    out = gen.generate_texts(prompts, params)
    wall = time.perf_counter() - t0
    return sum(s.n_tokens for row in out for s in row) / wall


def lora_step_s(model: str, steps: int, dtype: str) -> float:
    import torch
    from peft import LoraConfig, get_peft_model

    from codeloop.models import load_model

    m, _ = load_model(model, dtype=dtype)
    m = get_peft_model(m, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    m.train()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, min(m.config.vocab_size, 32000), (4, 256), generator=g)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = m(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:  # the first step pays one-time allocations
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="default,coder")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--train-dtype", default="bf16")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()

    from codeloop.problems import load_problems

    prompts = [p.prompt for p in load_problems("humaneval", limit=args.prompts)]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    print(f"load average at start: {os.getloadavg()[0]:.2f} (run alone for wall-time figures)")
    rows: list[tuple[str, str, float]] = []
    for model in models:
        for dtype in dtypes:
            rows.append((model, f"sample {dtype} tok/s",
                         sample_rate(model, dtype, prompts, args.max_new_tokens, args.batch_size)))
        rows.append((model, f"lora step s ({args.train_dtype}, 4x256)", lora_step_s(model, args.steps,
                                                                                   args.train_dtype)))
    first = {what: v for m, what, v in rows if m == models[0]}
    print(f"{'model':<10} {'measure':<28} {'value':>10} {'vs ' + models[0]:>12}")
    for model, what, v in rows:
        print(f"{model:<10} {what:<28} {v:>10.2f} {v / first[what]:>11.2f}x")


if __name__ == "__main__":
    main()
