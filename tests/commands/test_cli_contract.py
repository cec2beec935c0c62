"""The CLI contract, through the real CLI: Ctrl-C, user mistakes, file modes, stdout vs stderr,
whole-recipe validation, stale-folder reuse and sweeps. Nothing here needs a model: evaluations use
`model: canonical` (the reference solutions) and `codeloop execute` runs hand-written samples."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codeloop.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _problems(path: Path, n: int = 4, sleep: float = 0.0) -> Path:
    """A jsonl problem set whose reference solutions (optionally) sleep, so a run can be interrupted."""
    body = (f"    import time\n    time.sleep({sleep})\n" if sleep else "") + "    return a + b\n"
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"task_id": f"t/{i}", "prompt": f"def add{i}(a, b):\n", "entry_point": f"add{i}",
                                 "canonical_solution": body,
                                 "test": f"def check(candidate):\n    assert candidate(1, 2) == 3\n"}) + "\n")
    return path


def _samples(path: Path, n: int, sleep: float) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"task_id": "t/0", "sample_id": i,
                                 "completion": f"    import time\n    time.sleep({sleep})\n    return a + b\n"}) + "\n")
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "CODELOOP_QUIET": "1", "PYTHONPATH": str(ROOT / "src")}


def _codeloop(args: list[str], cwd: Path, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    pre = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([sys.executable, "-m", "codeloop", *args], cwd=cwd, env=_env(), text=True,
                          capture_output=True, preexec_fn=pre, timeout=300)


def _interrupt_when(args: list[str], cwd: Path, ready) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    """Start `python -m codeloop ARGS`, send SIGINT (to its process group, as a terminal's Ctrl-C
    does) once `ready()` says it is mid-run, and return what it did."""
    proc = subprocess.Popen([sys.executable, "-m", "codeloop", *args], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def _assert_interrupted(cp: subprocess.CompletedProcess[str]) -> None:
    assert cp.returncode == 130, cp.stderr
    assert "Traceback" not in cp.stderr
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert [line for line in lines if "interrupted" in line] == [lines[-1]], cp.stderr
    assert "rerun" in lines[-1]


# -- 1. Ctrl-C -------------------------------------------------------------------------------------

def test_ctrl_c_in_execute_exits_130_with_one_line_and_the_rerun_resumes(tmp_path):
    probs = _problems(tmp_path / "p.jsonl", n=1)
    samples = _samples(tmp_path / "s.jsonl", 40, 0.5)
    args = ["execute", "--problems", f"jsonl:{probs}", "--samples", str(samples), "--out", "r.jsonl",
            "--workers", "2"]
    partial = tmp_path / "r.jsonl.partial"
    cp = _interrupt_when(args, tmp_path, lambda: _lines(partial) >= 2)
    _assert_interrupted(cp)
    kept = _lines(partial)
    assert 2 <= kept < 40 and not (tmp_path / "r.jsonl").exists()
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob(".*.lock"))
    rerun = _codeloop([*args[:-2], "--workers", "8"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{kept} results reused" in rerun.stderr
    assert _lines(tmp_path / "r.jsonl") == 40


def test_ctrl_c_in_run_exits_130_and_the_rerun_resumes_the_stage(tmp_path):
    probs = _problems(tmp_path / "p.jsonl", n=12, sleep=0.5)
    (tmp_path / "r.yaml").write_text(
        f"name: ci\nmodel: canonical\nstages:\n"
        f"  - {{name: ev, type: eval, benchmark: 'jsonl:{probs}', workers: 1}}\n")
    results = tmp_path / "runs" / "ci" / "ev" / "results"
    cp = _interrupt_when(["run", "r.yaml"], tmp_path,
                         lambda: sum(_lines(p) for p in results.glob("shard-*.jsonl")) >= 2)
    _assert_interrupted(cp)
    assert not (tmp_path / "runs" / "ci" / "ev" / "_DONE").exists()
    rerun = _codeloop(["run", "r.yaml"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr
    assert json.loads((tmp_path / "runs" / "ci" / "ev" / "metrics.json").read_text())["pass@k"]["pass@1"] == 1.0


# -- 2. user mistakes: one line naming the flag / key / file, exit code 2 ---------------------------

def _err(capsys) -> str:  # noqa: ANN001
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("args,named", [
    (["eval", "-m", "canonical", "-b", "easy", "--limit", "-2"], "--limit"),
    (["eval", "-m", "canonical", "-b", "easy", "--workers", "0"], "--workers"),
    (["eval", "-m", "canonical", "-b", "easy", "--timeout", "0"], "--timeout"),
    (["eval", "-m", "canonical", "-b", "easy", "-n", "0"], "-n"),
    (["eval", "-m", "canonical", "-b", "easy", "--k", "-1"], "--k"),
    (["train", "dpo", "pairs.jsonl", "--batch-size", "0"], "--batch-size"),
    (["sft-data", "--limit", "0"], "--limit"),
])
def test_numeric_flags_are_checked_before_any_work(tmp_path, capsys, args, named):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = _err(capsys)
    assert f"{named}:" in err and "per_device" not in err and "Config" not in err
    assert not out.exists()


def test_a_recipe_error_names_the_key_the_user_wrote(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("name: x\nstages:\n  - {name: d, type: sft_data}\n"
                                     "  - {name: dpo, type: train_dpo, input: d, batch_size: 0}\n")
    assert main(["run", str(tmp_path / "r.yaml"), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = _err(capsys)
    assert "stages.dpo.batch_size" in err and "per_device" not in err


def test_a_bad_output_path_is_one_line_naming_the_flag(tmp_path, capsys):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert main(["sft-data", "--limit", "1", "--out", str(a_file)]) == 2  # a folder is needed
    assert "--out" in _err(capsys)
    assert main(["sft-data", "--limit", "1", "--out", str(a_file / "sub")]) == 2  # under a file
    assert "--out" in _err(capsys)
    assert main(["problems", "export", "easy", "--limit", "1", "-o", str(tmp_path)]) == 2  # a directory
    assert "--out" in _err(capsys)
    (tmp_path / "r.yaml").write_text("name: x\nmodel: canonical\nstages:\n  - {name: d, type: sft_data, limit: 1}\n")
    assert main(["run", str(tmp_path / "r.yaml"), "--runs-dir", str(a_file)]) == 2
    assert "--runs-dir" in _err(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_folder_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert main(["sft-data", "--limit", "1", "--out", str(ro / "d")]) == 2
    assert "--out" in _err(capsys)


def test_passk_reads_an_eval_folder(tmp_path, capsys):
    assert main(["eval", "-m", "canonical", "-b", "easy", "--limit", "2", "--out", str(tmp_path / "ev")]) == 0
    capsys.readouterr()
    assert main(["passk", str(tmp_path / "ev")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"pass@1": 1.0}


def test_a_second_process_on_the_same_output_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys):
    probs = _problems(tmp_path / "p.jsonl", n=1)
    samples = _samples(tmp_path / "s.jsonl", 2, 0)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".r.jsonl.lock").write_text(f"{holder.pid} host\n")
        args = ["execute", "--problems", f"jsonl:{probs}", "--samples", str(samples), "--out", str(tmp_path / "r.jsonl")]
        assert main(args) == 2
        err = _err(capsys)
        assert "r.jsonl" in err and f"pid {holder.pid}" in err
        (tmp_path / "runs" / ".ci.lock").parent.mkdir()
        (tmp_path / "runs" / ".ci.lock").write_text(f"{holder.pid} host\n")
        (tmp_path / "r.yaml").write_text("name: ci\nmodel: canonical\nstages:\n  - {name: d, type: sft_data, limit: 1}\n")
        assert main(["run", str(tmp_path / "r.yaml"), "--runs-dir", str(tmp_path / "runs")]) == 2
        err = _err(capsys)
        assert "ci" in err and f"pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and taken over
    assert main(args) == 0
    assert main(["run", str(tmp_path / "r.yaml"), "--runs-dir", str(tmp_path / "runs")]) == 0
    assert not (tmp_path / ".r.jsonl.lock").exists() and not (tmp_path / "runs" / ".ci.lock").exists()


def test_markup_does_not_eat_brackets_in_messages(tmp_path, capsys):
    pytest.importorskip("codeloop.generation")
    if __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    main(["eval", "--backend", "vllm", "-b", "easy", "--limit", "1", "--out", str(tmp_path / "e")])
    assert "codeloop[vllm]" in _err(capsys)


# -- 3. files written with the user's umask ----------------------------------------------------------

def test_files_get_the_users_umask(tmp_path):
    cp = _codeloop(["problems", "export", "easy", "--limit", "2", "-o", "p.jsonl"], tmp_path, umask=0o022)
    assert cp.returncode == 0, cp.stderr
    (tmp_path / "r.yaml").write_text("name: m\nmodel: canonical\nstages:\n"
                                     "  - {name: ev, type: eval, benchmark: easy, limit: 2}\n")
    cp = _codeloop(["run", "r.yaml"], tmp_path, umask=0o022)
    assert cp.returncode == 0, cp.stderr
    files = [tmp_path / "p.jsonl", *[p for p in (tmp_path / "runs").rglob("*") if p.is_file()]]
    assert len(files) > 5
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    for p in (tmp_path / "runs").rglob("*"):
        if p.is_dir():
            assert stat.S_IMODE(p.stat().st_mode) == 0o755, p


# -- 4. tables to stdout, progress and logs to stderr ---------------------------------------------------

def test_tables_go_to_stdout_and_the_summary_to_stderr(tmp_path):
    cp = _codeloop(["eval", "-m", "canonical", "-b", "easy", "--limit", "2", "--out", "a"], tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert "✓" in cp.stderr and "✓" not in cp.stdout  # a step command: its summary on stderr
    cp = _codeloop(["passk", "a", "--per-problem"], tmp_path)  # a hand-written command
    assert cp.returncode == 0 and "per problem" in cp.stdout and "pass@1=" in cp.stderr
    assert "per problem" not in cp.stderr
    cp = _codeloop(["eval", "compare", "a", "a"], tmp_path)  # a subcommand of a step group
    assert cp.returncode == 0 and "95% CI" in cp.stdout and "solved by B only" in cp.stdout
    assert "95% CI" not in cp.stderr and "flips" in cp.stderr
    cp = _codeloop(["problems", "list"], tmp_path)  # a listing
    assert cp.returncode == 0 and "humaneval" in cp.stdout and "humaneval" not in cp.stderr
    (tmp_path / "r.yaml").write_text("name: t\nmodel: canonical\nstages:\n  - {name: d, type: sft_data, limit: 1}\n")
    assert _codeloop(["run", "r.yaml"], tmp_path).returncode == 0
    cp = _codeloop(["runs", "list"], tmp_path)
    assert cp.returncode == 0 and "stages done" in cp.stdout and "stages done" not in cp.stderr


# -- 5. whole-recipe validation before any folder moves; .stale-N reused ----------------------------

@pytest.mark.parametrize("bad,named", [
    ("{name: ev, type: eval, benchmark: 'jsonl:nope.jsonl'}", "stages.ev.benchmark"),
    ("{name: ev, type: eval, benchmark: eazy}", "stages.ev.benchmark"),
    ("{name: ev, type: eval, benchmark: easy, model: ./no-such-model}", "stages.ev.model"),
    ("{name: ev, type: eval, benchmark: 'mbpp:missing/mbpp.jsonl'}", "stages.ev.benchmark"),
    ("{name: ev, type: eval, benchmark: easy, split: tset}", "stages.ev.split"),
    ("{name: ev, type: sft_data, problems: 'jsonl:nope.jsonl'}", "stages.ev.problems"),
])
def test_a_bad_later_stage_fails_at_load_before_earlier_work_moves(tmp_path, capsys, bad, named):
    good = "name: v\nmodel: canonical\nstages:\n  - {name: d, type: sft_data, limit: 2}\n"
    (tmp_path / "r.yaml").write_text(good)
    runs = tmp_path / "runs"
    assert main(["run", str(tmp_path / "r.yaml"), "--runs-dir", str(runs)]) == 0
    capsys.readouterr()
    # the first stage changed (it would move aside) and the last stage is wrong: nothing may move
    (tmp_path / "r.yaml").write_text(good.replace("limit: 2", "limit: 1") + f"  - {bad}\n")
    before = sorted(p.name for p in runs.joinpath("v").iterdir())
    assert main(["run", str(tmp_path / "r.yaml"), "--runs-dir", str(runs)]) == 2
    assert named in _err(capsys)
    assert sorted(p.name for p in runs.joinpath("v").iterdir()) == before


@pytest.mark.parametrize("top,named", [("model: ./no/such/model", "model"), ("executor: rau", "executor")])
def test_recipe_model_and_executor_are_checked_at_load(tmp_path, capsys, top, named):
    (tmp_path / "r.yaml").write_text(f"name: v\n{top}\nstages:\n  - {{name: d, type: sft_data, limit: 1}}\n")
    assert main(["run", str(tmp_path / "r.yaml"), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert f": {named}" in _err(capsys)
    assert not (tmp_path / "runs").exists()


def test_a_stage_whose_settings_change_back_reuses_its_stale_folder(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("name: s\nmodel: canonical\nvars: {limit: 2}\nstages:\n"
                                     "  - {name: ev, type: eval, benchmark: easy, limit: '${limit}'}\n")
    run = ["run", str(tmp_path / "r.yaml"), "--runs-dir", str(tmp_path / "runs")]
    assert main(run) == 0
    assert main([*run, "vars.limit=3"]) == 0  # changed: the limit-2 work moves aside to ev.stale-1
    assert (tmp_path / "runs" / "s" / "ev.stale-1").is_dir()
    capsys.readouterr()
    assert main(run) == 0  # changed back: ev.stale-1 is the same config again, moved back and skipped
    err = capsys.readouterr().err
    assert "reusing the earlier work" in err and "1 skipped" in err
    assert json.loads((tmp_path / "runs" / "s" / "ev" / "metrics.json").read_text())["problems"] == 2
    (kept,) = (tmp_path / "runs" / "s").glob("ev.stale-*")  # the limit-3 work, kept aside in its turn
    assert json.loads((kept / "metrics.json").read_text())["problems"] == 3


# -- 6. sweeps ------------------------------------------------------------------------------------------

SWEEP_RECIPE = ("name: sw\nmodel: canonical\n{sweep}stages:\n"
                "  - {{name: data, type: sft_data, limit: 2}}\n"
                "  - {{name: base, type: eval, benchmark: easy, limit: 3}}\n"
                "  - {{name: after, type: eval, benchmark: easy, limit: 3}}\n")


@pytest.mark.parametrize("how", ["command line", "recipe key"])
def test_a_seed_sweep_runs_one_run_per_seed_and_pools_them(tmp_path, capsys, how):
    sweep = "sweep: {seed: [0, 1]}\n" if how == "recipe key" else ""
    (tmp_path / "r.yaml").write_text(SWEEP_RECIPE.format(sweep=sweep))
    args = ["run", str(tmp_path / "r.yaml"), "--runs-dir", str(tmp_path / "runs")]
    if how == "command line":
        args.append("seed=0,1")
    assert main(args) == 0
    runs = tmp_path / "runs"
    for seed in (0, 1):
        assert (runs / f"sw-seed{seed}" / "after" / "_DONE").exists()
        import yaml

        assert yaml.safe_load((runs / f"sw-seed{seed}" / "recipe.yaml").read_text())["seed"] == seed
    pooled = json.loads((runs / "sw-sweep" / "sweep.json").read_text())
    assert (runs / "sw-sweep" / "report.html").exists()
    assert set(pooled["runs"]) == {"seed0", "seed1"}
    assert [a["arm"] for a in pooled["arms"]] == ["base", "after"]
    assert pooled["arms"][0]["pass@k"]["pass@1"] == 1.0 and pooled["arms"][0]["runs"] == 2
    (delta,) = pooled["deltas"]
    assert (delta["a"], delta["b"], delta["pairs"]) == ("base", "after", 6)  # 3 problems x 2 seeds
    assert delta["delta"] == 0.0 and delta["ci"] == [0.0, 0.0]
    capsys.readouterr()
    assert main(args) == 0  # a rerun: every stage of every run is skipped
    assert capsys.readouterr().err.count("done earlier, same config") == 6


def test_a_sweep_over_an_undefined_variable_is_refused(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(SWEEP_RECIPE.format(sweep=""))
    assert main(["run", str(tmp_path / "r.yaml"), "--runs-dir", str(tmp_path / "runs"), "vars.lim=1,2"]) == 2
    assert "vars.lim" in _err(capsys)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv", [
    ["sample", "--problems", "easy", "--limit", "1", "-n", "1"],
    ["score", "in.jsonl"],
    ["lintseq", "--data", "in.jsonl"],
    ["select", "random", "--data", "in.jsonl"],
])
def test_hand_written_commands_refuse_an_output_in_use(tmp_path, capsys, argv):
    from codeloop.rundir import lock_path

    out = tmp_path / "out.jsonl"
    lock_path(out).write_text("1 elsewhere\n")  # pid 1 is alive: another process holds this output
    rc = main(argv + ["--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "in use by another codeloop process (pid 1)" in err, err
    assert not out.exists()
