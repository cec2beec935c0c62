"""LintSeq throughput: codeloop vs the official implementation (pylintseq), same programs, same s.

    .venv/bin/python benchmarks/lintseq.py --limit 40 -s 5 --workers 2 \\
        --official /work/.mirror/upiterbarg+pylintseq/repo --official-python /tmp/official-venv/bin/python

--official PATH: a checkout (work tree) of upiterbarg/pylintseq, kept outside this repository (its
`src/` is put on sys.path of the official run only; nothing of it is part of codeloop). --official-python: an interpreter with pylintseq's dependencies and pylint pinned
as upstream (pylint==3.2.6 astroid==3.2.4 numpy pandas jsonlines tqdm joblib psutil). Without
--official the comparison is skipped and only codeloop's figures are printed.

Both outputs are checked by the same checker (`check_sequence`): every hunk an insertion, every
state before the full program lint-clean under the official verdicts (codeloop's linter, which is
pylint with the official flags), and the edits rebuild the program (compared after strip(), since
the official diffs strip each state).

Programs: HumanEval prompt + canonical solution (first --limit), plus MBPP reference code when
../shared/data/mbpp.jsonl exists (--mbpp N).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from codeloop.linting import LintConfig  # noqa: E402
from codeloop.methods.lintseq import (  # noqa: E402
    LintSeqOptions, canonical_program, linter_for, lintseq_records, parse_hunks)


def load_programs(limit: int, mbpp: int) -> list[dict]:
    from codeloop.problems import load_problems

    programs = [{"task_id": p.task_id, "code": canonical_program(p.prompt + p.canonical_solution)}
                for p in load_problems("humaneval", limit=limit)]
    mbpp_path = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp.jsonl"
    if mbpp and mbpp_path.exists():
        with open(mbpp_path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()][:mbpp]
        programs += [{"task_id": f"mbpp/{r.get('task_id')}", "code": canonical_program(r["code"])}
                     for r in rows]
    return programs


def check_sequence(program: str, edits: list[str]) -> str | None:
    """None when valid, else the first problem (the one checker both implementations face)."""
    linter = linter_for(LintConfig(indent_string="    "))
    lines: list[str] = []
    for k, diff in enumerate(edits):
        hunks, malformed = parse_hunks(diff, strict=False)
        if malformed or not hunks:
            return f"edit {k}: malformed"
        for h in hunks:
            if h.removed:
                return f"edit {k}: deletes lines"
            pos = h.new_start - 1
            if not 0 <= pos <= len(lines):
                return f"edit {k}: position out of range"
            lines[pos:pos] = h.added
        if k < len(edits) - 1 and not linter.is_clean("\n".join(lines)):
            return f"state after edit {k} is not lint-clean"
    if "\n".join(lines).strip() != program.strip():
        return "does not rebuild the program"
    return None


_OFFICIAL_DRIVER = """
import sys, time
sys.path.insert(0, {src!r})
sys.argv = ["pylintseq", "-p", {data!r}, "-d", {dest!r}, "-s", {s!r}, "-c", {workers!r},
            "--code_data_field", "code", "--prompt_data_field", "None", "--seed", {seed!r}]
from pylintseq.generate import generate
if __name__ == "__main__":
    t = time.perf_counter()
    generate()
    print("OFFICIAL_SECONDS", time.perf_counter() - t)
"""


def run_official(path: str, python: str, programs: list[dict], s: int, workers: int,
                 seed: int) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory(prefix="lintseq-official-") as tmp:
        data = os.path.join(tmp, "programs.jsonl")
        with open(data, "w", encoding="utf-8") as fh:
            for p in programs:
                fh.write(json.dumps({"code": p["code"]}) + "\n")
        dest = os.path.join(tmp, "out")
        driver = os.path.join(tmp, "driver.py")
        with open(driver, "w", encoding="utf-8") as fh:
            fh.write(_OFFICIAL_DRIVER.format(src=os.path.join(path, "src"), data=data, dest=dest,
                                             s=str(s), workers=str(workers), seed=str(seed)))
        started = time.perf_counter()
        proc = subprocess.run([python, driver], cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"official run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        outputs = []
        for name in os.listdir(dest):
            with open(os.path.join(dest, name), encoding="utf-8") as fh:
                outputs += [json.loads(line) for line in fh if line.strip()]
    return wall, outputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=40, help="HumanEval programs")
    ap.add_argument("--mbpp", type=int, default=0, help="MBPP programs (when shared data exists)")
    ap.add_argument("-s", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--official", default=None, help="checkout of upiterbarg/pylintseq")
    ap.add_argument("--official-python", default=sys.executable)
    args = ap.parse_args()

    programs = load_programs(args.limit, args.mbpp)
    print(f"{len(programs)} programs, s={args.s}, workers={args.workers} "
          f"(shared 2-core machine: other jobs may be running)")

    started = time.perf_counter()
    ours, stats = lintseq_records(programs, field="code", s=args.s, seed=args.seed,
                                  workers=args.workers, options=LintSeqOptions(indent="official"))
    ours_wall = time.perf_counter() - started
    ours_bad = sum(check_sequence(r["code"], r["edits"]) is not None for r in ours)
    print(f"codeloop : {len(ours)} sequences in {ours_wall:.2f} s = {len(ours) / ours_wall:.2f} seq/s; "
          f"checker: {len(ours) - ours_bad} valid, {ours_bad} invalid; rejected {stats.rejected}; "
          f"lint {stats.lint}")

    if not args.official:
        print("official : skipped (pass --official PATH to a pylintseq checkout, and "
              "--official-python with pylint pinned as upstream)")
        return
    wall, outputs = run_official(args.official, args.official_python, programs, args.s,
                                 args.workers, args.seed)
    # The official output has the program in source_code and the diffs in edit_path.
    bad, reasons = 0, {}
    for rec in outputs:
        problem = check_sequence(rec["source_code"], rec["edit_path"])
        if problem is not None:
            bad += 1
            key = problem.split(": ", 1)[-1]
            reasons[key] = reasons.get(key, 0) + 1
    print(f"official : {len(outputs)} sequences in {wall:.2f} s = {len(outputs) / wall:.2f} seq/s; "
          f"checker: {len(outputs) - bad} valid, {bad} invalid {reasons}")
    speedup = (len(ours) / ours_wall) / (len(outputs) / wall) if outputs else float("nan")
    valid_speedup = ((len(ours) - ours_bad) / ours_wall) / ((len(outputs) - bad) / wall) \
        if len(outputs) > bad else float("inf")
    print(f"speed-up (sequences/s, codeloop / official): {speedup:.1f}x; "
          f"valid sequences/s: {valid_speedup:.1f}x")


if __name__ == "__main__":
    main()
