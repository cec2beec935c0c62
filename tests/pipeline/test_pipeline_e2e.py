"""A whole small recipe end-to-end with a tiny model, killed in the middle and resumed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codeloop.pipeline.report_check import BROWSERS
from codeloop.records import Problem, read_jsonl, write_jsonl
from codeloop.training import last_complete_checkpoint


def _problems(path: Path) -> Path:
    # The tiny random model writes noise; a short comment continuation passes when it stays on one
    # line and fails when it spills into code, so best-of-N gives both verdicts and real pairs.
    # About 1 in 5 of its 16-token samples break the line (measured over seeds), so 8 samples per
    # problem give a mixed problem ~83% of the time and six problems practically never give no pair;
    # with 4 x 6 tokens (~8% breaks) a change of sampling kernel could leave no pair at all.
    probs = [Problem(task_id=f"tiny/{i}", prompt=f"def f{i}():\n    return {i}\n\n# note{i}:", entry_point=f"f{i}",
                     test=f"def check(candidate):\n    assert candidate() == {i}\n", description=f"return {i}",
                     canonical_solution=" ok\n", meta={"split": "train"}) for i in range(6)]
    write_jsonl(path, probs)
    return path


def _recipe(tmp_path: Path, model_dir: Path) -> Path:
    probs = _problems(tmp_path / "problems.jsonl")
    text = f"""
name: tiny
model: {model_dir}
seed: 0
note: "a smoke run"
vars: {{probs: "jsonl:{probs}"}}
stages:
  - {{name: eval_before, type: eval, benchmark: "${{probs}}", max_new_tokens: 6}}
  - {{name: pairs, type: pairs, problems: "${{probs}}", split: null, n: 8, temperature: 1.0, max_new_tokens: 16,
     chosen_rule: passed, timeout_s: 5}}
  - {{name: curriculum, type: curriculum, input: pairs}}
  - {{name: dpo, type: train_dpo, input: curriculum, curriculum: true, max_steps: 4, save_steps: 1,
     batch_size: 1, max_length: 64, learning_rate: 1.0e-3}}
  - {{name: eval_after, type: eval, benchmark: "${{probs}}", max_new_tokens: 6, adapter_from: dpo}}
"""
    p = tmp_path / "tiny.yaml"
    p.write_text(text)
    return p


def _cmd(recipe: Path, runs: Path) -> list[str]:
    return [sys.executable, "-m", "codeloop", "run", str(recipe), "--runs-dir", str(runs)]


@pytest.mark.slow
def test_recipe_end_to_end_with_kill_and_resume(tmp_path, tiny_model_dir):
    recipe, runs = _recipe(tmp_path, tiny_model_dir), tmp_path / "runs"
    env = {**os.environ, "CODELOOP_QUIET": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cmd(recipe, runs), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.time() + 120
    ckpt_seen = False
    while time.time() < deadline and proc.poll() is None:  # kill once training has saved a checkpoint
        if last_complete_checkpoint(runs / "tiny" / "dpo" / "checkpoints") is not None:
            ckpt_seen = True
            break
        time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    first = proc.communicate()[0]
    assert ckpt_seen, f"exit {proc.returncode} before a checkpoint was seen:\n{first}"
    assert (runs / "tiny" / "pairs" / "_DONE").exists() and not (runs / "tiny" / "dpo" / "_DONE").exists()
    pairs = read_jsonl(runs / "tiny" / "curriculum" / "pairs.jsonl")
    assert pairs, "the tiny recipe must produce real pairs"

    out = subprocess.run(_cmd(recipe, runs), env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    log = out.stdout + out.stderr
    lines = {name: [ln for ln in log.splitlines() if f"] {name} (" in ln] for name in
             ("eval_before", "pairs", "curriculum", "dpo", "eval_after")}
    for done_before in ("eval_before", "pairs", "curriculum"):
        assert "skipped" in lines[done_before][0], log
    assert "resuming" in lines["dpo"][0] and "skipped" not in lines["eval_after"][0], log
    summary = json.loads((runs / "tiny" / "dpo" / "metrics.json").read_text())
    assert summary["resumed_from_step"] >= 1 and summary["steps"] == 4
    for stage in ("eval_before", "pairs", "curriculum", "dpo", "eval_after"):
        assert (runs / "tiny" / stage / "_DONE").exists()
    html = (runs / "tiny" / "report.html").read_text()
    assert "pass@1" in html and (runs / "tiny" / "report.md").exists()
    assert _assert_images_render(html) >= 3  # pass@k chart, training curves, sample scores (+ distances)
    if any(shutil.which(b) for b in BROWSERS):  # CI installs chromium; test_report_check covers the rest
        checked = subprocess.run([sys.executable, "-m", "codeloop", "report", "tiny", "--runs-dir", str(runs),
                                  "--check"], env=env, capture_output=True, text=True, timeout=300)
        said = checked.stdout + checked.stderr
        assert checked.returncode == 0 and "figures render in headless Chromium" in said, said
    assert "Headline" in html  # eval_after is compared with eval_before
    last = [ln for ln in log.splitlines() if "stages run" in ln][-1]  # the closing summary line
    assert "vs eval_before" in last and "[" in last and last.rstrip().endswith("a smoke run")
    assert (runs / "tiny" / "dpo" / "final").is_dir()


def _assert_images_render(html: str) -> int:
    """Every <img> is an inline PNG that decodes to a real picture (what a browser needs to show it)."""
    import base64
    import io
    import re

    import matplotlib.image as mpimg

    srcs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = mpimg.imread(io.BytesIO(data), format="png")
        assert pixels.shape[0] > 50 and pixels.shape[1] > 50
    return len(srcs)
