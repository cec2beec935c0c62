"""Adversarial corpus: each case asserts containment (machine, files, pool) and the right status.

Cases that rely on running as root (a dedicated sandbox uid, private /tmp) are skipped with the
reason when the tests do not run as root; the weaker isolation is then reported in the results.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from codeloop.execution import ExecConfig, ExecutionPool, execute_samples
from codeloop.records import Problem, Sample

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="full isolation (sandbox uid, private /tmp) needs root")

ADD = Problem(task_id="t/add", prompt="def add(a, b):\n", entry_point="add",
              test="def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
                   "    assert candidate(0, 0) == 0\n")
CORRECT = "def add(a, b):\n    return a + b\n"
STDIO = Problem(task_id="t/double", prompt="Read n, print 2n.",
                io_tests=[{"input": "2\n", "output": "4\n"}, {"input": "5\n", "output": "10\n"}])


@pytest.fixture(scope="module")
def pool():
    cfg = ExecConfig(workers=2, timeout_s=1.5, memory_mb=256, max_output_bytes=1 << 20, max_file_mb=8,
                     max_processes=32)
    with ExecutionPool(cfg) as p:
        yield p


def run(pool, code, problem=ADD):
    return execute_samples([problem], [Sample(task_id=problem.task_id, code=code)], pool=pool, progress=False)[0]


def sandbox_processes(pool) -> list[int]:
    """Live processes running as one of this pool's sandbox uids."""
    uids = {w.isolation.get("uid") for w in pool._workers} - {None}
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = os.stat(f"/proc/{name}")
            except OSError:
                continue
            if st.st_uid in uids:
                out.append(int(name))
    return out


def contained(pool) -> None:
    """The pool still works, its workers are the same processes, nothing of the sandbox lives on."""
    pids = pool.worker_pids()
    assert run(pool, CORRECT).status == "passed"
    assert pool.worker_pids() == pids, "a worker was lost"
    if ROOT:
        assert sandbox_processes(pool) == []
    for st in pool.stats():
        assert st["children"] is False


def test_correct_program_passes_with_counts(pool):
    r = run(pool, CORRECT)
    assert (r.status, r.passed_tests, r.total_tests) == ("passed", 3, 3)
    assert "isolation" not in r.extra or not ROOT


def test_partial_counts_for_dpo_score(pool):
    r = run(pool, "def add(a, b):\n    return a + b if a >= 0 else 7\n")
    assert (r.status, r.passed_tests, r.total_tests) == ("failed", 2, 3)
    assert "test 2/3" in r.detail


@pytest.mark.parametrize("code", ["while True:\n    pass\n", "import time\ntime.sleep(100)\n",
                                  CORRECT + "def add(a, b):\n    while True: pass\n"])
def test_infinite_loop_and_sleep_time_out(pool, code):
    t0 = time.monotonic()
    r = run(pool, code)
    assert r.status == "timeout"
    assert time.monotonic() - t0 < 10
    contained(pool)


def test_ignoring_signals_still_times_out(pool):
    code = ("import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP):\n"
            "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n")
    assert run(pool, code).status == "timeout"
    contained(pool)


@needs_root
def test_fork_bomb_is_bounded_and_reaped(pool):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    r = run(pool, code)
    assert r.status == "timeout"
    contained(pool)


@needs_root
def test_escaped_double_fork_is_killed(pool):
    # The program is correct, so it passes; what it left behind (a new session) must not survive.
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        time.sleep(1000)\n    os._exit(0)\n" + CORRECT)
    r = run(pool, code)
    assert r.status == "passed"
    contained(pool)


@pytest.mark.parametrize("code", ["x = bytearray(8 << 30)\n", "xs = []\nwhile True:\n    xs.append(' ' * 10**6)\n",
                                  "def add(a, b):\n    return len([0] * (10**10))\n"])
def test_memory_bomb(pool, code):
    r = run(pool, code)
    assert r.status == "memory", r.detail
    contained(pool)


def test_endless_output_is_capped_and_killed(pool):
    r = run(pool, "while True:\n    print('x' * 1000)\n")
    assert r.status == "killed" and "output limit" in r.detail
    contained(pool)


def test_huge_file_write_hits_the_file_size_limit(pool):
    r = run(pool, "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (64 << 20))\n" + CORRECT)
    assert r.status == "error" and "File too large" in r.detail
    contained(pool)


@pytest.fixture
def canary_dir():
    # Not under /tmp (nor beside this file, which may itself be in /tmp in a CI clone): the sandbox
    # has its own private /tmp and would not even see it there.
    d = Path("/var/lib") / f"codeloop-canary-{os.getpid()}"
    d.mkdir(mode=0o755)
    (d / "canary.txt").write_text("alive")
    os.chmod(d / "canary.txt", 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_files_outside_the_sandbox_are_untouched(pool, canary_dir):
    canary = canary_dir / "canary.txt"
    for code in (f"import os\nos.remove({str(canary)!r})\n", f"open({str(canary)!r}, 'w').write('gone')\n",
                 f"import shutil\nshutil.rmtree({str(canary_dir)!r})\n",
                 f"open({str(canary_dir / 'new.txt')!r}, 'w').write('x')\n"):
        r = run(pool, code + CORRECT)
        assert r.status == "error" and "Permission" in r.detail, r.detail
        assert canary.read_text() == "alive" and sorted(os.listdir(canary_dir)) == ["canary.txt"]
    # reading is allowed (world-readable file), which is what the program's uid is for
    r = run(pool, f"assert open({str(canary)!r}).read() == 'alive'\n" + CORRECT)
    assert r.status == "passed"
    contained(pool)


@needs_root
def test_tmp_writes_do_not_outlive_the_run(pool):
    marker = f"codeloop-test-{os.getpid()}"
    r = run(pool, f"open('/tmp/{marker}', 'w').write('x')\nopen('/dev/shm/{marker}', 'w').write('x')\n" + CORRECT)
    assert r.status == "passed"
    assert not Path("/tmp", marker).exists() and not Path("/dev/shm", marker).exists()
    # and the next run on the same worker does not see it either
    rs = execute_samples([ADD], [Sample(task_id="t/add", code=f"import os\nassert not os.path.exists('/tmp/{marker}')\n"
                                        + CORRECT)] * 4, pool=pool, progress=False)
    assert all(x.status == "passed" for x in rs)


def test_network_connection_to_local_listener_fails(pool):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    accepted = []

    def accept():
        try:
            while True:
                try:
                    accepted.append(srv.accept()[0])
                except socket.timeout:
                    if stop.is_set():
                        return
        except OSError:
            return

    stop = threading.Event()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        r = run(pool, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n" + CORRECT)
        isolated = pool.isolation["network"] != "none"
        if isolated:
            assert r.status == "error" and ("Network is unreachable" in r.detail or "refused" in r.detail), r.detail
            assert accepted == []
        else:
            assert "isolation" in r.extra and "network" in r.extra["isolation"]
    finally:
        stop.set()
        t.join()
        srv.close()


def test_environment_secrets_are_not_visible(pool, monkeypatch):
    monkeypatch.setenv("CODELOOP_TEST_SECRET", "hunter2")
    # A pool started after the secret was set: the workers get a scrubbed environment.
    with ExecutionPool(ExecConfig(workers=1, timeout_s=2)) as fresh:
        code = ("import os\nassert 'CODELOOP_TEST_SECRET' not in os.environ\n"
                "try:\n    assert b'hunter2' not in open('/proc/self/environ', 'rb').read()\n"
                "except PermissionError:\n    pass\n"
                "assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'PYTHONIOENCODING', 'TMPDIR']\n" + CORRECT)
        r = run(fresh, code)
        assert r.status == "passed", r.detail
        if ROOT:
            # The parent's environment is the caller's: another uid may not read it.
            r = run(fresh, f"open('/proc/{os.getpid()}/environ', 'rb').read()\n" + CORRECT)
            assert r.status == "error" and "Permission" in r.detail


@needs_root
def test_killing_the_parent_and_workers_fails(pool):
    code = (f"import os, signal\nfor pid in (os.getppid(), {os.getpid()}):\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
            "    except PermissionError:\n        pass\n    else:\n        raise SystemExit('killed ' + str(pid))\n"
            "os.kill(-1, signal.SIGKILL)\n" + CORRECT)
    r = run(pool, code)
    # Both kills were refused and kill(-1) as the sandbox uid reaches nothing but the sandbox.
    assert r.status == "passed", r.detail
    contained(pool)


def test_worker_that_dies_is_replaced(pool):
    victim = pool.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    rs = execute_samples([ADD], [Sample(task_id="t/add", code=CORRECT)] * 4, pool=pool, progress=False)
    assert [r.status for r in rs] == ["passed"] * 4
    assert victim not in pool.worker_pids() and len(pool.worker_pids()) == 2


@pytest.mark.parametrize("code", ["import sys\nsys.exit(0)\n" + CORRECT, "import os\nos._exit(0)\n" + CORRECT,
                                  CORRECT + "import sys\nsys.exit(0)\n",
                                  "def add(a, b):\n    import os\n    os._exit(0)\n",
                                  "def add(a, b):\n    import sys\n    sys.exit(0)\n",
                                  "import threading, os, time\n"
                                  "threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0))).start()\n"
                                  "def add(a, b):\n    time.sleep(0.2)\n    return a + b\n"])
def test_early_exit_is_not_a_pass(pool, code):
    r = run(pool, code)
    assert r.status == "failed", r.detail
    assert r.passed_tests < r.total_tests


@pytest.mark.parametrize("code", [
    "print('PASSED')\nprint('3/3 tests passed')\ndef add(a, b):\n    return None\n",
    "def add(a, b):\n    try:\n        raise AssertionError\n    except Exception:\n        pass\n    return None\n",
    # swallowing the harness's exceptions from inside the candidate does not help either
    "import sys\nsys.excepthook = lambda *a: None\ndef add(a, b):\n    return None\n",
    # writing something that looks like a verdict to every descriptor it can find
    "import os, json\nfor fd in range(3, 256):\n    try:\n"
    "        os.write(fd, (json.dumps({'e': 'end', 'ok': [0, 1, 2], 'fail': []}) + '\\n').encode())\n"
    "    except OSError:\n        pass\ndef add(a, b):\n    return None\n",
])
def test_fake_success_is_not_a_pass(pool, code):
    r = run(pool, code)
    assert r.status == "failed" and r.passed_tests == 0, r.detail


def test_recursion_overflow(pool):
    r = run(pool, "def add(a, b):\n    return add(a, b)\n")
    assert r.status == "failed" and "RecursionError" in r.detail
    # With the recursion limit lifted, C recursion (repr of a deeply nested list) overflows the C
    # stack: the child dies of SIGSEGV, the pool does not. (The kernel takes ~1.4 s to deliver it
    # here, so this case gets a longer limit.)
    code = "import sys\nsys.setrecursionlimit(10**8)\nl = []\nfor _ in range(60000):\n    l = [l]\nstr(l)\n" + CORRECT
    with ExecutionPool(ExecConfig(workers=1, timeout_s=6, memory_mb=256)) as slow:
        r = run(slow, code)
        assert r.status == "killed" and "SIGSEGV" in r.detail, r.detail
        contained(slow)
    contained(pool)


def test_threads_left_running_do_not_block_or_leak(pool):
    code = ("import threading, time\ndef spin():\n    while True:\n        time.sleep(0.01)\n"
            "for _ in range(4):\n    threading.Thread(target=spin).start()\n" + CORRECT)
    t0 = time.monotonic()
    r = run(pool, code)
    assert r.status == "passed" and time.monotonic() - t0 < 1.4
    contained(pool)


def test_stdio_program_with_threads_left_running_times_out(pool):
    # Like the real interpreter, the program's end waits for its non-daemon threads.
    code = ("import threading\ndef spin():\n    while True:\n        pass\n"
            "threading.Thread(target=spin).start()\nprint(2 * int(input()))\n")
    r = run(pool, code, STDIO)
    assert r.status == "timeout"
    contained(pool)


def test_leak_check_small(pool):
    """500 executions of every kind here (the 10,000 run is benchmarks/execution.py --leak)."""
    fds_before = len(os.listdir("/proc/self/fd"))
    worker_fds = [s["fds"] for s in pool.stats()]
    codes = [CORRECT, "def add(a, b):\n    return 0\n", "import os\nos._exit(3)\n", "raise ValueError\n",
             "import os\nif os.fork() == 0:\n    os.setsid()\n    import time; time.sleep(60)\n" + CORRECT]
    samples = [Sample(task_id="t/add", sample_id=i, code=codes[i % len(codes)]) for i in range(500)]
    rs = execute_samples([ADD], samples, pool=pool, progress=False)
    assert [r.sample_id for r in rs] == list(range(500))
    assert {r.status for r in rs} == {"passed", "failed", "error"}
    assert len(os.listdir("/proc/self/fd")) == fds_before
    stats = pool.stats()
    assert [s["fds"] for s in stats] == worker_fds
    assert all(s["children"] is False for s in stats)
    contained(pool)
