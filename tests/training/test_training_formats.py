"""Training data in the ecosystem's shapes: TRL's prompt/completion, conversational messages and
pairs, text; producers' `format: trl`; a curriculum for pairs made elsewhere; LintSeq -> SFT."""

from __future__ import annotations

import json

import pytest

from codeloop.cli import main
from codeloop.errors import UserError
from codeloop.records import read_records
from codeloop.training.data import load_sft_records, tokenize_messages

PROBLEMS = [
    {"task_id": "t/1", "prompt": "def inc(x):\n", "entry_point": "inc", "canonical_solution": "    return x + 1\n",
     "test": "assert inc(1) == 2\n", "description": "Add one."},
    {"task_id": "t/2", "prompt": "def dbl(x):\n", "entry_point": "dbl", "canonical_solution": "    return 2 * x\n",
     "test": "assert dbl(2) == 4\n"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _train(kind, data, model, out, *extra):
    return main(["train", kind, str(data), "--model", str(model), "--out", str(out), "--max-steps", "2",
                 "--batch-size", "2", "--max-length", "64", "--report-to", "none", "--save-steps", "50", *extra])


def _steps(out):
    return json.loads((out / "train_summary.json").read_text())["steps"]


def _messages(i):
    return [{"role": "system", "content": "You write Python."},
            {"role": "user", "content": f"Write f{i}."},
            {"role": "assistant", "content": f"def f{i}(x):\n    return x + {i}\n"},
            {"role": "user", "content": "Now g."},
            {"role": "assistant", "content": "def g():\n    pass\n"}]


@pytest.mark.parametrize("shape", ["messages", "text", "instruction", "conversational"])
def test_train_sft_accepts_the_ecosystems_record_shapes(tiny_model_dir, tmp_path, shape):
    rows = {
        "messages": [{"messages": _messages(i)} for i in range(4)],
        "text": [{"text": f"def f{i}(x):\n    return x\n"} for i in range(4)],
        "instruction": [{"instruction": f"Write f{i}.", "response": f"def f{i}():\n    pass\n"} for i in range(4)],
        "conversational": [{"prompt": [{"role": "user", "content": f"Write f{i}."}],
                            "completion": [{"role": "assistant", "content": "def f():\n    pass\n"}]}
                           for i in range(4)],
    }[shape]
    data = _jsonl(tmp_path / "sft.jsonl", rows)
    out = tmp_path / "run"
    assert _train("sft", data, tiny_model_dir, out) == 0
    assert _steps(out) == 2


def test_messages_train_on_the_assistant_turns_only(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = tokenize_messages(tok, _messages(3))
    learned = tok.decode([t for t, m in zip(enc["input_ids"], enc["completion_mask"]) if m])
    assert "return x + 3" in learned and "pass" in learned
    assert "Write f3" not in learned and "You write Python" not in learned


def test_conversational_records_need_a_chat_template(tiny_model_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "plain-model"
    shutil.copytree(tiny_model_dir, model)
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    for extra in model.glob("chat_template.*"):
        extra.unlink()
    data = _jsonl(tmp_path / "sft.jsonl", [{"messages": _messages(i)} for i in range(2)])
    assert _train("sft", data, model, tmp_path / "run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chat template" in err[0]


def test_a_file_mixing_record_shapes_is_refused(tmp_path):
    data = _jsonl(tmp_path / "sft.jsonl", [{"prompt": "a", "completion": "b"}, {"messages": _messages(0)}])
    with pytest.raises(UserError) as err:
        load_sft_records(str(data))
    assert err.value.where == f"{data}:2"


def test_dpo_trains_on_conversational_pairs(tiny_model_dir, tmp_path):
    pairs = [{"prompt": [{"role": "user", "content": f"Write f{i}."}],
              "chosen": [{"role": "assistant", "content": f"def f{i}():\n    return {i}\n"}],
              "rejected": [{"role": "assistant", "content": "pass"}]} for i in range(4)]
    data = _jsonl(tmp_path / "pairs.jsonl", pairs)
    out = tmp_path / "dpo"
    assert _train("dpo", data, tiny_model_dir, out) == 0
    assert _steps(out) == 2


# -- producers write `format: trl` ----------------------------------------------------------------------

def _probs(tmp_path):
    return _jsonl(tmp_path / "probs.jsonl", PROBLEMS)


def test_sft_data_and_select_write_what_trl_takes(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from trl.data_utils import is_conversational

    sft = tmp_path / "sft.jsonl"
    assert main(["sft-data", "--problems", f"jsonl:{_probs(tmp_path)}", "--split", "", "--format", "trl",
                 "-o", str(sft)]) == 0
    rows = read_records(sft)
    assert [set(r) for r in rows] == [{"task_id", "prompt", "completion"}] * 2
    assert rows[0]["completion"] == PROBLEMS[0]["canonical_solution"]
    assert not is_conversational(Dataset.from_list(rows)[0])
    # select (hand-written command) reads the codeloop records and writes trl ones
    full = tmp_path / "full.jsonl"
    assert main(["sft-data", "--problems", f"jsonl:{_probs(tmp_path)}", "--split", "", "-o", str(full)]) == 0
    assert {"instruction", "response"} <= set(read_records(full)[0])
    sel = tmp_path / "sel.jsonl"
    assert main(["select", "random", "--data", str(full), "--size", "1", "--format", "trl", "-o", str(sel),
                 "--no-plots"]) == 0
    assert [set(r) for r in read_records(sel)] == [{"task_id", "prompt", "completion"}]
    assert _train("sft", sel, tiny_model_dir, tmp_path / "run") == 0


# -- a curriculum for pairs made elsewhere ---------------------------------------------------------------

def _foreign_pairs(tmp_path):
    return _jsonl(tmp_path / "pairs.jsonl", [{"prompt": f"def f{i}(x):\n", "chosen": f"    return x + {i}\n",
                                              "rejected": "    pass\n" * (i + 1)} for i in range(6)])


def test_curriculum_computes_missing_distances_with_a_model(tiny_model_dir, tmp_path):
    out = tmp_path / "curriculum.jsonl"
    assert main(["curriculum", str(_foreign_pairs(tmp_path)), "--model", str(tiny_model_dir), "--keep-bottom",
                 "-o", str(out)]) == 0
    rows = read_records(out)
    assert len(rows) == 6 and all(r["distance"] is not None and r["order"] is not None for r in rows)
    assert sorted(r["task_id"] for r in rows) == [f"line-{i}" for i in range(1, 7)]
    # and TRL's format of the same: exactly prompt/chosen/rejected (+ task_id), in training order; the
    # source's default prunes the bottom decile (one of six)
    trl = tmp_path / "trl.jsonl"
    assert main(["curriculum", str(out), "--format", "trl", "-o", str(trl)]) == 0
    assert [set(r) for r in read_records(trl)] == [{"task_id", "prompt", "chosen", "rejected"}] * 5
    # the signed gap comes from the log-probs the scored pairs kept: no model needed
    signed = tmp_path / "signed.jsonl"
    assert main(["curriculum", str(out), "--signed", "--keep-bottom", "-o", str(signed)]) == 0
    gaps = {r["task_id"]: r["extra"]["chosen_logprob"] - r["extra"]["rejected_logprob"] for r in rows}
    assert {r["task_id"]: r["distance"] for r in read_records(signed)} == pytest.approx(gaps)


def test_curriculum_without_distances_or_model_says_pass_model(tmp_path, capsys):
    assert main(["curriculum", str(_foreign_pairs(tmp_path)), "-o", str(tmp_path / "c.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model" in err[0] and "distance" in err[0]


def test_curriculum_scores_conversational_pairs(tiny_model_dir, tmp_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": [{"role": "user", "content": f"Write f{i}."}],
         "chosen": [{"role": "assistant", "content": f"def f{i}():\n    return {i}\n"}],
         "rejected": [{"role": "assistant", "content": "pass" * (i + 1)}]} for i in range(4)])
    out = tmp_path / "c.parquet"
    assert main(["curriculum", str(pairs), "--model", str(tiny_model_dir), "-o", str(out)]) == 0
    rows = read_records(out)
    assert all(r["distance"] is not None for r in rows) and isinstance(rows[0]["prompt"], list)


# -- LintSeq -> SFT ----------------------------------------------------------------------------------------

def test_lintseq_sft_records_train_on_the_edits(tiny_model_dir, tmp_path, capsys):
    programs = _jsonl(tmp_path / "programs.jsonl", [
        {"task_id": f"t{i}", "prompt": f"# task {i}\n", "completion": f"x = {i}\ny = x + 1\nprint(y)\n"}
        for i in range(3)])
    plain = tmp_path / "edits.jsonl"
    assert main(["lintseq", "--data", str(programs), "--out", str(plain), "-s", "1", "--workers", "1"]) == 0
    # the plain output carries `edits` beside the original program: training on it is refused
    assert _train("sft", plain, tiny_model_dir, tmp_path / "refused") == 2
    assert "--sft" in capsys.readouterr().err
    sft = tmp_path / "sft.jsonl"
    assert main(["lintseq", "--data", str(programs), "--out", str(sft), "-s", "1", "--workers", "1", "--sft"]) == 0
    rows = read_records(sft)
    assert rows and all(set(r) == {"task_id", "prompt", "completion"} and "<|diff|>" in r["completion"]
                        for r in rows)
    assert [r["completion"] for r in load_sft_records(str(sft))] == [r["completion"] for r in rows]
    assert _train("sft", sft, tiny_model_dir, tmp_path / "run") == 0
