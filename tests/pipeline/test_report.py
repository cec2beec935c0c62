"""The run report: which evaluations it compares, and when it calls a delta a win."""

from __future__ import annotations

import pytest
import yaml

from codeloop.pipeline.report import eval_rows, head_to_head, write_report
from codeloop.rundir import RunDir


def _eval_stage(run: RunDir, name: str, passed: list, n: int = 1, temperature: float = 0.0,
                adapter_from: str | None = None, kind: str = "eval") -> None:
    """`passed[i]`: problem i's verdict for all n samples, or how many of its n samples pass."""
    raw = {"name": name, "type": kind, "benchmark": "easy", "n": n, "temperature": temperature,
           **({"adapter_from": adapter_from} if adapter_from else {})}
    stage = run.stage(name)
    stage.open({"type": kind, "stage": raw})
    results = RunDir(stage.path).stage("results")
    results.open({})
    with results.writer() as out:
        for i, ok in enumerate(passed):
            good = n * ok if isinstance(ok, bool) else ok
            for j in range(n):
                out.write({"task_id": f"t/{i}", "sample_id": j, "status": "passed" if j < good else "failed"})
    results.finish({})
    stage.finish({"_type": kind, "benchmark": "easy", "split": "test", "problems": len(passed),
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


def test_sampled_arms_are_compared_at_every_k_their_samples_allow(tmp_path):
    # LintSeq's evals record pass@1 only, from 20 samples a problem: the paper's comparison is pass@k
    # to k = 20, and its evals are their own step type.
    base = [0] * 30 + [2] * 10
    plain = [1] * 30 + [20] * 10  # a sample in 20 solves the first 30: pass@20 = 1, pass@1 low
    edits = [0] * 30 + [20] * 10
    run = _run(tmp_path, [("base", base, {"n": 20, "temperature": 0.8}),
                          ("plain", plain, {"n": 20, "temperature": 0.8, "adapter_from": "t1", "kind": "lintseq_eval"}),
                          ("edits", edits, {"n": 20, "temperature": 0.8, "adapter_from": "t2", "kind": "lintseq_eval"})])
    rows = {r["stage"]: r for r in eval_rows(run)}
    assert rows["plain"]["delta"]["vs"] == rows["edits"]["delta"]["vs"] == "base"
    (duel,) = head_to_head(list(rows.values()))
    assert (duel["a"], duel["b"]) == ("plain", "edits")
    assert list(duel["deltas"]) == ["pass@1", "pass@2", "pass@5", "pass@10", "pass@20"]
    d20 = duel["deltas"]["pass@20"]
    assert d20["delta"] == -0.75 and d20["ci_high"] < 0  # edits lose the 30 that plain solves once in 20
    assert duel["deltas"]["pass@1"]["delta"] == pytest.approx(-30 / 20 / 40)
    md = (write_report(run.root).parent / "report.md").read_text()
    assert "| plain | edits | pass@20 |" in md
