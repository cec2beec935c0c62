"""CodeACT's CDAS: complexity- and diversity-aware data selection.

Source: "CodeACT: Code Adaptive Compute-efficient Tuning Framework for Code LLMs" (arXiv 2408.02193),
official code Kyle-Lyu/CodeACT (CDAS/get_embedding.py, calculate_ifd.py, select_data.py).

The algorithm, as this file runs it (records in and out: io.py; the pair: pairs.py; figures: plots.py):

    0. (q, a)   <- the trained pair of every record: what the SFT formatter gives training
    1. emb      <- embed(q)                            # sentence-transformers, L2-normalised
    2. labels   <- KMeans(K).fit_predict(emb)          # diversity; K clamped to the distinct instructions
    3. ifd      <- PPL(a | template(q)) / PPL(a)       # complexity, under the model that will be
                   tuned; template "{q}": the trained prompt as it is
    4. per cluster: drop IFD >= 1 (the instruction does not help) and failed (non-finite) scores,
       sort the rest by IFD, highest first, keep the first floor(m * eligible)
    5. train on the kept records (Dynamic Pack: codeloop.training, packing="codeact")

Details that follow the official code: clustering runs on every record (before any is dropped) and
embeds the instruction only; m is applied to a cluster's *eligible* records (those left after step
4's drops), rounded down (``int(len(cluster) * ratio)``), so a cluster with fewer than 1/m eligible
records contributes nothing; ties keep input order (Python's stable sort). Where this file differs:
the IFD prompt is the trained prompt, not the official ``"Question:\n{q}\n\nAnswer:\n"`` (which
is not the official training template either; ``template="official"`` restores it); a failed score
is dropped (the official code turns it into IFD 0 and keeps it as the least complex record), K is
clamped to the number of distinct instruction embeddings (the official code would fail or leave
empty clusters), and KMeans runs ``n_init`` seeded restarts. The kept records come out in input
order.

Baselines: ``ifd-only`` is step 4 with one cluster (no embeddings); ``random`` keeps
floor(m * N) records (or an exact size) uniformly at random with a seeded generator, no model.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from codeloop.errors import UserError
from codeloop.steps import option
from codeloop.methods.codeact.io import InstructionData, SelectionResult
from codeloop.methods.codeact.pairs import TRAINED_TEMPLATE
from codeloop.scoring import IFD_TEMPLATE  # "Question:\n{q}\n\nAnswer:\n", the official calculate_ifd.py prompt
from codeloop.scoring import embed_texts, ifd_scores

# Names a --template may give instead of the text itself.
TEMPLATES = {"trained": TRAINED_TEMPLATE, "official": IFD_TEMPLATE}

METHODS = ("cdas", "ifd-only", "random")
ROUNDING = ("floor", "ceil", "round")


@dataclass
class CDASConfig:
    method: str = option("cdas", choices=METHODS, help="cdas (k-means + top IFD per cluster), ifd-only (top IFD "
                                                       "overall) or random.")
    ratio: float = option(0.4, help="m: the fraction kept per cluster (of its records with IFD < 1).")
    clusters: int = option(10, flags=("-k",), help="K for k-means (cdas); clamped to the data.")
    size: int | None = option(None, help="random / ifd-only: keep exactly this many, instead of the ratio.")
    rounding: str = option("floor", choices=ROUNDING, help="floor = the official int(len(cluster) * ratio).")
    seed: int = option(42, help="KMeans random_state (the official 42) and the random baseline's generator.")
    n_init: int = option(10, help="KMeans restarts; the best inertia wins.")
    embedder: str = option("default", help="sentence-transformers model; 'default': the bundled "
                                           "all-MiniLM-L6-v2.")
    template: str = option("trained", help="The IFD prompt around the instruction ({q}): 'trained' = the "
                                           "trained prompt as it is ({q}); 'official' = the official "
                                           "code's Question/Answer wrapper; or the text itself.")
    batch_size: int = option(8, help="Records per scoring batch.")
    max_length: int | None = option(None, help="Cut long prompts (oldest tokens first) when scoring.")

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"unknown selection method {self.method!r}; choose one of {', '.join(METHODS)}",
                            "--method")
        if not 0.0 < self.ratio <= 1.0:
            raise UserError(f"must be in (0, 1], got {self.ratio}", "--ratio")
        if self.clusters < 1:
            raise UserError(f"must be >= 1, got {self.clusters}", "--clusters")
        if self.size is not None and self.size < 0:
            raise UserError(f"must be >= 0, got {self.size}", "--size")
        if self.size is not None and self.method == "cdas":
            raise UserError("cdas keeps a ratio of each cluster; --size is for random and ifd-only", "--size")
        if self.rounding not in ROUNDING:
            raise UserError(f"must be one of {', '.join(ROUNDING)}, got {self.rounding!r}", "--rounding")
        if self.n_init < 1:
            raise UserError(f"must be >= 1, got {self.n_init}", "--n-init")
        if self.batch_size < 1:
            raise UserError(f"must be >= 1, got {self.batch_size}", "--batch-size")
        if "{q}" not in self.template_text:
            raise UserError("the IFD template must contain {q} (or be 'trained' or 'official')", "--template")

    @property
    def template_text(self) -> str:
        return TEMPLATES.get(self.template, self.template)

    @property
    def needs_model(self) -> bool:
        return self.method != "random"


# -- steps 1-2: embeddings and clusters ------------------------------------------------------------

@dataclass
class Clustering:
    labels: np.ndarray  # (n,) int cluster per record
    k_requested: int
    k_used: int
    note: str = ""


def cluster_embeddings(embeddings: np.ndarray, k: int, seed: int = 42, n_init: int = 10) -> Clustering:
    """KMeans with K clamped to the number of distinct rows (so no cluster is empty)."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    n = len(embeddings)
    if n == 0:
        return Clustering(np.zeros(0, dtype=int), k, 0, "no records")
    distinct = len(np.unique(np.round(embeddings, 6), axis=0))
    k_used = min(k, distinct)
    note = ""
    if k_used < k:
        note = (f"K={k} clamped to {k_used}: only {n} records" if k_used == n
                else f"K={k} clamped to {k_used}: only {distinct} distinct instructions among {n} records")
    if k_used == 1:
        return Clustering(np.zeros(n, dtype=int), k, 1, note)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=k_used, random_state=seed, n_init=n_init).fit_predict(embeddings)
    return Clustering(np.asarray(labels, dtype=int), k, k_used, note)


# -- step 3: IFD -------------------------------------------------------------------------------------

def score_ifd(model: Any, tokenizer: Any, instructions: Sequence[str], responses: Sequence[str],
              template: str = TRAINED_TEMPLATE, batch_size: int = 8, max_length: int | None = None) -> list[float]:
    """IFD per record (codeloop.scoring.ifd_scores); NaN where a score could not be computed."""
    template = TEMPLATES.get(template, template)
    out = []
    for s in ifd_scores(model, tokenizer, instructions, responses, template=template, batch_size=batch_size,
                        max_length=max_length):
        v = s.ifd
        out.append(float(v) if v is not None and math.isfinite(v) and s.n_tokens > 0 else float("nan"))
    return out


# -- step 4: selection (pure) ----------------------------------------------------------------------

def keep_count(n_eligible: int, ratio: float, rounding: str = "floor") -> int:
    """How many of a cluster's eligible records to keep. floor = the official int(n * ratio)."""
    x = n_eligible * ratio
    # 0.4 * 10 is 4.000000000000001 in floats: snap near-integers before rounding up/down
    if abs(x - round(x)) < 1e-9:
        x = float(round(x))
    if rounding == "ceil":
        k = math.ceil(x)
    elif rounding == "round":
        k = int(math.floor(x + 0.5))
    else:
        k = math.floor(x)
    return max(0, min(n_eligible, k))


@dataclass
class Selection:
    indices: list[int]  # kept records, ascending (input order)
    stats: dict[str, Any]
    reasons: list[str] = field(default_factory=list)  # per record: kept | ifd_ge_1 | failed | not_selected


def is_failed_score(v: float | None) -> bool:
    return v is None or not math.isfinite(v)


def select_top_per_cluster(ifd: Sequence[float | None], labels: Sequence[int], ratio: float,
                           rounding: str = "floor", size: int | None = None) -> Selection:
    """Per cluster: drop failed and IFD >= 1, keep the top `ratio` by IFD (ties: input order).

    `size` (one cluster only): keep exactly that many of the eligible records instead of a ratio.
    """
    n = len(ifd)
    if len(labels) != n:
        raise ValueError(f"{n} IFD scores but {len(labels)} cluster labels")
    if size is not None and len(set(int(x) for x in labels)) > 1:
        raise ValueError("an exact size only applies to a single cluster")
    reasons = ["not_selected"] * n
    members: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        members.setdefault(int(c), []).append(i)
    per_cluster = []
    kept: list[int] = []
    for c in sorted(members):
        idx = members[c]
        failed = [i for i in idx if is_failed_score(ifd[i])]
        too_high = [i for i in idx if not is_failed_score(ifd[i]) and ifd[i] >= 1.0]  # type: ignore[operator]
        for i in failed:
            reasons[i] = "failed"
        for i in too_high:
            reasons[i] = "ifd_ge_1"
        eligible = [i for i in idx if reasons[i] == "not_selected"]
        eligible.sort(key=lambda i: (-float(ifd[i]), i))  # type: ignore[arg-type]
        k = min(size, len(eligible)) if size is not None else keep_count(len(eligible), ratio, rounding)
        chosen = eligible[:k]
        for i in chosen:
            reasons[i] = "kept"
        kept += chosen
        per_cluster.append({
            "cluster": c, "size": len(idx), "dropped_failed": len(failed), "dropped_ifd_ge_1": len(too_high),
            "eligible": len(eligible), "kept": len(chosen), "not_selected": len(eligible) - len(chosen),
            "ifd_threshold": float(ifd[chosen[-1]]) if chosen else None,  # type: ignore[arg-type]
        })
    stats = {
        "n_input": n, "kept": len(kept),
        "dropped_failed": sum(p["dropped_failed"] for p in per_cluster),
        "dropped_ifd_ge_1": sum(p["dropped_ifd_ge_1"] for p in per_cluster),
        "not_selected": sum(p["not_selected"] for p in per_cluster),
        "ratio": ratio, "rounding": rounding, "size": size, "per_cluster": per_cluster,
    }
    return Selection(sorted(kept), stats, reasons)


def select_random(n: int, ratio: float, seed: int = 42, size: int | None = None,
                  rounding: str = "floor") -> Selection:
    """`size` (or ratio of n, rounded) records uniformly at random, seeded; no scores needed."""
    k = min(n, size) if size is not None else keep_count(n, ratio, rounding)
    rng = np.random.default_rng(seed)
    chosen = sorted(int(i) for i in rng.choice(n, size=k, replace=False)) if k else []
    reasons = ["not_selected"] * n
    for i in chosen:
        reasons[i] = "kept"
    stats = {"n_input": n, "kept": k, "dropped_failed": 0, "dropped_ifd_ge_1": 0, "not_selected": n - k,
             "ratio": ratio, "rounding": rounding, "size": size, "per_cluster": []}
    return Selection(chosen, stats, reasons)


def select_records(data: InstructionData, config: CDASConfig, model: Any = None, tokenizer: Any = None,
           model_name: str = "") -> SelectionResult:
    """Run CDAS (or a baseline) over checked records. `model`/`tokenizer`: the model to be tuned
    (not needed for random)."""
    config.validate()
    n = len(data.records)
    embeddings = None
    ifd: list[float] | None = None
    labels: list[int] | None = None
    clustering = None
    if config.method == "random":
        sel = select_random(n, config.ratio, config.seed, config.size, config.rounding)
    else:
        if model is None or tokenizer is None:
            raise ValueError(f"method {config.method} needs the model to be tuned (for IFD)")
        pairs = data.pairs(tokenizer)
        if config.method == "cdas":
            embeddings = embed_texts([p.query for p in pairs], model_name=config.embedder)
            clustering = cluster_embeddings(embeddings, config.clusters, config.seed, config.n_init)
            labels = [int(x) for x in clustering.labels]
        ifd = score_ifd(model, tokenizer, [p.instruction for p in pairs], [p.response for p in pairs],
                        config.template_text, config.batch_size, config.max_length)
        sel = select_top_per_cluster(ifd, labels if labels is not None else [0] * n, config.ratio,
                                     config.rounding, config.size)
    stats = {"method": config.method, **{k: v for k, v in sel.stats.items() if k != "per_cluster"},
             "kept_fraction": sel.stats["kept"] / n if n else 0.0,
             "instruction_field": data.instruction_field, "response_field": data.response_field,
             "pair": data.pair_source, "source": data.source, "model": model_name or None}
    if config.method == "cdas":
        assert clustering is not None
        stats.update(k_requested=clustering.k_requested, k_used=clustering.k_used,
                     k_clamped=clustering.k_used < clustering.k_requested, k_note=clustering.note,
                     embedder=config.embedder, seed=config.seed, n_init=config.n_init)
    elif config.method == "random":
        stats.update(seed=config.seed)
    if ifd is not None:
        finite = [v for v in ifd if not is_failed_score(v)]
        stats.update(template=config.template_text, ifd_median=float(np.median(finite)) if finite else None,
                     ifd_median_kept=float(np.median([ifd[i] for i in sel.indices])) if sel.indices else None)
    stats["per_cluster"] = sel.stats["per_cluster"]
    out = []
    for i in sel.indices:
        rec = dict(data.records[i])
        rec["ifd"] = ifd[i] if ifd is not None else None
        rec["cluster"] = labels[i] if labels is not None else (0 if ifd is not None else None)
        out.append(rec)
    return SelectionResult(out, stats, ifd, labels, sel.reasons, embeddings)


def describe(stats: dict[str, Any]) -> str:
    """One line: kept / input and why the rest went."""
    s = (f"{stats['method']}: kept {stats['kept']}/{stats['n_input']} ({100 * stats['kept_fraction']:.1f}%)"
         f", dropped IFD>=1 {stats['dropped_ifd_ge_1']}, failed {stats['dropped_failed']}")
    if stats.get("k_used") is not None:
        s += f", K={stats['k_used']}" + (f" (clamped from {stats['k_requested']})" if stats.get("k_clamped") else "")
    return s
