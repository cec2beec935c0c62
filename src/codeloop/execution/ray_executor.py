"""Sandbox executions on a Ray cluster: the same pool as the local path, hosted in Ray actors.

Each actor owns a local `ExecutionPool` (warm sandbox workers, forked children, rlimits, uids,
network namespaces) on the node it is pinned to, and runs batches of (problem, sample) through
`execute_samples` there, so a verdict is the one the local pool would give by construction. The
driver keeps every node busy with at most `max_in_flight` batches queued per actor (back-pressure:
the driver never ships the whole job into the object store), and records a sample only when the
batch that holds it comes back. A batch whose actor or node died is put back at the front of the
queue and runs again on another (or a respawned) actor: infrastructure failures are retried,
never recorded as failed samples, and no sample is recorded twice.

Ray is imported lazily; without it the ray executor fails with the ``pip install`` line to run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from codeloop.console import console, nullbar, progress_bar, warn
from codeloop.distributed import ActorFleet, connect
from codeloop.errors import UserError
from codeloop.execution.config import ExecConfig
from codeloop.execution.pool import LocalExecutor
from codeloop.records import Problem, Result, Sample

DEFAULT_CORES_PER_ACTOR = 4  # sandbox workers per actor: a node gets cpus // this many actors


# `ray.remote` is applied on use, so this module imports without Ray.
class SandboxActor:
    """The local executor on one node; runs batches exactly as the local path does."""

    def __init__(self, config: ExecConfig):
        console.quiet = True  # the driver reports isolation once, not every batch
        self.local = LocalExecutor(config).start()
        self.pool = self.local.pool

    def info(self) -> dict[str, Any]:
        import ray

        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(), "pid": os.getpid(),
                "sandbox_pids": self.pool.worker_pids(), "workers": self.pool.config.workers,
                "isolation": self.pool.isolation}

    def run(self, problems: dict[str, Problem], samples: list[Sample]) -> tuple[list[Result], float]:
        t0 = time.monotonic()
        results = self.local.run(problems, samples, progress=False)
        return results, time.monotonic() - t0

    def close(self) -> None:
        self.local.close()


@dataclass
class NodeStats:
    ip: str
    node_id: str
    actors: int = 0
    workers: int = 0
    executions: int = 0
    busy_s: float = 0.0  # summed wall time of this node's batches inside its actors


@dataclass
class RaySummary:
    executions: int = 0
    wall_s: float = 0.0
    batches: int = 0
    retried_batches: int = 0  # batches run again after their actor or node was lost
    lost_actors: int = 0
    nodes: dict[str, NodeStats] = field(default_factory=dict)  # node id -> stats

    def lines(self) -> list[str]:
        rate = self.executions / self.wall_s if self.wall_s > 0 else 0.0
        head = (f"ray: {self.executions} executions in {self.wall_s:.1f} s ({rate:.1f}/s) on {len(self.nodes)} "
                f"node(s), {sum(n.actors for n in self.nodes.values())} actor(s), {self.batches} batches")
        if self.retried_batches or self.lost_actors:
            head += f"; {self.lost_actors} actor(s) lost, {self.retried_batches} batch(es) retried"
        rows = [f"  node {n.ip} ({n.node_id[:8]}): {n.executions} executions, "
                f"{n.executions / self.wall_s if self.wall_s > 0 else 0.0:.1f}/s, {n.actors} actor(s) x "
                f"{n.workers // max(1, n.actors)} workers" for n in self.nodes.values()]
        return [head] + rows


class RayExecutor:
    """The `ray[:ADDRESS]` executor: sandbox actors on every alive node of a Ray cluster (one per
    `cores_per_actor` CPUs).

    Use as a context manager; `run(...)`/`execute(...)` may be called several times on the same actors.
    """

    def __init__(self, config: ExecConfig | None = None, address: str | None = None,
                 cores_per_actor: int | None = None, batch_size: int | None = None, max_in_flight: int = 2,
                 max_attempts: int = 4, max_actors: int | None = None):
        self.config = config or ExecConfig()
        self.config.validate()
        self.address = address
        env_cores = os.environ.get("CODELOOP_RAY_CORES_PER_ACTOR")
        self.cores_per_actor = cores_per_actor or (int(env_cores) if env_cores else DEFAULT_CORES_PER_ACTOR)
        if self.cores_per_actor < 1:
            raise UserError("must be at least 1", "CODELOOP_RAY_CORES_PER_ACTOR")
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.max_actors = max_actors
        self.fleet: ActorFleet | None = None
        self.slots: list[tuple[str, int]] = []  # (node id, sandbox workers) per actor slot

    def _plan(self, ray: Any) -> list[tuple[str, int]]:
        slots = []
        for node in ray.nodes():
            cpus = int(node.get("Resources", {}).get("CPU", 0))
            if not node.get("Alive") or cpus < 1:
                continue
            group = min(self.cores_per_actor, cpus)
            slots += [(node["NodeID"], group)] * (cpus // group)
        if self.max_actors:
            slots = slots[:self.max_actors]
        if not slots:
            raise UserError("the Ray cluster has no alive node with CPUs", "--executor")
        return slots

    def start(self) -> "RayExecutor":
        if self.fleet is not None:
            return self
        ray = connect(self.address)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor_cls = ray.remote(SandboxActor)
        self.slots = self._plan(ray)
        local = dataclasses.replace(self.config, executor="local")

        def factory(node_id: str, workers: int) -> Callable[[], Any]:
            return lambda: actor_cls.options(
                num_cpus=workers, max_restarts=0, max_task_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(dataclasses.replace(local, workers=workers))

        def node_alive(slot: int) -> bool:
            node_id = self.slots[slot][0]
            return any(n["NodeID"] == node_id and n.get("Alive") for n in ray.nodes())

        self.fleet = ActorFleet(ray, [factory(n, w) for n, w in self.slots], max_in_flight=self.max_in_flight,
                                max_attempts=self.max_attempts, can_respawn=node_alive)
        return self

    def __enter__(self) -> "RayExecutor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None

    def actor_infos(self) -> list[dict[str, Any]]:
        """node_id, ip, pid, sandbox_pids, workers, isolation of every live actor (waits for them)."""
        self.start()
        return self.fleet.wait_ready()  # type: ignore[union-attr]

    def execute(self, problems: dict[str, Problem] | Iterable[Problem], samples: Iterable[Sample],
                on_result: Callable[[Result], None] | None = None,
                progress: bool = True) -> tuple[list[Result], RaySummary]:
        """Results in input order, and where they ran. `on_result` is called exactly once per sample,
        in this thread, as its batch comes back."""
        by_id = problems if isinstance(problems, dict) else {p.task_id: p for p in problems}
        samples = list(samples)
        for s in samples:
            if s.task_id not in by_id:
                raise UserError(f"sample {s.sample_id} is for task '{s.task_id}', which is not in the problem set",
                                "--samples")
        self.start()
        fleet = self.fleet
        assert fleet is not None
        summary = RaySummary()
        out: list[Result | None] = [None] * len(samples)
        if not samples:
            return [], summary
        per_actor = max(w for _, w in self.slots)
        size = self.batch_size or max(1, min(16 * per_actor, -(-len(samples) // (2 * len(self.slots)))))
        spans = [(a, min(a + size, len(samples))) for a in range(0, len(samples), size)]
        summary.batches = len(spans)
        retried0, lost0 = fleet.retried, fleet.lost_actors
        warned = False
        t0 = time.monotonic()

        def submit(actor: Any, span: tuple[int, int]) -> Any:
            chunk = samples[span[0]:span[1]]
            return actor.run.remote({s.task_id: by_id[s.task_id] for s in chunk}, chunk)

        with progress_bar("execute (ray)", len(samples)) if progress else nullbar() as advance:
            def on_done(span: tuple[int, int], value: tuple[list[Result], float], slot: int) -> None:
                nonlocal warned
                results, busy = value
                info = fleet.infos[slot] or {}
                if not warned and results and results[0].extra.get("isolation", "full") != "full":
                    warn(f"sandbox isolation is weaker on node {info.get('ip', '?')}: {results[0].extra['isolation']}")
                    warned = True
                node_id = info.get("node_id") or self.slots[slot][0]
                node = summary.nodes.setdefault(node_id, NodeStats(ip=info.get("ip", "?"), node_id=node_id))
                node.executions += len(results)
                node.busy_s += busy
                for j, r in enumerate(results):
                    out[span[0] + j] = r
                    if on_result is not None:
                        on_result(r)
                summary.executions += len(results)
                advance(len(results))

            fleet.run(spans, submit, on_done)
        summary.wall_s = time.monotonic() - t0
        summary.retried_batches = fleet.retried - retried0
        summary.lost_actors = fleet.lost_actors - lost0
        for slot, info in enumerate(fleet.infos):
            node_id = (info or {}).get("node_id") or self.slots[slot][0]
            if node_id in summary.nodes and info is not None:
                summary.nodes[node_id].actors += 1
                summary.nodes[node_id].workers += int(info.get("workers", 0))
        return out, summary  # type: ignore[return-value]

    def run(self, problems: dict[str, Problem], samples: list[Sample],
            on_result: Callable[[Result], None] | None = None, progress: bool = True) -> list[Result]:
        """The Executor interface: results in input order; where they ran is printed with progress."""
        results, summary = self.execute(problems, samples, on_result=on_result, progress=progress)
        if progress:
            for line in summary.lines():
                console.print(line)
        return results
