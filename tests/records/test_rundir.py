import json
import subprocess
import sys
import textwrap
import time

from codeloop.rundir import RunDir, config_hash

STAGE_SCRIPT = textwrap.dedent("""
    import sys, time
    from codeloop.rundir import RunDir
    root, n, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    stage = RunDir(root).stage("square")
    state = stage.open({"n": n})
    if state.status == "done":
        print("skipped"); sys.exit(0)
    done = stage.done_keys()
    with stage.writer() as out:
        for i in range(n):
            if ("t%d" % i, 0) in done:
                continue
            time.sleep(delay)
            out.write({"task_id": "t%d" % i, "sample_id": 0, "value": i * i})
    stage.finish({"records": n})
    print("finished", state.status)
""")


def _run(root, n, delay, **kw):
    return subprocess.Popen([sys.executable, "-c", STAGE_SCRIPT, str(root), str(n), str(delay)],
                            stdout=subprocess.PIPE, text=True, **kw)


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_killed_stage_resumes_without_loss_or_duplicates(tmp_path):
    root = tmp_path / "run"
    proc = _run(root, 40, 0.05)
    shard = root / "square" / "shard-00000.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until some but not all records are written
        if shard.exists() and shard.read_text().count("\n") >= 5:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    stage = RunDir(root).stage("square")
    partial = stage.records()
    assert 5 <= len(partial) < 40 and not stage.done

    out = _run(root, 40, 0.0).communicate()[0]
    assert "finished resume" in out
    recs = stage.records()
    assert sorted(r["value"] for r in recs) == [i * i for i in range(40)]
    lines = sum(p.read_text().count("\n") for p in stage.shards())
    assert lines == 40, "no record may be written twice"
    assert len(stage.shards()) == 2 and stage.done
    assert json.loads((root / "square" / "metrics.json").read_text()) == {"records": 40}

    assert _run(root, 40, 0.0).communicate()[0].strip() == "skipped"


def test_changed_config_moves_old_stage_aside(tmp_path):
    root = tmp_path / "run"
    assert _run(root, 3, 0.0).communicate()[0].strip() == "finished fresh"
    assert _run(root, 4, 0.0).communicate()[0].strip() == "finished fresh"
    assert (root / "square.stale-1" / "_DONE").exists()
    assert len(RunDir(root).stage("square").records()) == 4
    assert [s.path.name for s in RunDir(root).stages()] == ["square"]


def test_torn_line_is_cut_on_resume(tmp_path):
    stage = RunDir(tmp_path).stage("s")
    stage.open({"x": 1})
    with stage.writer() as w:
        w.write({"task_id": "a", "sample_id": 0})
    with open(stage.shards()[0], "a") as fh:
        fh.write('{"task_id": "b", "sam')
    assert stage.open({"x": 1}).status == "resume"
    assert [r["task_id"] for r in stage.records()] == ["a"]
