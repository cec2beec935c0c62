"""Ray scale-out: a real two-node Ray cluster on this machine (head + one worker node, one CPU each).

Skipped, with the reason, when Ray is not installed or the cluster cannot start here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter

import pytest

from codeloop.cli import main
from codeloop.errors import MissingDependency, UserError
from codeloop.execution import ExecConfig, execute_samples
from codeloop.distributed import import_ray
from codeloop.execution.executor import ray_address
from codeloop.execution.ray_executor import RayExecutor
from codeloop.problems import load_problems
from codeloop.records import Problem, Result, Sample, read_jsonl, write_jsonl

_CLUSTER_START_LIMIT_S = 120


def _start_cluster():
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 80 << 20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    import ray

    ray.init(address=cluster.address, logging_level="ERROR")
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'codeloop[ray]')")

    def too_slow(signum, frame):
        raise TimeoutError(f"no cluster after {_CLUSTER_START_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, too_slow)  # Ray must start in the main thread: guard with an alarm
    signal.alarm(_CLUSTER_START_LIMIT_S)
    try:
        cluster = _start_cluster()
    except Exception as exc:  # Ray could not start on this machine: say why and skip
        pytest.skip(f"a local Ray cluster cannot start here: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _key(r: Result) -> tuple:
    # a timeout's detail says how long it ran ("1.01 s"): the only part that may differ between runs
    return (r.task_id, r.sample_id, r.status, r.passed_tests, r.total_tests, re.sub(r"[\d.]+ s\b", "N s", r.detail),
            r.code)


def _mixed_humaneval() -> tuple[list[Problem], list[Sample]]:
    """Every canonical solution (passes), wrong answers, crashes, a lie on stdout, two timeouts."""
    problems = load_problems("humaneval")
    samples = [Sample(task_id=p.task_id, sample_id=0, completion=p.canonical_solution) for p in problems]
    for p in problems[:12]:
        samples.append(Sample(task_id=p.task_id, sample_id=1, completion="    return None\n"))
        samples.append(Sample(task_id=p.task_id, sample_id=2, completion="    raise ValueError('no')\n"))
    samples.append(Sample(task_id=problems[0].task_id, sample_id=3,
                          completion="    print('passed 7/7')\n    import os\n    os._exit(0)\n"))
    for i in (1, 2):
        samples.append(Sample(task_id=problems[i].task_id, sample_id=4, completion="    while True:\n        pass\n"))
    return problems, samples


def test_identical_verdicts_local_and_ray_on_two_nodes(ray_cluster):
    problems, samples = _mixed_humaneval()
    cfg = ExecConfig(workers=2, timeout_s=1.0, memory_mb=512)
    local = execute_samples(problems, samples, cfg, progress=False)
    seen: list[tuple[str, int]] = []
    with RayExecutor(cfg, cores_per_actor=1) as ex:
        infos = ex.actor_infos()
        results, summary = ex.execute(problems, samples, on_result=lambda r: seen.append((r.task_id, r.sample_id)),
                                      progress=False)
    assert len(infos) == 2 and len({i["node_id"] for i in infos}) == 2  # one actor on each node
    if os.geteuid() == 0:  # inside Ray workers the sandbox still gets its uid and network namespace
        assert all(i["isolation"]["level"] == "full" for i in infos)
    assert [_key(r) for r in results] == [_key(r) for r in local]
    statuses = Counter(r.status for r in results)
    assert statuses["passed"] == 164 and statuses["timeout"] == 2 and statuses["failed"] + statuses["error"] == 25
    assert sorted(seen) == sorted((s.task_id, s.sample_id) for s in samples)  # on_result once per sample
    assert summary.executions == len(samples) and summary.retried_batches == 0
    assert len(summary.nodes) == 2 and sum(n.executions for n in summary.nodes.values()) == len(samples)
    assert all(n.executions > 0 and n.actors == 1 for n in summary.nodes.values())
    assert "node(s)" in summary.lines()[0] and len(summary.lines()) == 3


SLOW = Problem(task_id="slow/double", prompt="def double(x):\n", entry_point="double",
               test="assert double(2) == 4\nassert double(-1) == -2\n", meta={"test_format": "asserts"})


def _slow_samples(n: int) -> list[Sample]:
    # Each execution takes ~50 ms so that batches are still in flight when an actor is killed.
    right = "    import time\n    time.sleep(0.05)\n    return 2 * x\n"
    wrong = "    import time\n    time.sleep(0.05)\n    return x + 1\n"
    return [Sample(task_id=SLOW.task_id, sample_id=i, completion=right if i % 2 == 0 else wrong) for i in range(n)]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_killed_actor_mid_job_loses_and_repeats_nothing(ray_cluster):
    samples = _slow_samples(96)
    calls: Counter = Counter()
    killed: dict = {}
    with RayExecutor(ExecConfig(timeout_s=5.0, memory_mb=512), cores_per_actor=1, batch_size=4) as ex:
        victim = ex.actor_infos()[0]

        def on_result(r: Result) -> None:
            calls[r.sample_id] += 1
            if sum(calls.values()) == 8 and not killed:
                os.kill(victim["pid"], signal.SIGKILL)  # the actor process itself, mid-job
                killed["at"] = True

        results, summary = ex.execute([SLOW], samples, on_result=on_result, progress=False)
        assert killed
        assert summary.lost_actors >= 1 and summary.retried_batches >= 1
        assert calls == Counter({i: 1 for i in range(96)})  # each sample recorded exactly once
        assert [r.sample_id for r in results] == list(range(96))
        # infrastructure failures are retried, never recorded as failed samples
        assert [r.status for r in results] == ["passed" if i % 2 == 0 else "failed" for i in range(96)]
        assert len(ex.actor_infos()) == 2  # the lost actor was replaced on its (still alive) node
    # the dead actor's sandbox workers went away with it
    deadline = time.monotonic() + 30
    while not all(_gone(p) for p in victim["sandbox_pids"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(_gone(p) for p in victim["sandbox_pids"]), victim["sandbox_pids"]


def test_execute_samples_dispatches_on_executor_value(ray_cluster):
    samples = _slow_samples(6)
    cfg = ExecConfig(timeout_s=5.0, memory_mb=512, executor=f"ray:{ray_cluster.address}")
    got: list[int] = []
    results = execute_samples([SLOW], samples, cfg, on_result=lambda r: got.append(r.sample_id), progress=False)
    assert [r.status for r in results] == ["passed", "failed"] * 3
    assert sorted(got) == list(range(6))


def test_cli_execute_with_ray_executor_resumes(ray_cluster, tmp_path, capsys):
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [SLOW])
    samples = tmp_path / "samples.jsonl"
    write_jsonl(samples, _slow_samples(5))
    out = tmp_path / "results.jsonl"
    kept = Result(task_id=SLOW.task_id, sample_id=1, status="failed", detail="from before")
    (tmp_path / "results.jsonl.partial").write_text(json.dumps(kept.__dict__) + "\n")
    rc = main(["execute", "--problems", f"jsonl:{problems}", "--samples", str(samples), "--out", str(out),
               "--executor", f"ray:{ray_cluster.address}", "--timeout", "5"])
    assert rc == 0
    rs = read_jsonl(out, Result)
    assert [(r.sample_id, r.status) for r in rs] == [(0, "passed"), (1, "failed"), (2, "passed"), (3, "failed"),
                                                     (4, "passed")]
    assert rs[1].detail == "from before"  # resumed, not rerun
    err = capsys.readouterr().err
    assert "ray: 4 executions" in err and "resuming: 1 results" in err


def test_without_ray_the_message_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependency, match=r"codeloop\[ray\]"):
        import_ray()


def test_executor_values():
    assert ray_address("ray") is None
    assert ray_address("ray:10.0.0.1:6379") == "10.0.0.1:6379"
    assert ray_address("ray:ray://head:10001") == "ray://head:10001"
    with pytest.raises(UserError):
        ray_address("ray:")
    with pytest.raises(UserError, match="executor"):
        ExecConfig(executor="spark").validate()


def test_sampling_on_two_cpu_engines_matches_the_local_path_shard_by_shard(ray_cluster, tiny_model_dir):
    import torch

    from codeloop.generation import GenerationParams, generate
    from codeloop.generation.ray_sampling import sample_on_ray, shard_plan

    problems = load_problems("humaneval", limit=5)
    params = GenerationParams(n=2, temperature=0.8, max_new_tokens=6, seed=7, batch_size=4)
    streamed: list[tuple[str, int]] = []
    got = sample_on_ray(problems, params, model=str(tiny_model_dir), backend="hf", engines=2, cpus_per_engine=1,
                        shard_size=2, on_sample=lambda s: streamed.append((s.task_id, s.sample_id)),
                        progress=False, device="cpu", dtype="fp32")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each engine, so float sums add up in the same order
    try:
        want = []
        for a, b in shard_plan(len(problems), 2):
            want += generate(problems[a:b], params.replace(seed=params.seed + a), model=str(tiny_model_dir),
                             backend="hf", device="cpu", dtype="fp32")
    finally:
        torch.set_num_threads(threads)
    for s in want:
        s.params["seed"] = params.seed
    assert [(s.task_id, s.sample_id) for s in got] == [(p.task_id, j) for p in problems for j in range(2)]
    assert [(s.completion, s.code, s.params, s.n_tokens) for s in got] == \
        [(s.completion, s.code, s.params, s.n_tokens) for s in want]
    assert [s.logprob for s in got] == pytest.approx([s.logprob for s in want], abs=1e-4)
    assert sorted(streamed) == sorted((s.task_id, s.sample_id) for s in got)  # each once
    assert len({s.completion for s in got}) > 1  # sampled, not one repeated string


def test_cli_eval_with_ray_executor(ray_cluster, tmp_path):
    out = tmp_path / "eval"
    rc = main(["eval", "--benchmark", "humaneval", "--limit", "6", "--model", "canonical",
               "--executor", f"ray:{ray_cluster.address}", "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pass@k"]["pass@1"] == 1.0
    # where it ran is recorded with the results (not in the stage hash: it changes no verdict)
    assert json.loads((out / "results" / "metrics.json").read_text())["executor"] == f"ray:{ray_cluster.address}"


def test_recipe_switches_executor_with_one_value(ray_cluster, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: on_ray\nexecutor: local\nstages:\n"
                      "  - {name: check, type: eval, benchmark: humaneval, limit: 4, model: canonical}\n")
    rc = main(["run", str(recipe), f"executor=ray:{ray_cluster.address}", "--runs-dir", str(tmp_path / "runs"),
               "--no-report"])
    assert rc == 0
    stage = tmp_path / "runs" / "on_ray" / "check"
    assert json.loads((stage / "metrics.json").read_text())["pass@k"]["pass@1"] == 1.0
    assert json.loads((stage / "results" / "metrics.json").read_text())["executor"] == f"ray:{ray_cluster.address}"


def test_unreachable_head_is_a_user_error_not_a_long_hang():
    import socket

    from codeloop.distributed.cluster import _probe

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match="cannot reach the Ray head") as e:
        _probe(f"127.0.0.1:{port}")
    assert e.value.where == "--executor"
    with pytest.raises(UserError, match="HOST:PORT"):
        _probe("just-a-host")


@pytest.mark.slow
def test_node_lost_mid_job_batches_move_to_the_surviving_nodes(ray_cluster):
    extra = ray_cluster.add_node(num_cpus=1, object_store_memory=80 << 20)
    ray_cluster.wait_for_nodes()
    samples = _slow_samples(120)
    calls: Counter = Counter()
    removed: dict = {}
    with RayExecutor(ExecConfig(timeout_s=5.0, memory_mb=512), cores_per_actor=1, batch_size=4) as ex:
        infos = ex.actor_infos()
        assert len({i["node_id"] for i in infos}) == 3

        def on_result(r: Result) -> None:
            calls[r.sample_id] += 1
            if sum(calls.values()) == 8 and not removed:
                ray_cluster.remove_node(extra, allow_graceful=False)  # the node's raylet and workers die
                removed["at"] = time.monotonic()

        results, summary = ex.execute([SLOW], samples, on_result=on_result, progress=False)
    assert removed
    assert calls == Counter({i: 1 for i in range(120)})
    assert [r.status for r in results] == ["passed" if i % 2 == 0 else "failed" for i in range(120)]
    assert summary.lost_actors >= 1 and summary.retried_batches >= 1
