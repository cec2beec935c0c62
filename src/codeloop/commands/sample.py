"""`codeloop sample`: sample programs for a problem set with a model."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from codeloop.rundir import locks_output


def register(app: typer.Typer) -> None:
    @app.command("sample")
    @locks_output()
    def sample(
        problems: str = typer.Option(..., "--problems", "-p", help="Problem set: humaneval, easy, mbpp, jsonl:PATH, ..."),
        out: Path = typer.Option(..., "--out", "-o", help="Where to write the samples: .jsonl, .jsonl.gz or "
                                                                   ".parquet."),
        model: str = typer.Option("default", "--model", "-m",
                                  help="'default' (Gemma 3 270M, offline), a local HF model folder or a hub id."),
        n: int = typer.Option(1, "-n", help="Samples per problem."),
        temperature: float = typer.Option(0.8, "--temperature", "-t", help="0 = greedy."),
        top_p: float = typer.Option(0.95, "--top-p", help="Nucleus mass (1 = off)."),
        top_k: int = typer.Option(0, "--top-k", help="Keep the k most likely tokens (0 = off)."),
        max_new_tokens: int = typer.Option(384, "--max-new-tokens", help="Tokens per sample at most."),
        stop: Optional[List[str]] = typer.Option(None, "--stop", help="Extra stop string (repeatable)."),
        default_stops: bool = typer.Option(True, "--default-stops/--no-default-stops",
                                           help="HumanEval-style stops for completion prompts."),
        seed: int = typer.Option(0, "--seed"),
        batch_size: int = typer.Option(8, "--batch-size", help="Rows decoded together (hf)."),
        prompt_format: str = typer.Option("completion", "--prompt-format", help="completion | instruction."),
        chat: str = typer.Option("auto", "--chat", help="instruction prompts: auto | chat | plain."),
        split: Optional[str] = typer.Option(None, "--split", help="Problem-set split."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N problems."),
        backend: str = typer.Option("hf", "--backend", help="hf | vllm | openai."),
        adapter: Optional[str] = typer.Option(None, "--adapter", help="PEFT (LoRA) adapter folder (hf, vllm)."),
        dtype: str = typer.Option("auto", "--dtype", help="auto | bf16 | fp16 | fp32 (hf, vllm)."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (hf)."),
        base_url: Optional[str] = typer.Option(None, "--base-url", help="openai: server URL, e.g. http://127.0.0.1:8000/v1."),
        api_key: Optional[str] = typer.Option(None, "--api-key", envvar="CODELOOP_API_KEY", help="openai: bearer token."),
        concurrency: int = typer.Option(8, "--concurrency", help="openai: requests in flight."),
    ) -> None:
        """Sample N programs per problem and write them as Sample records."""
        import time

        from codeloop.console import summary
        from codeloop.errors import UserError
        from codeloop.generation import GenerationParams, generate
        from codeloop.problems import load_problems
        from codeloop.records import check_records_output, write_jsonl

        check_records_output(out, "--out")  # .jsonl, .jsonl.gz or .parquet, before any sampling
        if limit is not None and limit < 1:
            raise UserError(f"must be >= 1, got {limit}", "--limit")
        params = GenerationParams(n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                                  max_new_tokens=max_new_tokens, stop=list(stop or []),
                                  default_stops=default_stops, seed=seed, batch_size=batch_size,
                                  prompt_format=prompt_format, chat=chat)
        probs = load_problems(problems, split=split, limit=limit)
        if not probs:
            raise UserError(f"no problems in '{problems}'" + (f" (split {split})" if split else ""), "--problems")
        options: dict = {}
        if backend in ("hf", "vllm"):
            options["dtype"] = dtype
        if backend == "hf":
            options["device"] = device
        if backend == "openai":
            options.update(base_url=base_url, api_key=api_key, concurrency=concurrency)
        start = time.perf_counter()
        samples = generate(probs, params, model=model, backend=backend, adapter=adapter, **options)
        elapsed = time.perf_counter() - start
        write_jsonl(out, samples)
        tokens = sum(s.n_tokens or 0 for s in samples)
        summary(f"{len(samples)} samples for {len(probs)} problems from {samples[0].model if samples else model} "
                f"-> {out} ({tokens} tokens, {tokens / max(elapsed, 1e-9):.0f} tok/s)")
