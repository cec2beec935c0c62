"""A fleet of Ray actors fed with bounded queues, respawned when lost, retrying what they held."""

from __future__ import annotations

import collections
import time
from typing import Any, Callable

from codeloop.distributed.cluster import infrastructure_errors

START_TIMEOUT_S = 300.0  # no actor ready after this long: the cluster has no room for one


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
                 can_respawn: Callable[[int], bool] | None = None, start_timeout_s: float = START_TIMEOUT_S):
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
