"""CDAS with a tiny in-process model: IFD against a direct two-forward computation, the CLI."""

import json
import math

import pytest

from codeloop.methods import cdas

INSTRUCTIONS = [
    "Write a function that adds two numbers.", "Return the sum of a and b.", "Add two integers together.",
    "Check whether n is even.", "Return True if the number is even.", "Is the integer divisible by two?",
    "Print the numbers from 0 to 9.", "Loop over range ten and print each value.", "Print ten lines, 0 to 9.",
    "Define a Stack class with an empty list.", "Create a stack class holding items.", "Make a class Stack.",
]
RESPONSES = [
    "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return b + a\n", "def add(x, y):\n    return x + y\n",
    "def is_even(n):\n    return n % 2 == 0\n", "def even(n):\n    return not n % 2\n", "def f(n):\n    return n % 2 == 0\n",
    "for i in range(10):\n    print(i)\n", "for i in range(10): print(i)\n", "i = 0\nwhile i < 10:\n    print(i)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n", "class Stack:\n    items = []\n",
    "class Stack:\n    pass\n",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def _direct_ppl(model, tok, context_ids, answer_ids):
    """exp(mean NLL) of answer_ids after context_ids, from one forward pass over the whole row."""
    import torch

    ids = torch.tensor([context_ids + answer_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    start = len(context_ids)
    nll = [-logp[t - 1, ids[0, t]].item() for t in range(start, ids.shape[1])]
    return math.exp(sum(nll) / len(nll))


@pytest.mark.parametrize("template,wrap", [("trained", "{q}"), (None, "{q}"),
                                           ("official", "Question:\n{q}\n\nAnswer:\n")])
def test_ifd_equals_a_direct_two_forward_computation(tiny, template, wrap):
    model, tok = tiny
    kwargs = {"template": template} if template else {}
    got = cdas.score_ifd(model, tok, INSTRUCTIONS[:6], RESPONSES[:6], batch_size=4, **kwargs)
    for q, a, value in zip(INSTRUCTIONS, RESPONSES, got):
        answer = tok(a, add_special_tokens=False)["input_ids"]
        prompt = [tok.bos_token_id] + tok(wrap.format(q=q), add_special_tokens=False)["input_ids"]
        conditional = _direct_ppl(model, tok, prompt, answer)
        unconditional = _direct_ppl(model, tok, [tok.bos_token_id], answer)
        assert value == pytest.approx(conditional / unconditional, rel=1e-4)
    # a random model's ratio sits near 1: both sides of the cut-off occur
    assert min(got) != max(got)


def test_an_empty_response_is_a_failed_score_and_dropped(tiny):
    model, tok = tiny
    rows = [(f"m:{i}", {"instruction": q, "response": a})
            for i, (q, a) in enumerate(zip(["q1", "q2", "q3"], ["x = 1\n", "", "y = 2\n"]))]
    # training could not learn an empty response: as the trained pair it is refused on read, like SFT does
    from codeloop.errors import UserError

    with pytest.raises(UserError) as e:
        cdas.check_records(rows)
    assert e.value.where == "m:1" and "empty" in e.value.message
    data = cdas.check_records(rows, "instruction", "response")  # named fields are scored as they are
    res = cdas.select_records(data, cdas.CDASConfig(method="ifd-only", ratio=1.0), model, tok)
    assert math.isnan(res.ifd[1]) and res.reasons[1] == "failed"
    assert res.stats["dropped_failed"] == 1
    assert all(r["response"] for r in res.records)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def registered():
    from codeloop import cli
    from codeloop.commands import select

    if not any(g.name == "select" for g in cli.app.registered_groups):
        select.register(cli.app)
    return cli.main


def test_cli_cdas_selects_per_cluster_and_writes_stats_and_plots(registered, tiny_model_dir, tmp_path, capsys):
    data = _write(tmp_path / "d.jsonl", [{"task_id": f"t{i}", "instruction": q, "response": a, "extra": [i]}
                                         for i, (q, a) in enumerate(zip(INSTRUCTIONS, RESPONSES))])
    out = tmp_path / "S.jsonl"
    rc = registered(["select", "cdas", "--data", str(data), "--model", str(tiny_model_dir), "--dtype", "fp32",
                     "--ratio", "0.5", "--clusters", "4", "--out", str(out)])
    assert rc == 0
    kept = [json.loads(x) for x in out.read_text().splitlines()]
    stats = json.loads((tmp_path / "S.stats.json").read_text())
    assert stats["k_used"] == 4 and stats["kept"] == len(kept) > 0
    assert stats["kept"] + stats["dropped_ifd_ge_1"] + stats["dropped_failed"] + stats["not_selected"] == 12
    for pc in stats["per_cluster"]:
        assert pc["kept"] == cdas.keep_count(pc["eligible"], 0.5)
    for r in kept:  # every input field kept, plus ifd and cluster
        assert set(r) == {"task_id", "instruction", "response", "extra", "ifd", "cluster"}
        assert r["ifd"] < 1.0 and 0 <= r["cluster"] < 4
        assert r["extra"] == [int(r["task_id"][1:])]
    assert [r["task_id"] for r in kept] == sorted((r["task_id"] for r in kept), key=lambda t: int(t[1:]))
    assert (tmp_path / "S.ifd_hist.png").stat().st_size > 1000
    assert (tmp_path / "S.clusters.png").stat().st_size > 1000
    assert "cdas: kept" in capsys.readouterr().err

    # ifd-only with K ignored; K larger than the data clamps and says so
    rc = registered(["select", "cdas", "--data", str(data), "--model", str(tiny_model_dir), "--dtype", "fp32",
                     "--clusters", "50", "--out", str(tmp_path / "K.jsonl"), "--no-plots"])
    assert rc == 0
    stats = json.loads((tmp_path / "K.stats.json").read_text())
    assert stats["k_used"] == 12 and stats["k_clamped"] and "clamped" in stats["k_note"]
    assert stats["kept"] == 0  # 12 clusters of one record: floor(0.4 * 1) = 0 each
    assert "clamped" in capsys.readouterr().err


def test_cli_baselines_on_prompt_completion_records(registered, tiny_model_dir, tmp_path):
    data = _write(tmp_path / "pc.jsonl", [{"prompt": q, "completion": a} for q, a in zip(INSTRUCTIONS, RESPONSES)])
    assert registered(["select", "random", "--data", str(data), "--out", str(tmp_path / "r.jsonl"),
                       "--ratio", "0.25", "--seed", "1"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["ifd"] is None for r in rows)
    assert not (tmp_path / "r.ifd_hist.png").exists()
    assert registered(["select", "ifd-only", "--data", str(data), "--model", str(tiny_model_dir), "--dtype", "fp32",
                       "--ratio", "1.0", "--out", str(tmp_path / "i.jsonl")]) == 0
    stats = json.loads((tmp_path / "i.stats.json").read_text())
    assert stats["kept"] == 12 - stats["dropped_ifd_ge_1"] - stats["dropped_failed"]
    assert stats["instruction_field"] == "prompt" and stats["response_field"] == "completion"


def test_cli_names_file_line_and_field_for_bad_records(registered, tmp_path, capsys):
    data = _write(tmp_path / "bad.jsonl", [{"instruction": "a", "response": "b"}, {"instruction": "c"}])
    assert registered(["select", "random", "--data", str(data), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{data}:2: " in err and "missing required field 'completion' (or 'response')" in err
    assert not (tmp_path / "o.jsonl").exists()

    other = _write(tmp_path / "other.jsonl", [{"question": "a", "answer": "b"}])
    assert registered(["select", "random", "--data", str(other), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{other}:1" in err and "--instruction-field" in err
    assert registered(["select", "random", "--data", str(other), "--instruction-field", "question",
                       "--response-field", "answer", "--out", str(tmp_path / "o.jsonl")]) == 0
    assert registered(["select", "random", "--data", str(other), "--instruction-field", "question",
                       "--response-field", "output", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert f"{other}:1: output" in capsys.readouterr().err

    notstr = _write(tmp_path / "n.jsonl", [{"prompt": "a", "completion": ["x"]}])
    assert registered(["select", "random", "--data", str(notstr), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "must be a string" in capsys.readouterr().err
    assert registered(["select", "cdas", "--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert registered(["select", "cdas", "--data", str(data), "--ratio", "0", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "--ratio" in capsys.readouterr().err
