"""vllm backend: runs only where vLLM and a CUDA GPU are present."""

from __future__ import annotations

import pytest

from codeloop.errors import MissingDependency


def test_missing_vllm_names_the_install_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("no vllm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    from codeloop.generation.vllm_backend import VLLMGenerator

    with pytest.raises(MissingDependency) as err:
        VLLMGenerator("default")
    assert "codeloop[vllm]" in err.value.message


@pytest.mark.gpu
def test_vllm_samples_with_the_same_interface(tiny_model_dir):
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    from codeloop.generation import GenerationParams, generate
    from codeloop.records import Problem

    problems = [Problem(task_id="t", prompt="def add(a, b):\n", entry_point="add")]
    samples = generate(problems, GenerationParams(n=2, max_new_tokens=8), model=str(tiny_model_dir),
                       backend="vllm", gpu_memory_utilization=0.2)
    assert len(samples) == 2
    assert all(s.code.startswith("def add") and s.n_tokens is not None for s in samples)
