"""CDAS scores and embeds the pair training learns: the texts handed to the IFD scorer and the
embedder are the SFT formatter's, for the recipe's own records and for conversations."""

import pytest

from codeloop.errors import UserError
from codeloop.methods import cdas
from codeloop.methods.codeact import cdas as cdas_module
from codeloop.pipeline.stages_cdas import problem_sft_record
from codeloop.records import Problem
from codeloop.training.data import load_sft_records, tokenize_messages

PROBLEMS = [
    Problem(task_id=f"mbpp/{i}", description=f"Write a function to add {i} to x.",
            prompt=f'def add_{i}(x):\n    """\n    Write a function to add {i} to x.\n    assert add_{i}(1) == {i + 1}\n'
                   '    """\n',
            canonical_solution=f"    return x + {i}\n", entry_point=f"add_{i}", test="")
    for i in range(8)
]


class _Capture:
    """Stands in for the IFD scorer and the embedder, recording the texts they are given."""

    def __init__(self, monkeypatch):
        import numpy as np

        from codeloop.scoring import IFDScore

        self.scored, self.embedded = None, None

        def ifd_scores(model, tokenizer, instructions, answers, template, **kw):
            self.scored = [(template.format(q=q), a) for q, a in zip(instructions, answers)]
            return [IFDScore(0.5 + i / 100, 1.0, 3) for i in range(len(answers))]

        def embed_texts(texts, model_name=None):
            self.embedded = list(texts)
            return np.eye(len(texts), dtype=np.float32)

        monkeypatch.setattr(cdas_module, "ifd_scores", ifd_scores)
        monkeypatch.setattr(cdas_module, "embed_texts", embed_texts)


def test_cdas_scores_exactly_what_sft_trains_on_the_recipes_records(monkeypatch):
    records = [problem_sft_record(p) for p in PROBLEMS]
    trained = load_sft_records(records)  # the SFT formatter: what `train sft` hands TRL
    cap = _Capture(monkeypatch)
    data = cdas.check_records([(f"d:{i + 1}", r) for i, r in enumerate(records)])
    cdas.select_records(data, cdas.CDASConfig(method="cdas", clusters=2, ratio=0.5), model=object(),
                        tokenizer=object())
    # the IFD prompt is the trained prompt itself, the answer the trained completion
    assert cap.scored == [(row["prompt"], row["completion"]) for row in trained]
    # the records also carry the description and the whole program (for other steps): not what is scored
    assert all(r["instruction"] != s[0] and r["response"] != s[1] for r, s in zip(records, cap.scored))
    # the clusters embed the instruction only (official get_embedding.py), the trained one
    assert cap.embedded == [row["prompt"] for row in trained]


def test_the_official_template_wraps_the_trained_prompt(monkeypatch):
    records = [problem_sft_record(p) for p in PROBLEMS]
    cap = _Capture(monkeypatch)
    data = cdas.check_records([(f"d:{i + 1}", r) for i, r in enumerate(records)])
    cdas.select_records(data, cdas.CDASConfig(method="ifd-only", template="official"), object(), object())
    assert cap.scored[0] == (f"Question:\n{records[0]['prompt']}\n\nAnswer:\n", records[0]["completion"])


def test_conversations_are_scored_as_the_chat_template_renders_them(monkeypatch, tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    if not getattr(tok, "chat_template", None):
        tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                             "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    records = [{"messages": [{"role": "user", "content": f"Add {i} to x."},
                             {"role": "assistant", "content": f"def f(x):\n    return x + {i}\n"}]} for i in range(6)]
    cap = _Capture(monkeypatch)
    data = cdas.check_records([(f"c:{i + 1}", r) for i, r in enumerate(records)])
    assert (data.instruction_field, data.response_field) == ("messages", "messages")
    cdas.select_records(data, cdas.CDASConfig(method="cdas", clusters=2), object(), tok)
    for rec, (prompt, response) in zip(records, cap.scored):
        # the tokens training puts the loss on are the response's tokens after the prompt's
        enc = tokenize_messages(tok, rec["messages"])
        learnt = [t for t, m in zip(enc["input_ids"], enc["completion_mask"]) if m]
        assert tok(prompt + response, add_special_tokens=False)["input_ids"][-len(learnt):] == learnt
    assert cap.embedded == [r["messages"][0]["content"] for r in records]


def test_records_cdas_cannot_pair_are_refused_with_their_place(monkeypatch):
    cap = _Capture(monkeypatch)
    text = cdas.check_records([("t:1", {"text": "print(1)\n"}), ("t:2", {"text": "print(2)\n"})])
    assert len(cdas.select_records(text, cdas.CDASConfig(method="random", ratio=0.5)).records) == 1
    with pytest.raises(UserError) as e:
        cdas.select_records(text, cdas.CDASConfig(method="ifd-only"), object(), object())
    assert e.value.where == "t:1" and "text record" in e.value.message
    multi = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                          {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    data = cdas.check_records([("m:1", multi)])
    with pytest.raises(UserError) as e:
        cdas.select_records(data, cdas.CDASConfig(method="ifd-only"), object(), object())
    assert e.value.where == "m:1" and "2 assistant turn" in e.value.message
    assert cap.scored is None


def test_named_fields_are_scored_as_named_with_a_warning(monkeypatch, capsys):
    records = [problem_sft_record(p) for p in PROBLEMS]
    cap = _Capture(monkeypatch)
    data = cdas.check_records([(f"d:{i + 1}", r) for i, r in enumerate(records)], "instruction", "response")
    assert "leave --instruction-field/--response-field unset" in capsys.readouterr().err
    res = cdas.select_records(data, cdas.CDASConfig(method="ifd-only"), object(), object())
    assert cap.scored[0] == (records[0]["instruction"], records[0]["response"])
    assert res.stats["pair"] == "fields"
