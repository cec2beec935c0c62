"""Reading the results of an earlier evaluation (a run folder or a results file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeloop.errors import UserError
from codeloop.rundir import StageDir
from codeloop.records import number_samples, read_records_numbered, records_format


def load_eval_results(path: str | Path) -> list[dict[str, Any]]:
    """Results of an eval folder (OUT/results stage) or a results file (JSONL, Parquet, a datasets
    folder); each needs task_id, status."""
    p = Path(path)
    if p.is_dir() and records_format(p) != "dataset":
        stage_dir = p / "results" if (p / "results").is_dir() else p
        rows = StageDir(stage_dir).records()
        if not rows:
            raise UserError("no results found (expected an eval output folder or a results JSONL)", str(p))
        for i, r in enumerate(rows, 1):
            for fld in ("task_id", "status"):
                if fld not in r:
                    raise UserError(f"record {i} has no '{fld}' field", str(stage_dir))
        return rows
    lines = read_records_numbered(p)
    # the keys of a results file: missing sample_ids numbered per task, a repeated pair refused
    number_samples(lines, p)
    for lineno, r in lines:
        if r.get("status") is None:
            raise UserError("missing required field 'status'", f"{p}:{lineno}")
    return [r for _, r in lines]
