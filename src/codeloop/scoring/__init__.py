"""Scoring with a model: completion log-probs, perplexity, IFD, and sentence embeddings.

Importing this package is cheap; torch / sentence-transformers load on first use.
"""

from __future__ import annotations

from codeloop.scoring.embeddings import DEFAULT_EMBEDDER, embed_texts, load_embedder
from codeloop.scoring.logprobs import (IFD_TEMPLATE, IFDScore, TokenScores, completion_logprobs,
                                       ifd_scores, perplexity)

__all__ = ["TokenScores", "IFDScore", "IFD_TEMPLATE", "completion_logprobs", "perplexity", "ifd_scores",
           "embed_texts", "load_embedder", "DEFAULT_EMBEDDER"]
