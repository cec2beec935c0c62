"""Padding ratio, real tokens/s and peak memory of each batch layout, at equal samples per step.

Modes: pad-to-max, pad-to-longest (baseline), codeact and isolated Dynamic Pack (balanced rows,
plus the paper's next-fit rows), and TRL's own packing (BFD + padding-free) as the external
baseline. Every mode trains the same small random Llama-style model through the same TRL
SFTTrainer (`codeloop.training`), each in its own process so peak RSS is per mode.

Length distributions (prompt, completion token counts):
  humaneval  HumanEval prompts + canonical solutions, tokenized with the default model's tokenizer
  easy       the built-in easy suite, same tokenizer (skipped when the suite is not installed)
  lognormal  synthetic: prompt ~ LogNormal(4.5, 0.6), completion ~ LogNormal(4.8, 0.8)

Run:  .venv/bin/python benchmarks/packing.py [--dist humaneval lognormal] [--steps 8] [--batch 16]
Speed figures depend on the machine and its load: compare the ratios within one run only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = [("pad-to-max", "balanced"), ("pad-to-longest", "balanced"), ("codeact", "next-fit"),
         ("codeact", "balanced"), ("isolated", "next-fit"), ("isolated", "balanced"), ("trl-bfd", "balanced")]
VOCAB = 4096


def _tokenizer():
    try:
        from codeloop.models import load_tokenizer

        return load_tokenizer("default")
    except Exception:  # noqa: BLE001 - fall back to a character estimate
        return None


def lengths(dist: str, n: int, seed: int, max_length: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    if dist == "lognormal":
        pool = [(max(4, int(rng.lognormvariate(4.5, 0.6))), max(4, int(rng.lognormvariate(4.8, 0.8))))
                for _ in range(4 * n)]
    else:
        from codeloop.problems import load_problems

        problems = load_problems(dist)
        tok = _tokenizer()

        def count(text: str) -> int:
            return len(tok(text, add_special_tokens=False)["input_ids"]) if tok else max(1, len(text) // 4)

        pool = [(count(p.prompt or p.description), count(p.canonical_solution or "pass")) for p in problems]
    out = []
    for _ in range(n):
        p, c = rng.choice(pool)
        if p + c > max_length:
            p = max(1, max_length - c) if c < max_length else 1
            c = min(c, max_length - p)
        out.append((p, c))
    return out


def build_model(path: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(VOCAB)}
    vocab.update({"<pad>": 0, "<s>": 1, "</s>": 2})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t3"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)


def worker(args) -> None:
    """One mode in this process: train through codeloop's TRL trainer, print a JSON line."""
    from datasets import Dataset

    from codeloop.training import SFTRunConfig
    from codeloop.training.run import _Run

    spec = json.loads(Path(args.spec).read_text())
    rng = random.Random(1)
    rows = []
    for p, c in spec["lengths"]:
        ids = [rng.randrange(3, VOCAB) for _ in range(p + c)]
        rows.append({"input_ids": ids, "labels": [-100] * p + ids[p:]})
    mode, layout = args.worker.split(":")
    batch = spec["batch"]
    per_step = batch
    if mode == "trl-bfd":  # rows of max_length: as many rows as hold `batch` samples on average
        mean = sum(p + c for p, c in spec["lengths"]) / len(spec["lengths"])
        per_step = max(1, math.ceil(batch * mean / spec["max_length"]))
    cfg = SFTRunConfig(model=spec["model"], out_dir=tempfile.mkdtemp(), lora=False, max_steps=spec["steps"],
                       per_device_batch_size=per_step, max_length=spec["max_length"], packing=mode,
                       pack_layout=layout, bf16=spec["bf16"], save_steps=10_000, report_to="none",
                       learning_rate=1e-4)
    run = _Run("sft", [{"prompt": "x", "completion": "y"}], cfg, None, False)
    run.rows = rows

    # pre-tokenized rows go straight to TRL (no text round trip); the rest is the normal run path
    def build(model, tokenizer, _rows, targs, peft_config, callbacks, lora):
        from codeloop.training.packing import DynamicPackCollator
        from codeloop.training.trainers import CodeloopSFTTrainer

        targs.shuffle_dataset = False
        collator = None
        if mode not in ("none", "trl-bfd"):
            collator = DynamicPackCollator(pad_token_id=0, mode=mode, max_length=cfg.max_length, layout=layout,
                                           attn_implementation=model.config._attn_implementation)
        return CodeloopSFTTrainer(model=model, args=targs, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, data_collator=collator, callbacks=callbacks)

    run._build_trainer = build
    t0 = time.perf_counter()
    result = run.execute()
    wall = time.perf_counter() - t0
    logged = [json.loads(x) for x in (Path(cfg.out_dir) / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "real_tokens" in r][spec["warmup"]:]
    real = sum(r["real_tokens"] for r in steps)
    secs = sum(r["step_time_s"] for r in steps)
    samples = sum(r["samples_per_s"] * r["step_time_s"] for r in steps)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda_mb = None
    try:
        import torch

        if torch.cuda.is_available():
            cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    except Exception:  # noqa: BLE001
        pass
    print(json.dumps({"mode": mode, "layout": layout, "steps": result.steps, "rows_per_step_cfg": per_step,
                      "padding_ratio": sum(r["padding_ratio"] for r in steps) / len(steps),
                      "real_tokens_per_s": real / secs, "samples_per_s": samples / secs,
                      "peak_rss_mb": peak_mb, "cuda_peak_mb": cuda_mb, "wall_s": wall}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dist", nargs="+", default=["humaneval", "lognormal"])
    ap.add_argument("--steps", type=int, default=10, help="optimizer steps per mode (warm-up included)")
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the figures")
    ap.add_argument("--batch", type=int, default=16, help="samples per step (equal for every mode)")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--bf16", default="off", help="auto|on|off (off by default: on CPU, bf16 pays a one-off "
                                                  "kernel set-up per new batch shape, which blurs short runs)")
    ap.add_argument("--modes", nargs="+", default=[f"{m}:{lay}" for m, lay in MODES])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    os.environ.setdefault("CODELOOP_QUIET", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="codeloop-packbench-"))
    build_model(tmp / "model")
    print("machine: shared 2-core CPU (other jobs may run); small Llama 2x128, vocab 4096; "
          f"{args.batch} samples/step, max_length {args.max_length}, {args.steps - args.warmup} measured steps")
    for dist in args.dist:
        try:
            lens = lengths(dist, args.batch * args.steps, seed=0, max_length=args.max_length)
        except Exception as exc:  # noqa: BLE001
            print(f"\n[{dist}] skipped: {exc}")
            continue
        mean = sum(p + c for p, c in lens) / len(lens)
        print(f"\n[{dist}] mean sample {mean:.0f} tokens, longest {max(p + c for p, c in lens)}")
        spec = tmp / f"{dist}.json"
        spec.write_text(json.dumps({"lengths": lens, "batch": args.batch, "steps": args.steps,
                                    "warmup": args.warmup, "max_length": args.max_length,
                                    "model": str(tmp / "model"), "bf16": args.bf16}))
        results = {}
        for mode in args.modes:
            proc = subprocess.run([sys.executable, __file__, "--worker", mode, "--spec", str(spec)],
                                  capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("{")]
            if proc.returncode != 0 or not line:
                print(f"  {mode:26s} failed: {proc.stderr.strip().splitlines()[-1:] }")
                continue
            results[mode] = json.loads(line[-1])
        base = results.get("pad-to-longest:balanced")
        print(f"  {'mode':26s} {'real tok':>9s} {'real tok/s':>11s} {'vs longest':>10s} {'samples/s':>10s} "
              f"{'peak RSS':>9s}")
        for mode, r in results.items():
            ratio = r["real_tokens_per_s"] / base["real_tokens_per_s"] if base else float("nan")
            name = mode.replace(":balanced", "") if not mode.startswith(("codeact", "isolated")) else mode
            print(f"  {name:26s} {1 - r['padding_ratio']:9.1%} {r['real_tokens_per_s']:11.0f} {ratio:9.2f}x "
                  f"{r['samples_per_s']:10.1f} {r['peak_rss_mb']:8.0f}M"
                  + (f" cuda {r['cuda_peak_mb']:.0f}M" if r.get("cuda_peak_mb") else ""))


if __name__ == "__main__":
    main()
