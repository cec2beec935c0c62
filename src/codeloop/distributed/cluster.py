"""Connecting to a Ray cluster: Ray imported on use, a dead head refused fast, infrastructure errors named."""

from __future__ import annotations

import os
from typing import Any

from codeloop.console import console
from codeloop.errors import MissingDependency, UserError


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependency("the ray executor", "ray", "ray") from None
    return ray


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
