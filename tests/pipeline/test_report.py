"""The run report: which evaluations it compares, and when it calls a delta a win."""

from __future__ import annotations

import yaml

from codeloop.pipeline.report import eval_rows, head_to_head, write_report
from codeloop.rundir import RunDir


def _eval_stage(run: RunDir, name: str, passed: list[bool], n: int = 1, temperature: float = 0.0,
                adapter_from: str | None = None) -> None:
    raw = {"name": name, "type": "eval", "benchmark": "easy", "n": n, "temperature": temperature,
           **({"adapter_from": adapter_from} if adapter_from else {})}
    stage = run.stage(name)
    stage.open({"type": "eval", "stage": raw})
    results = RunDir(stage.path).stage("results")
    results.open({})
    with results.writer() as out:
        for i, ok in enumerate(passed):
            for j in range(n):
                out.write({"task_id": f"t/{i}", "sample_id": j, "status": "passed" if ok else "failed"})
    results.finish({})
    stage.finish({"_type": "eval", "benchmark": "easy", "split": "test", "problems": len(passed),
                  "adapter_from": adapter_from, "pass@k": {"pass@1": sum(passed) / len(passed)}})


def _run(tmp_path, stages) -> RunDir:
    root = tmp_path / "run"
    root.mkdir()
    (root / "recipe.yaml").write_text(yaml.safe_dump({"name": "r", "stages": [{"name": s[0]} for s in stages]}))
    run = RunDir(root)
    for name, passed, kw in stages:
        _eval_stage(run, name, passed, **kw)
    return run


def test_a_greedy_baseline_is_not_compared_with_a_sampled_arm(tmp_path):
    base = [True, False] * 20
    run = _run(tmp_path, [("greedy_base", base, {}),
                          ("sampled_base", base, {"n": 4, "temperature": 0.8}),
                          ("greedy_arm", [True] * 40, {"adapter_from": "train"}),
                          ("sampled_arm", [True] * 40, {"n": 4, "temperature": 0.8, "adapter_from": "train"})])
    rows = {r["stage"]: r for r in eval_rows(run)}
    assert rows["greedy_arm"]["delta"]["vs"] == "greedy_base"
    assert rows["sampled_arm"]["delta"]["vs"] == "sampled_base"
    assert head_to_head(list(rows.values())) == []  # the two arms were sampled differently


def test_a_delta_is_a_win_only_when_its_interval_excludes_zero(tmp_path):
    base = [i % 2 == 0 for i in range(40)]
    small = list(base)
    small[1] = True  # +1/40: its interval spans 0
    run = _run(tmp_path, [("base", base, {}), ("arm", small, {"adapter_from": "train"})])
    html = write_report(run.root).read_text()
    assert "<span class=''>+0.025</span>" in html
    (tmp_path / "b").mkdir()
    run2 = _run(tmp_path / "b", [("base", base, {}), ("arm", [True] * 40, {"adapter_from": "train"})])
    assert "<span class='good'>+0.500</span>" in write_report(run2.root).read_text()
