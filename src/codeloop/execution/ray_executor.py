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

import collections
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from codeloop.console import console, progress_bar, warn
from codeloop.errors import MissingDependency, UserError
from codeloop.execution.config import ExecConfig
from codeloop.records import Problem, Result, Sample

DEFAULT_CORES_PER_ACTOR = 4  # sandbox workers per actor: a node gets cpus // this many actors
_START_TIMEOUT_S = 300.0  # no actor ready after this long: the cluster has no room for one


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependency("the ray executor", "ray", "ray") from None
    return ray


def ray_address(executor: str) -> str | None:
    """``ray`` -> None (RAY_ADDRESS, a cluster started on this machine, else a new local one);
    ``ray:ADDRESS`` -> ADDRESS (``auto``, ``HOST:6379`` or ``ray://HOST:10001``)."""
    if executor == "ray":
        return None
    if executor.startswith("ray:") and executor[4:]:
        return executor[4:]
    raise UserError(f"expected ray or ray:ADDRESS, got {executor!r}", "--executor")


def connect(address: str | None = None) -> Any:
    """Connect this process to Ray once (no-op when already connected); returns the ray module.

    No address: RAY_ADDRESS, else the cluster last started on this machine with `ray start`, else
    a new single-machine instance (Ray's own discovery rules)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address is None:
        found = _discovered_address()
        if found is None:
            console.print("ray: no RAY_ADDRESS and no cluster started on this machine; starting a local Ray instance")
        elif found not in ("auto", "local"):  # a dead cluster's record must not hang us for minutes
            _probe(found, what="the Ray cluster recorded here (RAY_ADDRESS or /tmp/ray/ray_current_cluster)")
    elif address not in ("auto", "local"):
        _probe(address)  # Ray itself retries an unreachable head for minutes before it gives up
    try:
        ray.init(address=address, include_dashboard=False if address is None else None, logging_level="WARNING")
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot connect to the Ray cluster at {address or os.environ.get('RAY_ADDRESS') or 'auto'}: "
                        f"{first}. If the cluster uses token authentication (Ray >= 2.59 turns it on for clusters "
                        "started with `ray start`), set RAY_AUTH_MODE=token here too, with the cluster's token in "
                        "RAY_AUTH_TOKEN or ~/.ray/auth_token", "--executor") from None
    return ray


def _discovered_address() -> str | None:
    try:
        from ray._private.services import get_ray_address_from_environment

        return get_ray_address_from_environment(None, None)
    except Exception:  # a private helper that may move: then let ray.init discover on its own
        return None


def _probe(address: str, timeout_s: float = 5.0, what: str = "the Ray head") -> None:
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"expected HOST:PORT or ray://HOST:PORT after 'ray:', got {address!r}", "--executor")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"cannot reach {what} at {hostport}: {exc.strerror or exc} (is `ray start --head` running "
                        "there? `ray status` on the head tells; `ray stop` clears a dead cluster's record)",
                        "--executor") from None


def infrastructure_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Errors that say the machine, not the sample, failed: the batch is run again elsewhere."""
    ex = ray.exceptions
    names = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
             "LocalRayletDiedError", "ObjectFetchTimedOutError", "OutOfMemoryError", "RaySystemError",
             "ActorUnschedulableError")
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))


# -------------------------------------------------------------------------------------------------
# Actors (plain classes; `ray.remote` is applied lazily so this module imports without Ray)

class SandboxActor:
    """One local ExecutionPool on one node; runs batches through `execute_samples`."""

    def __init__(self, config: ExecConfig):
        from codeloop import console as console_mod
        from codeloop.execution.pool import ExecutionPool

        console_mod.console.quiet = True  # the driver reports isolation once, not every batch
        self.pool = ExecutionPool(config).start()

    def info(self) -> dict[str, Any]:
        import ray

        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(), "pid": os.getpid(),
                "sandbox_pids": self.pool.worker_pids(), "workers": self.pool.config.workers,
                "isolation": self.pool.isolation}

    def run(self, problems: dict[str, Problem], samples: list[Sample]) -> tuple[list[Result], float]:
        from codeloop.execution.pool import execute_samples

        t0 = time.monotonic()
        results = execute_samples(problems, samples, pool=self.pool, progress=False)
        return results, time.monotonic() - t0

    def close(self) -> None:
        self.pool.close()


class ActorFleet:
    """Keeps a set of actor slots alive and feeds them work with bounded queues and retries.

    A slot is a factory for one actor; when its actor dies, the slot makes a new one (up to
    `max_respawns` times, and only while `can_respawn(slot)` says its node is still there).
    `run(items, submit, on_done)`: `submit(actor, item)` -> ObjectRef; `on_done(item, value, slot)`
    is called exactly once per item, in the order items finish. An item whose call failed with an
    infrastructure error goes back to the front of the queue; after `max_attempts` failures of the
    same item the run stops with RuntimeError (what finished was already handed to `on_done`).
    """

    def __init__(self, ray: Any, factories: list[Callable[[], Any]], max_in_flight: int = 2,
                 max_attempts: int = 4, max_respawns: int = 3,
                 can_respawn: Callable[[int], bool] | None = None, start_timeout_s: float = _START_TIMEOUT_S):
        self.ray = ray
        self.factories = factories
        self.max_in_flight = max(1, max_in_flight)
        self.max_attempts = max_attempts
        self.max_respawns = max_respawns
        self.can_respawn = can_respawn or (lambda slot: True)
        self.start_timeout_s = start_timeout_s
        self.errors = infrastructure_errors(ray)
        n = len(factories)
        self.actors: list[Any] = [None] * n
        self.generation = [0] * n
        self.respawns = [0] * n
        self.infos: list[dict | None] = [None] * n
        self.ready_refs: dict[Any, tuple[int, int]] = {}
        self.in_flight = [0] * n
        self.retried = 0  # items that ran again because their actor was lost
        self.lost_actors = 0
        for slot in range(n):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        self.generation[slot] += 1
        self.actors[slot] = self.factories[slot]()
        self.infos[slot] = None
        self.in_flight[slot] = 0
        self.ready_refs[self.actors[slot].info.remote()] = (slot, self.generation[slot])

    def _lose(self, slot: int, generation: int) -> None:
        """The actor of `slot` (as of `generation`) is gone: kill what is left of it, maybe respawn."""
        if generation != self.generation[slot] or self.actors[slot] is None:
            return  # already handled
        self.lost_actors += 1
        try:
            self.ray.kill(self.actors[slot], no_restart=True)
        except Exception:
            pass
        self.actors[slot] = None
        self.infos[slot] = None
        self.in_flight[slot] = 0
        if self.respawns[slot] < self.max_respawns and self.can_respawn(slot):
            self.respawns[slot] += 1
            self._spawn(slot)

    def wait_ready(self, timeout_s: float | None = None) -> list[dict]:
        """Block until every slot's actor answered (or was given up); the infos of live actors."""
        deadline = time.monotonic() + (self.start_timeout_s if timeout_s is None else timeout_s)
        while self.ready_refs and time.monotonic() < deadline:
            self._poll(list(self.ready_refs), {}, lambda *a: None, collections.deque(), {}, timeout=1.0)
        return [i for i in self.infos if i is not None]

    def run(self, items: list[Any], submit: Callable[[Any, Any], Any],
            on_done: Callable[[Any, Any, int], None]) -> None:
        queue: collections.deque[int] = collections.deque(range(len(items)))
        attempts = [0] * len(items)
        done = [False] * len(items)
        in_flight: dict[Any, tuple[int, int, int]] = {}  # ref -> (slot, generation, item index)
        started = time.monotonic()
        n_left = len(items)

        def finish(k: int, value: Any, slot: int) -> None:
            nonlocal n_left
            if done[k]:  # cannot happen: an item is resubmitted only after its call failed
                return
            done[k] = True
            n_left -= 1
            on_done(items[k], value, slot)

        while n_left:
            for slot in range(len(self.actors)):
                while (queue and self.infos[slot] is not None and self.in_flight[slot] < self.max_in_flight):
                    k = queue.popleft()
                    attempts[k] += 1
                    in_flight[submit(self.actors[slot], items[k])] = (slot, self.generation[slot], k)
                    self.in_flight[slot] += 1
            waiting = list(in_flight) + list(self.ready_refs)
            if not waiting:
                raise RuntimeError("every Ray actor was lost and none could be started again; "
                                   f"{n_left} of {len(items)} batches did not run (finished ones are recorded)")
            if not any(self.infos) and not in_flight and time.monotonic() - started > self.start_timeout_s:
                raise RuntimeError(f"no Ray actor started within {self.start_timeout_s:.0f} s: does the cluster "
                                   "have free CPUs? (`ray status`)")
            self._poll(waiting, in_flight, finish, queue, {"attempts": attempts, "items": items}, timeout=1.0)

    def _poll(self, waiting: list[Any], in_flight: dict, finish: Callable, queue: collections.deque,
              ctx: dict, timeout: float) -> None:
        ready, _ = self.ray.wait(waiting, num_returns=1, timeout=timeout)
        for ref in ready:
            if ref in self.ready_refs:
                slot, gen = self.ready_refs.pop(ref)
                try:
                    info = self.ray.get(ref)
                except self.errors:
                    self._lose(slot, gen)
                    continue
                if gen == self.generation[slot]:
                    self.infos[slot] = info
                continue
            slot, gen, k = in_flight.pop(ref)
            try:
                value = self.ray.get(ref)
            except self.errors as exc:
                self.retried += 1
                if ctx["attempts"][k] >= self.max_attempts:
                    raise RuntimeError(f"a batch failed {self.max_attempts} times on lost Ray actors or nodes "
                                       f"(last: {type(exc).__name__}); finished batches are recorded, "
                                       "rerun to resume") from exc
                queue.appendleft(k)
                self._lose(slot, gen)
                continue
            if gen == self.generation[slot]:
                self.in_flight[slot] -= 1
            finish(k, value, slot)

    def close(self, close_method: str | None = "close") -> None:
        live = [a for a in self.actors if a is not None]
        if close_method:
            refs = [getattr(a, close_method).remote() for a in live]
            try:
                self.ray.wait(refs, num_returns=len(refs), timeout=15)
            except Exception:
                pass
        for a in live:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:
                pass
        self.actors = [None] * len(self.actors)


# -------------------------------------------------------------------------------------------------
# The executor

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
    """Sandbox actors on every alive node of a Ray cluster (one per `cores_per_actor` CPUs).

    Use as a context manager; `execute(...)` may be called several times on the same actors.
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

        with progress_bar("execute (ray)", len(samples)) if progress else _nullbar() as advance:
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


class _nullbar:
    def __enter__(self) -> Callable[..., None]:
        return lambda n=1: None

    def __exit__(self, *exc: object) -> None:
        return None


def execute_on_ray(problems: dict[str, Problem], samples: list[Sample], config: ExecConfig,
                   on_result: Callable[[Result], None] | None = None, progress: bool = True) -> list[Result]:
    """`execute_samples` for ``executor: ray | ray:ADDRESS``: actors for this call, closed at the end."""
    with RayExecutor(config, address=ray_address(config.executor)) as executor:
        results, summary = executor.execute(problems, samples, on_result=on_result, progress=progress)
    if progress:
        for line in summary.lines():
            console.print(line)
    return results
