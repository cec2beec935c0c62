import math

import numpy as np
import pytest

from codeloop.evaluation.compare import (ProblemCounts, compare_counts, counts_from_results, mcnemar_exact,
                                         paired_bootstrap)


def res(task, status):
    return {"task_id": task, "status": status}


def test_flips_and_delta_hand_computed():
    a = counts_from_results([res("t1", "passed"), res("t2", "failed"), res("t3", "passed"), res("t5", "passed")])
    b = counts_from_results([res("t1", "passed"), res("t2", "passed"), res("t3", "timeout"), res("t4", "passed")])
    cmp = compare_counts(a, b, [1], resamples=2000)
    assert cmp.n_problems == 3  # only shared task_ids
    assert cmp.only_a == ["t3"] and cmp.only_b == ["t2"]
    d = cmp.deltas["pass@1"]
    assert d["a"] == pytest.approx(2 / 3) and d["b"] == pytest.approx(2 / 3) and d["delta"] == 0
    assert d["ci_low"] < 0 < d["ci_high"]
    assert cmp.mcnemar_p == 1.0  # b=c=1: 2 * (C(2,0)+C(2,1)) / 4 capped at 1


def test_mcnemar_exact_hand_values():
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 6) == pytest.approx(2 * (1 + 7) / 128)
    assert mcnemar_exact(0, 0) == 1.0


def test_bootstrap_constant_differences_collapse():
    assert paired_bootstrap(np.ones(20)) == (1.0, 1.0)


def test_bootstrap_two_problem_case_by_hand():
    # Resampling 2 problems with diffs [0, 1]: the mean is 0, .5 or 1 with probability 1/4, 1/2, 1/4,
    # so the 95% percentile interval is [0, 1]; a 40% interval sits on the middle value 0.5.
    diffs = np.array([0.0, 1.0])
    assert paired_bootstrap(diffs, resamples=4000, seed=1) == (0.0, 1.0)
    assert paired_bootstrap(diffs, resamples=4000, alpha=0.6, seed=1) == (0.5, 0.5)


def test_pass_at_k_with_several_samples():
    a = {"t1": ProblemCounts(2, 1), "t2": ProblemCounts(2, 0)}
    b = {"t1": ProblemCounts(2, 2), "t2": ProblemCounts(2, 1)}
    cmp = compare_counts(a, b, [1, 2], resamples=100)
    assert cmp.deltas["pass@1"]["a"] == pytest.approx(0.25) and cmp.deltas["pass@1"]["b"] == pytest.approx(0.75)
    assert cmp.deltas["pass@2"]["a"] == pytest.approx(0.5) and cmp.deltas["pass@2"]["b"] == pytest.approx(1.0)
    assert cmp.only_b == ["t2"] and cmp.only_a == []
    assert "pass@3" not in compare_counts(a, b, [3]).deltas
    assert math.isclose(cmp.deltas["pass@1"]["delta"], 0.5)
