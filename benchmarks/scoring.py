"""IFD scoring throughput against a batch-size-1 loop, the numbers' agreement, and peak memory.

Records: HumanEval (docstring as the instruction, canonical solution as the answer).

  baseline   what the reference IFD implementations do: per record, two forward passes at batch
             size 1 through the full model with labels (HF's loss over full-vocabulary logits),
             one for PPL(answer | "Question:\\n{q}\\n\\nAnswer:\\n"), one for PPL(answer | BOS)
  codeloop   ``codeloop.scoring.ifd_scores``: both passes in one length-sorted queue, batches
             of 8, right padding, LM head applied only at answer positions, in chunks

Both use the same token ids (prompt encoded with BOS, answer encoded on its own), so the numbers
must agree: the max relative difference of PPL and IFD is printed.

Peak memory (``--memory``): in a fresh process per path, load the model, reset the kernel's RSS
high-water mark, score 8 records of 512 tokens at batch 8 (256 prompt + 256 answer tokens), and
report the peak RSS above the loaded model's RSS; for the chunked head and for full logits.

Wall time swings with other work on a shared machine; records per CPU-second of this process
(``time.process_time``) are printed too.

Run:  .venv/bin/python benchmarks/scoring.py [--records 32] [--dtype auto] [--memory]
Speed depends on the machine and its load (the dev machine is shared): compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CODELOOP_QUIET", "1")

TEMPLATE = "Question:\n{q}\n\nAnswer:\n"


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def baseline_ifd(model, tok, instructions, answers):
    import torch

    from codeloop.models import encode_continuation, encode_prompt

    out = []
    with torch.inference_mode():
        for q, a in zip(instructions, answers):
            c = encode_continuation(tok, a)
            ppl = []
            for prompt in (TEMPLATE.format(q=q), ""):
                p = encode_prompt(tok, prompt)
                ids = torch.tensor([p + c])
                labels = ids.clone()
                labels[0, :len(p)] = -100
                loss = model(input_ids=ids, labels=labels).loss.float().item()
                ppl.append(float(torch.exp(torch.tensor(loss))))
            out.append((ppl[0], ppl[1], ppl[0] / ppl[1]))
    return out


def memory_child(model_name: str, dtype: str, full_logits: bool) -> None:
    from codeloop.models import load_model
    from codeloop.scoring import logprobs as lp

    model, tok = load_model(model_name, dtype=dtype)
    if full_logits:
        lp._split_model = lambda m: None
    words = " ".join(f"x{i} = {i} * 2" for i in range(400))
    ids = tok(words, add_special_tokens=False)["input_ids"]
    text = tok.decode(ids[:255])
    answer = tok.decode(ids[255:511])
    loaded = _rss_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS
        fh.write("5")
    start = time.perf_counter()
    scores = lp.completion_logprobs(model, tok, [text] * 8, [answer] * 8, batch_size=8)
    secs = time.perf_counter() - start
    n_tok = len(lp.encode_prompt(tok, text)) + scores[0].n_tokens
    print(json.dumps({"loaded_mb": loaded, "peak_mb": _rss_mb("VmHWM"), "tokens_per_row": n_tok,
                      "seconds": secs}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--records", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--memory", action="store_true", help="also measure peak memory at batch 8 x 512 tokens")
    ap.add_argument("--memory-child", choices=["chunked", "full"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.model, args.dtype, args.memory_child == "full")
        return

    import torch

    from codeloop.models import load_model
    from codeloop.problems import load_problems
    from codeloop.scoring import ifd_scores

    model, tok = load_model(args.model, dtype=args.dtype)
    print(f"model {args.model}: {type(model).__name__} {next(model.parameters()).dtype}; "
          f"torch threads {torch.get_num_threads()}")
    problems = load_problems("humaneval", limit=args.records)
    qs = [p.description or p.prompt for p in problems]
    answers = [p.canonical_solution for p in problems]

    start, cpu = time.perf_counter(), time.process_time()
    ref = baseline_ifd(model, tok, qs, answers)
    t_base, c_base = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    ours = ifd_scores(model, tok, qs, answers, batch_size=args.batch_size)
    t_ours, c_ours = time.perf_counter() - start, time.process_time() - cpu

    def rel(a: float, b: float) -> float:
        return abs(a - b) / max(abs(b), 1e-12)

    diff_c = max(rel(o.ppl_conditional, r[0]) for o, r in zip(ours, ref))
    diff_u = max(rel(o.ppl_unconditional, r[1]) for o, r in zip(ours, ref))
    diff_i = max(rel(o.ifd, r[2]) for o, r in zip(ours, ref))
    n = len(problems)
    print(f"\nIFD of {n} HumanEval records (2 passes each), batch {args.batch_size}")
    print(f"{'mode':28s} {'wall s':>7s} {'rec/s':>6s} {'ratio':>6s} {'cpu s':>7s} {'rec/cpu-s':>9s} {'ratio':>6s}")
    print(f"{'baseline (bs 1, full logits)':28s} {t_base:7.1f} {n / t_base:6.2f} {1.0:5.2f}x "
          f"{c_base:7.1f} {n / c_base:9.2f} {1.0:5.2f}x")
    print(f"{'codeloop ifd_scores':28s} {t_ours:7.1f} {n / t_ours:6.2f} {t_base / t_ours:5.2f}x "
          f"{c_ours:7.1f} {n / c_ours:9.2f} {c_base / c_ours:5.2f}x")
    print(f"max relative difference vs baseline: PPL(a|q) {diff_c:.2e}, PPL(a) {diff_u:.2e}, IFD {diff_i:.2e}")

    if args.memory:
        del model
        print("\npeak RSS while scoring 8 records x 512 tokens at batch 8 (fresh process each):")
        for mode in ("chunked", "full"):
            res = subprocess.run([sys.executable, __file__, "--model", args.model, "--dtype", args.dtype,
                                  "--memory-child", mode], capture_output=True, text=True)
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
            if res.returncode or not line:
                print(f"  {mode}: failed: {res.stderr.strip().splitlines()[-1:]}")
                continue
            m = json.loads(line[-1])
            label = "codeloop (chunked LM head)" if mode == "chunked" else "full logits (same batches)"
            print(f"  {label:28s} model loaded {m['loaded_mb']:.0f} MB, peak {m['peak_mb']:.0f} MB "
                  f"(+{m['peak_mb'] - m['loaded_mb']:.0f} MB for scoring), {m['tokens_per_row']} tokens/row, "
                  f"{m['seconds']:.1f}s")


if __name__ == "__main__":
    main()
