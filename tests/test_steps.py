"""Steps: one declaration per unit of work, and the CLI, recipes and registry built from it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from codeloop.cli import app, main
from codeloop.commands import steps as step_commands
from codeloop.errors import UserError
from codeloop.pipeline import registry
from codeloop.pipeline.recipe import load_recipe
from codeloop.pipeline.runner import run_recipe
from codeloop.steps import Step, StepContext, describe, option, undocumented

PROBLEMS = [
    {"task_id": "t/1", "prompt": "def inc(x):\n", "entry_point": "inc", "canonical_solution": "    return x + 1\n",
     "test": "assert inc(1) == 2\n", "description": "Add one."},
    {"task_id": "t/2", "prompt": "def dbl(x):\n", "entry_point": "dbl", "canonical_solution": "    return 2 * x\n",
     "test": "assert dbl(2) == 4\n"},
]


@pytest.fixture
def problems_file(tmp_path):
    p = tmp_path / "probs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in PROBLEMS))
    return p


def _click(path: tuple[str, ...]):
    cmd = typer.main.get_command(app)
    for part in path:
        cmd = cmd.commands[part]
    return cmd


def test_every_step_is_declared_with_help_and_valid_defaults():
    for step in registry.all_steps():
        assert registry.STEPS[step.name].endswith(":" + step.name.upper()), step.name
        assert undocumented(step.config) == [], f"{step.name}: fields without help"
        for row in describe(step.config):
            if row["choices"] and row["default"] not in (None, "(required)"):
                assert row["default"] in row["choices"], (step.name, row["name"])


def test_command_defaults_are_the_declared_defaults():
    """The command line and a recipe stage get each default from the same field: compare them all."""
    for step in registry.all_steps():
        if step.name in step_commands.HAND_WRITTEN:
            continue
        cmd = _click(step_commands.command_path(step.name))
        by_name = {p.name: p for p in cmd.params}
        for f in dataclasses.fields(step.config):
            param = by_name[f.name]
            declared = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            shown = param.default
            if param.multiple:  # a repeatable flag: no click default, the declared one shown
                declared = ",".join(map(str, declared)) if isinstance(declared, list) else str(declared)
                shown = param.show_default
            assert shown == declared, (step.name, f.name, shown, declared)


def test_the_dpo_learning_rate_is_one_default():
    # Before steps, a recipe's DPO stage used 5e-5 and `codeloop train dpo` 5e-6.
    recipe_cfg = registry.get_step("train_dpo").config(input="x")
    assert recipe_cfg.learning_rate == _click(("train", "dpo")).params[
        [p.name for p in _click(("train", "dpo")).params].index("learning_rate")].default
    assert "beta" not in {f.name for f in dataclasses.fields(registry.get_step("train_sft").config)}


def test_recipe_stage_and_command_write_the_same_bytes(tmp_path, problems_file):
    out = tmp_path / "cli"
    assert main(["sft-data", "--problems", f"jsonl:{problems_file}", "--split", "", "--out", str(out)]) == 0
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nstages:\n  - {{name: data, type: sft_data, problems: 'jsonl:{problems_file}', "
                      "split: null}\n")
    run_recipe(load_recipe(recipe), runs_dir=tmp_path / "runs", write_report=False)
    a, b = (out / "sft.jsonl").read_bytes(), (tmp_path / "runs" / "r" / "data" / "sft.jsonl").read_bytes()
    assert a == b and a.count(b"\n") == 2


def test_config_file_and_flags(tmp_path, problems_file):
    settings = tmp_path / "s.yaml"
    settings.write_text(f"problems: 'jsonl:{problems_file}'\nsplit: null\nlimit: 1\n")
    assert main(["sft-data", "--config", str(settings), "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "sft.jsonl").read_text().count("\n") == 1
    # a flag given on the command line wins over the file
    assert main(["sft-data", "--config", str(settings), "--limit", "2", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "sft.jsonl").read_text().count("\n") == 2
    settings.write_text("problemz: easy\n")
    assert main(["sft-data", "--config", str(settings), "--out", str(tmp_path / "c")]) == 2


def test_curriculum_command_keeps_its_old_form(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"task_id": f"t/{i}", "prompt": "p", "chosen": "a", "rejected": "b",
                                         "distance": float(i)}) + "\n" for i in range(20)))
    out = tmp_path / "ordered.jsonl"
    rc = main(["curriculum", str(pairs), "--out", str(out), "--edges", "50,100", "--direction", "small-first",
                "--keep-bottom"])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["order"] for r in rows] == list(range(len(rows)))
    assert rows[0]["bucket"] == 0 and out.with_suffix(".png").exists()
    assert main(["curriculum", str(pairs), "--out", str(out), "--direction", "sideways"]) == 2
    assert "--direction" in capsys.readouterr().err


def test_input_kinds_and_missing_packages_fail_at_load(tmp_path, problems_file, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nstages:\n  - {{name: data, type: sft_data, problems: 'jsonl:{problems_file}'}}\n"
                      "  - {name: dpo, type: train_dpo, input: data}\n")
    with pytest.raises(UserError, match="reads pairs") as err:
        load_recipe(recipe)
    assert err.value.where.endswith("stages.dpo.input")
    needy = dataclasses.replace(registry.get_step("sft_data"), requires=(("codeloop_no_such_pkg", "no-such-pkg"),))
    monkeypatch.setattr(registry, "get_step", lambda name, where="type": needy)
    with pytest.raises(UserError, match="pip install no-such-pkg"):
        load_recipe(recipe)


# -- adding a step: one registry line, and the recipe loader and the CLI have it -----------------

@dataclass
class ExampleConfig:
    word: str = option("hello", help="What to write.")
    times: int = option(2, help="How often.")


def run_example(ctx: StepContext, cfg: ExampleConfig) -> dict:
    (ctx.stage.path / "out.txt").write_text(" ".join([cfg.word] * cfg.times))
    return {"written": cfg.times}


EXAMPLE = Step("example", ExampleConfig, run_example, "write a word a few times", produces=("report",))


def test_a_new_step_is_one_registry_line(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.STEPS, "example", f"{__name__}:EXAMPLE")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nstages:\n  - {name: ex, type: example, times: 3}\n")
    run_recipe(load_recipe(recipe), runs_dir=tmp_path / "runs", write_report=False)
    assert (tmp_path / "runs" / "r" / "ex" / "out.txt").read_text() == "hello hello hello"
    fresh = typer.Typer()
    step_commands.register(fresh)
    res = CliRunner().invoke(fresh, ["example", "--times", "3", "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "out.txt").read_text() == "hello hello hello"
    res = CliRunner().invoke(fresh, ["steps", "show", "example"])
    assert res.exit_code == 0 and "How often." in res.output


def test_steps_list_and_show(capsys):
    assert main(["steps", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in registry.STEPS)
    assert main(["steps", "show", "train_dpo"]) == 0
    out = capsys.readouterr().out
    assert "learning_rate" in out and "5e-06" in out
    assert main(["steps", "show", "trian_dpo"]) == 2


def test_output_file_on_the_command_line_reads_a_file_or_a_folder(tmp_path):
    folder = tmp_path / "step"
    folder.mkdir()
    (folder / "pairs.jsonl").write_text("{}\n")
    ctx = StepContext(run=None, stage=None, name="x")
    assert ctx.output_file(str(folder), "pairs.jsonl") == folder / "pairs.jsonl"
    assert ctx.output_file(str(folder / "pairs.jsonl"), "pairs.jsonl") == folder / "pairs.jsonl"
    with pytest.raises(UserError):
        ctx.output_file(str(tmp_path / "nope"), "pairs.jsonl")
    assert isinstance(Path(folder), Path)


def test_the_readme_lists_every_step():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for step in registry.all_steps():
        assert f"| `{step.name}` / `codeloop {' '.join(step_commands.command_path(step.name))}` |" in readme, step.name


def test_sample_and_execute_are_steps_a_recipe_chains(tmp_path, problems_file, tiny_model_dir):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
name: se
model: {tiny_model_dir}
stages:
  - {{name: draw, type: sample, problems: "jsonl:{problems_file}", n: 2, max_new_tokens: 4, stop: ["\\n\\n", "x,y"]}}
  - {{name: judge, type: execute, problems: "jsonl:{problems_file}", input: draw, timeout_s: 5}}
""")
    result = run_recipe(load_recipe(recipe), tmp_path / "runs", write_report=False)
    root = result.root
    samples = [json.loads(x) for x in (root / "draw" / "samples.jsonl").read_text().splitlines()]
    results = [json.loads(x) for x in (root / "judge" / "results.jsonl").read_text().splitlines()]
    assert [(s["task_id"], s["sample_id"]) for s in samples] == [("t/1", 0), ("t/1", 1), ("t/2", 0), ("t/2", 1)]
    assert [(r["task_id"], r["sample_id"]) for r in results] == [(s["task_id"], s["sample_id"]) for s in samples]
    assert all(r["status"] in ("passed", "failed", "error", "timeout") for r in results)
    # a step that reads a stage by the wrong kind is refused at load
    recipe.write_text(recipe.read_text().replace("input: draw", "input: judge"))
    with pytest.raises(UserError):
        load_recipe(recipe)


def test_list_flags_repeat_and_stop_strings_keep_their_commas(tmp_path, problems_file, tiny_model_dir):
    import yaml

    out = tmp_path / "s.jsonl"
    rc = main(["sample", "-p", f"jsonl:{problems_file}", "-m", str(tiny_model_dir), "--stop", "a,b", "--stop", "\n#",
               "-n", "2", "-t", "0.5", "--max-new-tokens", "2", "--out", str(out)])
    assert rc == 0 and len(out.read_text().splitlines()) == 4
    params = yaml.safe_load((tmp_path / "s.jsonl.steps" / "sample" / "samples" / "config.yaml").read_text())["params"]
    assert params["stop"] == ["a,b", "\n#"] and params["n"] == 2 and params["temperature"] == 0.5


def test_a_command_rerun_on_a_regenerated_input_file_runs_again(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"task_id": f"t/{i}", "prompt": "p", "chosen": "a", "rejected": "b", "distance": float(i)}
            for i in range(10)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ordered"
    assert main(["curriculum", str(pairs), "--out", str(out)]) == 0
    assert main(["curriculum", str(pairs), "--out", str(out)]) == 0
    assert "reused" in capsys.readouterr().err
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    assert main(["curriculum", str(pairs), "--out", str(out)]) == 0
    assert "reused" not in capsys.readouterr().err
    assert len((out / "pairs.jsonl").read_text().splitlines()) < 10


def test_a_list_of_stage_names_is_checked_at_load(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("""
name: refs
stages:
  - {name: pairs, type: pairs, limit: 2}
  - {name: cur, type: curriculum, input: pairs, merge: [pairs, pairz]}
""")
    with pytest.raises(UserError) as err:
        load_recipe(recipe)
    assert err.value.where.endswith("stages.cur.merge") and "pairz" in err.value.message


def test_a_stage_is_keyed_by_every_setting_not_by_how_it_was_written(tmp_path, problems_file, capsys):
    import yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
name: keyed
stages:
  - {{name: data, type: sft_data, problems: "jsonl:{problems_file}", split: null}}
""")
    root = run_recipe(load_recipe(recipe), tmp_path / "runs", write_report=False).root
    saved = yaml.safe_load((root / "data" / "config.yaml").read_text())
    assert saved["settings"]["instruction"] == "auto" and saved["settings"]["format"] == "codeloop"  # defaults too
    # spelling out a default is the same run
    recipe.write_text(recipe.read_text().replace("split: null}", "split: null, instruction: auto}"))
    again = run_recipe(load_recipe(recipe), tmp_path / "runs", write_report=False)
    assert [o.status for o in again.stages] == ["skipped"]
    # a different value is not
    recipe.write_text(recipe.read_text().replace("instruction: auto", "instruction: prompt"))
    third = run_recipe(load_recipe(recipe), tmp_path / "runs", write_report=False)
    assert [o.status for o in third.stages] == ["ran"]


def test_stage_names_inside_report_rows_are_checked_at_load(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("""
name: refs
stages:
  - {name: ev, type: eval, benchmark: easy, limit: 1}
  - {name: table, type: cdas_table, rows: [{label: a, train: ev, eval: {mbpp: ev, plus: evv}}]}
""")
    with pytest.raises(UserError) as err:
        load_recipe(recipe)
    assert err.value.where.endswith("stages.table.rows[0].eval") and "evv" in err.value.message
    recipe.write_text(recipe.read_text().replace(
        "  - {name: table, type: cdas_table, rows: [{label: a, train: ev, eval: {mbpp: ev, plus: evv}}]}",
        "  - {name: rep, type: lintseq_report, evals: [{label: a, eval: ev, train: trainn}]}"))
    with pytest.raises(UserError) as err:
        load_recipe(recipe)
    assert err.value.where.endswith("stages.rep.evals[0].train")


def test_every_switch_of_a_generated_command_turns_both_ways():
    for step in registry.all_steps():
        if step.name in step_commands.HAND_WRITTEN:
            continue
        params = {p.name: p for p in _click(step_commands.command_path(step.name)).params}
        for f in dataclasses.fields(step.config):
            if f.name in params and params[f.name].is_flag:
                assert params[f.name].secondary_opts, (step.name, f.name)  # e.g. --no-default-stops
