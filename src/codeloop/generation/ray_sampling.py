"""Sampling on a Ray cluster: data-parallel engines, each fed shards of problems.

One engine per GPU (vLLM, or hf when asked) or, on a CPU-only cluster, one hf engine per node.
Each engine is a Ray actor holding a generator from `get_generator` and calling the same
`generate` as the local path, so the records are the same Sample records. Problems are cut into
shards of a fixed size; shard s (starting at problem index a) samples with seed ``seed + a``, so the
output depends on the seed and the shard size, never on how many engines ran it or which one did.
With vLLM, whose per-prompt seed is ``seed + index``, that is exactly the single-engine output.

A shard whose engine or node died runs again on another (respawned) engine; samples come back in
input order and `on_sample` sees each exactly once.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from codeloop.console import console, nullbar, progress_bar
from codeloop.distributed import ActorFleet, connect
from codeloop.errors import UserError
from codeloop.generation.params import GenerationParams
from codeloop.records import Problem, Sample

DEFAULT_SHARD_SIZE = 16  # problems per shard


class GeneratorActor:
    """One generator (model loaded once) on one GPU or one node's CPUs."""

    def __init__(self, backend: str, model: str, adapter: str | None, options: dict[str, Any],
                 threads: int | None):
        console.quiet = True  # the driver shows progress
        if threads:
            import torch

            torch.set_num_threads(threads)
        from codeloop.generation import get_generator

        self.gen = get_generator(backend, model, adapter=adapter, **options)
        self.backend = backend

    def info(self) -> dict[str, Any]:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
                "pid": os.getpid(), "backend": self.backend}

    def generate(self, problems: list[Problem], params: GenerationParams) -> list[Sample]:
        from codeloop.generation import generate

        return generate(problems, params, generator=self.gen)


def _cpu_nodes(ray: Any) -> list[tuple[str, int]]:
    return [(n["NodeID"], int(n["Resources"]["CPU"])) for n in ray.nodes()
            if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]


def sample_on_ray(problems: list[Problem], params: GenerationParams | None = None, model: str = "default",
                  backend: str = "auto", adapter: str | None = None, address: str | None = None,
                  engines: int | None = None, cpus_per_engine: int | None = None, gpus_per_engine: int = 1,
                  shard_size: int = DEFAULT_SHARD_SIZE, on_sample: Callable[[Sample], None] | None = None,
                  progress: bool = True, **options: Any) -> list[Sample]:
    """``params.n`` samples per problem from data-parallel engines on a Ray cluster; input order.

    backend: ``auto`` (vllm when the cluster has GPUs, else hf), ``vllm`` or ``hf``.
    engines: how many (default: one per `gpus_per_engine` GPUs; on CPU clusters one per node, using
    all of that node's CPUs). cpus_per_engine: CPUs each CPU engine reserves (and torch threads).
    options: passed to `get_generator` (hf: dtype, device; vllm: any vllm.LLM keyword).
    """
    params = params or GenerationParams()
    params.validate()
    if shard_size < 1:
        raise UserError("must be at least 1", "shard_size")
    if backend not in ("auto", "vllm", "hf"):
        raise UserError(f"the ray sampler runs vllm or hf engines, not {backend!r}", "--backend")
    if not problems:
        return []
    ray = connect(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if backend == "auto":
        backend = "vllm" if gpus else "hf"
    if backend == "vllm":
        if not gpus:
            raise UserError("the vllm backend needs GPUs and this Ray cluster has none (use --backend hf)",
                            "--backend")
        gpus_per_engine = int(options.get("tensor_parallel_size", gpus_per_engine))
    actor_cls = ray.remote(GeneratorActor)
    use_gpu = gpus > 0 and options.get("device") != "cpu"

    def make(resources: dict[str, Any], threads: int | None) -> Callable[[], Any]:
        return lambda: actor_cls.options(max_restarts=0, max_task_retries=0, **resources).remote(
            backend, model, adapter, dict(options), threads)

    factories: list[Callable[[], Any]] = []
    node_of: list[str | None] = []
    if use_gpu:
        n = engines or max(1, gpus // gpus_per_engine)
        factories = [make({"num_gpus": gpus_per_engine, "num_cpus": 1}, None) for _ in range(n)]
        node_of = [None] * n
    elif engines is None:  # CPU cluster: one engine per node, all of its CPUs
        for node_id, cpus in _cpu_nodes(ray):
            c = min(cpus, cpus_per_engine or cpus)
            factories.append(make({"num_cpus": c, "scheduling_strategy":
                                   NodeAffinitySchedulingStrategy(node_id, soft=False)}, c))
            node_of.append(node_id)
    else:
        c = cpus_per_engine or 1
        factories = [make({"num_cpus": c, "scheduling_strategy": "SPREAD"}, c) for _ in range(engines)]
        node_of = [None] * engines
    if not factories:
        raise UserError("the Ray cluster has no alive node with CPUs", "--executor")

    def node_alive(slot: int) -> bool:
        return node_of[slot] is None or any(nid == node_of[slot] for nid, _ in _cpu_nodes(ray))

    shards = shard_plan(len(problems), shard_size)
    out: list[list[Sample] | None] = [None] * len(shards)
    index = {span: k for k, span in enumerate(shards)}
    fleet = ActorFleet(ray, factories, max_in_flight=2, can_respawn=node_alive)

    def submit(actor: Any, span: tuple[int, int]) -> Any:
        return actor.generate.remote(problems[span[0]:span[1]], params.replace(seed=params.seed + span[0]))

    try:
        with progress_bar(f"sample (ray, {len(factories)} {backend} engines)",
                          len(problems) * params.n) if progress else nullbar() as advance:
            def on_done(span: tuple[int, int], samples: list[Sample], slot: int) -> None:
                for s in samples:
                    s.params = {**s.params, "seed": params.seed}  # the run's seed, as the local path records it
                    if on_sample is not None:
                        on_sample(s)
                out[index[span]] = samples
                advance(len(samples))

            fleet.run(shards, submit, on_done)
    finally:
        fleet.close(close_method=None)
    return [s for shard in out for s in (shard or [])]


def shard_plan(n_problems: int, shard_size: int = DEFAULT_SHARD_SIZE) -> list[tuple[int, int]]:
    """The (start, end) problem ranges `sample_on_ray` cuts; shard (a, b) samples with seed + a."""
    return [(a, min(a + shard_size, n_problems)) for a in range(0, n_problems, shard_size)]


__all__ = ["sample_on_ray", "shard_plan", "GeneratorActor", "DEFAULT_SHARD_SIZE"]
