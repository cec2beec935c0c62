import numpy as np
import pytest

from codeloop.errors import UserError
from codeloop.methods.preference import (PreferenceConfig, assign_curriculum, bucket_thresholds, build_pairs,
                                         fill_distances, logprob_gap, sample_score)
from codeloop.records import Pair, Result


def r(task, sid, passed, total, code=None):
    status = "passed" if passed == total and total > 0 else "failed"
    return Result(task_id=task, sample_id=sid, prompt="def f():\n", completion=code or f"    return {sid}\n",
                  status=status, passed_tests=passed, total_tests=total)


def test_best_and_worst_become_chosen_and_rejected():
    pairs, skipped = build_pairs([r("t", 0, 1, 3), r("t", 1, 3, 3), r("t", 2, 0, 3)], PreferenceConfig())
    (p,) = pairs
    assert p.chosen == "    return 1\n" and p.rejected == "    return 2\n"
    assert (p.chosen_score, p.rejected_score) == (1.0, 0.0)
    assert (p.chosen_status, p.rejected_status) == ("passed", "failed")
    assert p.extra["chosen_sample_id"] == 1 and p.extra["rejected_sample_id"] == 2


def test_ties_all_fail_all_pass_give_no_pair():
    cfg = PreferenceConfig()
    tied = [r("a", i, 1, 2) for i in range(3)]
    all_fail = [r("b", i, 0, 2) for i in range(3)]
    all_pass = [r("c", i, 2, 2) for i in range(3)]
    pairs, skipped = build_pairs(tied + all_fail + all_pass, cfg)
    assert pairs == [] and skipped["all_tied"] == 3


def test_chosen_rule_passed_vs_positive():
    rs = [r("t", 0, 1, 3), r("t", 1, 0, 3)]
    assert build_pairs(rs, PreferenceConfig(chosen_rule="passed"))[1]["no_acceptable_chosen"] == 1
    (p,), _ = build_pairs(rs, PreferenceConfig(chosen_rule="positive"))
    assert p.chosen_score == pytest.approx(1 / 3)
    assert build_pairs(rs, PreferenceConfig(chosen_rule="positive", score="count"))[0][0].chosen_score == 1.0


def test_identical_code_is_deduplicated():
    same = "    return 1\n"
    rs = [r("t", 0, 2, 2, same), r("t", 1, 2, 2, same + "  \n"), r("t", 2, 0, 2, same)]
    # sample 2 has the same code as 0 (whitespace aside) yet a different verdict cannot happen for
    # deterministic code; dedupe keeps the first, so only one distinct program remains.
    pairs, skipped = build_pairs(rs, PreferenceConfig())
    assert pairs == [] and skipped["single_distinct_sample"] == 1


def test_several_pairs_per_problem_stop_at_the_middle():
    rs = [r("t", i, s, 4) for i, s in enumerate([4, 4, 2, 0, 0])]
    pairs, _ = build_pairs(rs, PreferenceConfig(pairs_per_problem=3))
    assert [(p.extra["chosen_sample_id"], p.extra["rejected_sample_id"]) for p in pairs] == [(0, 4), (1, 3)]


def test_score_without_counted_tests_uses_status():
    assert sample_score(Result(task_id="t", status="passed")) == 1.0
    assert sample_score(Result(task_id="t", status="timeout")) == 0.0


def _pairs(distances):
    return [Pair(task_id=f"t{i}", prompt="p", chosen="c", rejected="r", distance=d) for i, d in enumerate(distances)]


def test_bucket_edges_match_numpy_percentiles():
    d = list(range(100))  # 0..99
    cfg = PreferenceConfig(drop_bottom=False)  # keep bucket 0 to see its members
    th = bucket_thresholds(d, cfg.bucket_edges)
    assert th == [float(np.percentile(d, e)) for e in (10, 50, 90, 100)]
    ordered = assign_curriculum(_pairs(d), cfg)
    bucket_of = {p.distance: p.bucket for p in ordered}
    assert bucket_of[0] == 0 and bucket_of[9] == 0  # below p10 = 9.9
    assert bucket_of[10] == 1 and bucket_of[49] == 1  # [9.9, 49.5)
    assert bucket_of[50] == 2 and bucket_of[89] == 2  # [49.5, 89.1)
    assert bucket_of[90] == 3 and bucket_of[99] == 3  # [89.1, 99]


def test_curriculum_order_large_first_and_drop_bottom():
    d = [float(x) for x in range(50)]
    ordered = assign_curriculum(_pairs(d), PreferenceConfig(seed=1))
    assert len(ordered) == 45 and min(p.distance for p in ordered) >= 5  # the source prunes the bottom decile
    assert [p.order for p in ordered] == list(range(45))
    buckets = [p.bucket for p in ordered]
    assert buckets == sorted(buckets, reverse=True)  # large gap first
    assert [p.distance for p in ordered] != sorted((p.distance for p in ordered), reverse=True)  # shuffled within
    small = assign_curriculum(_pairs(d), PreferenceConfig(direction="small-first"))
    assert [p.bucket for p in small] == sorted(p.bucket for p in small)
    assert {p.task_id for p in small} == {p.task_id for p in ordered}  # both arms train on the same pairs
    kept_all = assign_curriculum(_pairs(d), PreferenceConfig(drop_bottom=False))
    assert len(kept_all) == 50 and min(p.bucket for p in kept_all) == 0


def test_source_defaults_and_the_arms():
    cfg = PreferenceConfig()
    assert cfg.drop_bottom is True and cfg.signed is False and cfg.bucket_edges == [10.0, 50.0, 90.0, 100.0]
    # shuffled is not a direction: it is the same pairs trained with curriculum: false
    with pytest.raises(UserError, match="curriculum: false") as e:
        PreferenceConfig(direction="shuffled").validate()
    assert e.value.where == "direction"


def _scored(gaps):
    return [Pair(task_id=f"t{i}", prompt="p", chosen="c", rejected="r", distance=abs(g),
                 extra={"chosen_logprob": g - 10.0, "rejected_logprob": -10.0, "chosen_tokens": 2,
                        "rejected_tokens": 4, "length_normalized": False})
            for i, g in enumerate(gaps)]


def test_signed_distance_keeps_the_sign_the_absolute_one_drops():
    gaps = [-8.0, -3.0, -1.0, 0.5, 2.0, 4.0, 6.0, 7.0, 9.0, 12.0]
    pairs = _scored(gaps)
    assert fill_distances(pairs, None, signed=True) == 0  # the sign comes from the kept log-probs, no model
    assert [p.distance for p in pairs] == gaps
    assert logprob_gap(pairs[0]) == -8.0
    ordered = assign_curriculum(pairs, PreferenceConfig(signed=True, seed=0))
    # the pair the initial model gets most wrong (-8) is the smallest signed gap: pruned, not "easy"
    assert "t0" not in {p.task_id for p in ordered}
    absolute = assign_curriculum(_scored(gaps), PreferenceConfig(seed=0))
    assert next(p for p in absolute if p.task_id == "t0").bucket == 2  # |-8| sits with the clear pairs


def test_signed_needs_log_probs_or_a_model():
    pairs = [Pair(task_id="t", prompt="p", chosen="c", rejected="r", distance=1.0)]  # made elsewhere
    assert fill_distances(pairs, None) == 0 and pairs[0].distance == 1.0
    with pytest.raises(UserError, match="log-probs"):
        fill_distances(pairs, None, signed=True)


def test_length_normalized_sign_uses_the_per_token_means():
    (p,) = _scored([1.0])  # summed: chosen -9 (2 tokens) vs rejected -10 (4 tokens)
    p.extra["length_normalized"] = True
    assert logprob_gap(p) == pytest.approx(-9.0 / 2 - (-10.0 / 4))


def test_curriculum_needs_distances_and_valid_edges():
    with pytest.raises(UserError, match="distance"):
        assign_curriculum([Pair(task_id="t", prompt="p", chosen="c", rejected="r")], PreferenceConfig())
    with pytest.raises(UserError):
        PreferenceConfig(bucket_edges=[50, 10, 100]).validate()
