"""CDAS selection: the per-cluster rule, clustering, baselines and record checks (no model)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeloop.errors import UserError
from codeloop.methods import cdas
from codeloop.methods.cdas import (CDASConfig, check_records, cluster_embeddings, keep_count, select_random,
                                   select_top_per_cluster)


# -- the rounding rule ---------------------------------------------------------------------------

def test_keep_count_rounds_down_like_the_official_code():
    # select_data.py: n = int(len(cluster) * ratio), on the cluster after IFD >= 1 is dropped
    assert [keep_count(n, 0.4) for n in range(0, 11)] == [int(n * 0.4) for n in range(0, 11)]
    assert keep_count(10, 0.4) == 4  # 0.4 * 10 = 4.000000000000001 in floats
    assert keep_count(10, 0.3) == 3  # 0.3 * 10 = 3.0000000000000004
    assert keep_count(10, 0.7) == 7  # 0.7 * 10 = 7.000000000000001
    assert keep_count(2, 0.4) == 0 and keep_count(2, 0.4, "ceil") == 1 and keep_count(2, 0.4, "round") == 1
    assert keep_count(3, 0.5, "round") == 2 and keep_count(3, 0.5) == 1
    assert keep_count(5, 1.0) == 5 and keep_count(5, 1.0, "ceil") == 5


# -- the per-cluster selection -------------------------------------------------------------------

def test_ifd_at_or_above_one_and_failed_scores_are_dropped_before_the_top_m_percent():
    # one cluster of 10: 3 at/above 1, 2 failed -> 5 eligible -> floor(0.4 * 5) = 2 kept
    ifd = [0.5, 1.0, 0.9, float("nan"), 1.7, 0.2, None, 0.95, 1.2, 0.6]
    sel = select_top_per_cluster(ifd, [0] * 10, 0.4)
    assert sel.indices == [2, 7]  # the two highest IFD below 1 (0.9, 0.95), in input order
    assert sel.reasons == ["not_selected", "ifd_ge_1", "kept", "failed", "ifd_ge_1", "not_selected", "failed",
                           "kept", "ifd_ge_1", "not_selected"]
    (pc,) = sel.stats["per_cluster"]
    assert pc == {"cluster": 0, "size": 10, "dropped_failed": 2, "dropped_ifd_ge_1": 3, "eligible": 5, "kept": 2,
                  "not_selected": 3, "ifd_threshold": 0.9}
    assert sel.stats["kept"] == 2 and sel.stats["dropped_ifd_ge_1"] == 3 and sel.stats["dropped_failed"] == 2


def test_top_m_percent_is_taken_in_each_cluster_separately():
    # cluster 0 holds the 10 highest IFDs overall; a global top-40% would take only from it
    ifd = [0.90 + i / 1000 for i in range(10)] + [0.10 + i / 1000 for i in range(10)]
    labels = [0] * 10 + [1] * 10
    sel = select_top_per_cluster(ifd, labels, 0.4)
    assert sel.indices == [6, 7, 8, 9, 16, 17, 18, 19]
    assert [p["kept"] for p in sel.stats["per_cluster"]] == [4, 4]
    global_sel = select_top_per_cluster(ifd, [0] * 20, 0.4)
    assert global_sel.indices == [2, 3, 4, 5, 6, 7, 8, 9]


def test_tiny_clusters_keep_nothing_with_the_paper_rounding_and_one_with_ceil():
    ifd = [0.5, 0.6, 0.7, 0.8, 0.9, 0.1, 0.2, 0.3]
    labels = [0, 0, 0, 0, 0, 1, 2, 2]  # sizes 5, 1, 2
    floor = select_top_per_cluster(ifd, labels, 0.4)
    assert [p["kept"] for p in floor.stats["per_cluster"]] == [2, 0, 0]
    assert floor.indices == [3, 4]
    ceil = select_top_per_cluster(ifd, labels, 0.4, rounding="ceil")
    assert [p["kept"] for p in ceil.stats["per_cluster"]] == [2, 1, 1]
    assert ceil.indices == [3, 4, 5, 7]


def test_a_cluster_whose_scores_all_fail_or_exceed_one_keeps_nothing():
    sel = select_top_per_cluster([1.5, float("inf"), 0.3, 0.4, 0.5], [0, 0, 1, 1, 1], 0.7)
    assert [p["kept"] for p in sel.stats["per_cluster"]] == [0, 2]
    assert sel.stats["per_cluster"][0]["ifd_threshold"] is None
    assert sel.indices == [3, 4]


def test_ties_keep_input_order():
    sel = select_top_per_cluster([0.5] * 6, [0] * 6, 0.5)
    assert sel.indices == [0, 1, 2]
    sel = select_top_per_cluster([0.4, 0.5, 0.5, 0.5, 0.3], [0] * 5, 0.4)
    assert sel.indices == [1, 2]


def test_exact_size_for_the_single_cluster_baseline():
    sel = select_top_per_cluster([0.1, 0.9, 0.5, 1.2, 0.7], [0] * 5, 0.4, size=3)
    assert sel.indices == [1, 2, 4]
    assert select_top_per_cluster([0.1, 1.9], [0, 0], 0.4, size=5).indices == [0]
    with pytest.raises(ValueError):
        select_top_per_cluster([0.1, 0.2], [0, 1], 0.4, size=1)


ifd_values = st.one_of(st.floats(min_value=0.0, max_value=2.0), st.just(float("nan")), st.just(1.0),
                       st.just(0.5))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(ifd_values, st.integers(0, 4)), max_size=60), st.sampled_from([0.1, 0.25, 0.4, 0.5, 1.0]),
       st.sampled_from(["floor", "ceil", "round"]))
def test_selection_properties(rows, ratio, rounding):
    ifd = [r[0] for r in rows]
    labels = [r[1] for r in rows]
    sel = select_top_per_cluster(ifd, labels, ratio, rounding)
    kept = set(sel.indices)
    assert sel.indices == sorted(kept)
    for c in set(labels):
        members = [i for i, lab in enumerate(labels) if lab == c]
        eligible = [i for i in members if math.isfinite(ifd[i]) and ifd[i] < 1.0]
        chosen = [i for i in members if i in kept]
        assert set(chosen) <= set(eligible)
        assert len(chosen) == keep_count(len(eligible), ratio, rounding)
        rest = [i for i in eligible if i not in kept]
        if chosen and rest:
            assert min(ifd[i] for i in chosen) >= max(ifd[i] for i in rest)
    assert sel.stats["kept"] + sel.stats["dropped_ifd_ge_1"] + sel.stats["dropped_failed"] \
        + sel.stats["not_selected"] == len(rows)
    assert sum(p["size"] for p in sel.stats["per_cluster"]) == len(rows)


# -- clustering ------------------------------------------------------------------------------------

def _blobs(n_per: int, centers: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dirs = np.eye(8)[:centers] * 5
    x = np.concatenate([d + 0.05 * rng.standard_normal((n_per, 8)) for d in dirs])
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(centers), n_per)


def test_kmeans_recovers_separated_groups_and_is_seeded():
    x, truth = _blobs(7, 3)
    a = cluster_embeddings(x, 3, seed=1, n_init=4)
    b = cluster_embeddings(x, 3, seed=1, n_init=4)
    assert (a.labels == b.labels).all() and a.k_used == 3 and a.note == ""
    # same partition as the truth, up to label names
    assert len({(int(t), int(lab)) for t, lab in zip(truth, a.labels)}) == 3


def test_k_larger_than_the_data_is_clamped_and_said():
    x, _ = _blobs(1, 4)
    c = cluster_embeddings(x, 10)
    assert c.k_used == 4 and c.k_requested == 10 and "clamped to 4" in c.note and "only 4 records" in c.note
    assert sorted(set(c.labels.tolist())) == [0, 1, 2, 3]
    dup = np.concatenate([x[:2]] * 3)  # 6 records, 2 distinct instructions
    d = cluster_embeddings(dup, 5)
    assert d.k_used == 2 and "2 distinct" in d.note
    assert len(set(d.labels.tolist())) == 2
    one = cluster_embeddings(x[:1], 10)
    assert one.k_used == 1 and one.labels.tolist() == [0]


# -- random baseline -----------------------------------------------------------------------------

def test_random_baseline_is_seeded_and_sized():
    a, b, c = select_random(50, 0.4, seed=3), select_random(50, 0.4, seed=3), select_random(50, 0.4, seed=4)
    assert a.indices == b.indices and a.indices != c.indices
    assert len(a.indices) == 20 and a.indices == sorted(set(a.indices))
    assert len(select_random(50, 0.4, size=7).indices) == 7
    assert len(select_random(3, 0.4, size=7).indices) == 3
    assert select_random(0, 0.4).indices == []


def test_random_select_records_needs_no_model_and_keeps_fields():
    data = check_records([(f"d.jsonl:{i + 1}", {"instruction": f"q{i}", "response": f"a{i}", "task_id": i})
                          for i in range(10)])
    res = cdas.select_records(data, CDASConfig(method="random", ratio=0.5, seed=0))
    assert len(res.records) == 5
    assert all(set(r) == {"instruction", "response", "task_id", "ifd", "cluster"} for r in res.records)
    assert res.stats["kept"] == 5 and res.stats["method"] == "random"
    with pytest.raises(ValueError):
        cdas.select_records(data, CDASConfig(method="ifd-only"))


# -- config and records ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,where", [({"method": "best"}, "--method"), ({"ratio": 0.0}, "--ratio"),
                                          ({"ratio": 1.5}, "--ratio"), ({"clusters": 0}, "--clusters"),
                                          ({"rounding": "up"}, "--rounding"), ({"size": 3}, "--size"),
                                          ({"template": "Q: {x}"}, "--template")])
def test_bad_configs_name_the_option(kwargs, where):
    with pytest.raises(UserError) as e:
        CDASConfig(**kwargs).validate()
    assert e.value.where == where


def test_fields_are_detected_or_named():
    # unnamed: the fields the SFT formatter trains on (prompt before instruction)
    d = check_records([("f:1", {"instruction": "a", "response": "b", "prompt": "p", "completion": "c"})])
    assert (d.instruction_field, d.response_field) == ("prompt", "completion") and d.pair_source == "trained"
    assert d.instructions == ["p"] and d.responses == ["c"]
    d = check_records([("f:1", {"instruction": "a", "response": "b"})])
    assert (d.instruction_field, d.response_field) == ("instruction", "response")
    d = check_records([("f:1", {"question": "q", "answer": "a"})], "question", "answer")
    assert d.instructions == ["q"] and d.responses == ["a"] and d.pair_source == "fields"
    d = check_records([("f:1", {"question": "q", "response": "a"})], "question", None)
    assert d.response_field == "response"


def test_missing_or_wrong_fields_name_file_line_and_field():
    good = {"instruction": "a", "response": "b"}
    with pytest.raises(UserError) as e:
        check_records([("d.jsonl:1", good), ("d.jsonl:2", {"instruction": "a"})])
    assert e.value.where == "d.jsonl:2" and "missing required field 'completion'" in e.value.message
    with pytest.raises(UserError) as e:
        check_records([("d.jsonl:1", good), ("d.jsonl:2", good), ("d.jsonl:3", {"instruction": 3, "response": "x"})])
    assert e.value.where == "d.jsonl:3" and "must be a string" in e.value.message
    with pytest.raises(UserError) as e:
        check_records([("d.jsonl:1", {"question": "q", "answer": "a"})])
    assert e.value.where == "d.jsonl:1" and "--instruction-field" in e.value.message
    # named fields are checked as before
    with pytest.raises(UserError) as e:
        check_records([("d.jsonl:1", {"question": "q", "answer": "a"})], "question", "output")
    assert e.value.where == "d.jsonl:1: output"
    with pytest.raises(UserError) as e:
        check_records([("d.jsonl:1", {"question": 3, "answer": "a"})], "question", "answer")
    assert e.value.where == "d.jsonl:1: question" and "must be a string" in e.value.message
    with pytest.raises(UserError):
        check_records([])


def test_stats_path_sits_next_to_the_output(tmp_path):
    assert cdas.stats_path_for(tmp_path / "S.jsonl") == tmp_path / "S.stats.json"
    assert cdas.stats_path_for(tmp_path / "S.jsonl.gz") == tmp_path / "S.stats.json"
    assert cdas.stats_path_for(tmp_path / "sel") == tmp_path / "sel.stats.json"
