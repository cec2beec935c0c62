import textwrap

import pytest

from codeloop.cli import main
from codeloop.errors import UserError
from codeloop.pipeline.recipe import load_recipe

RECIPE = textwrap.dedent("""
    name: t
    model: some/model
    vars: {lim: 8}
    stages:
      - {name: base, type: eval, benchmark: easy, limit: "${lim}"}
      - {name: pairs, type: pairs, problems: easy, limit: "${lim}", n: 4}
      - {name: cur, type: curriculum, input: pairs}
      - {name: dpo, type: train_dpo, input: cur, curriculum: true, max_steps: 3}
      - {name: after, type: eval, benchmark: "easy", adapter_from: dpo, limit: "${lim}"}
""")


def write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_load_with_variables_and_overrides(tmp_path):
    r = load_recipe(write(tmp_path, RECIPE), ["stages.pairs.n=8", "vars.lim=3", "model=other"])
    assert r.model == "other"
    assert r.stage("pairs").config.n == 8
    assert r.stage("base").config.limit == 3 and isinstance(r.stage("base").config.limit, int)
    assert r.stage("dpo").config.curriculum is True
    assert [s.name for s in r.stages] == ["base", "pairs", "cur", "dpo", "after"]
    assert r.isolation == "auto" and load_recipe(write(tmp_path, RECIPE), ["isolation=full"]).isolation == "full"


@pytest.mark.parametrize("override,where,msg", [
    (["stages.pairs.nn=3"], "stages.pairs.nn", "did you mean 'n'"),
    (["stages.pairs.n=many"], "stages.pairs.n", "expected int"),
    (["stages.nope.n=3"], "stages.nope.n", "no stage named 'nope'"),
    (["modle=x"], "modle", "did you mean 'model'"),
    (["stages.cur.direction=sideways"], "direction", "large-first"),
    (["stages.dpo.input=later"], "stages.dpo.input", "not an earlier stage"),
    (["isolation=strict"], "isolation", "auto or full"),
])
def test_mistakes_name_the_key_path(tmp_path, override, where, msg):
    with pytest.raises(UserError) as err:
        load_recipe(write(tmp_path, RECIPE), override)
    assert where in str(err.value) and msg in str(err.value)


def test_bad_yaml_and_unknown_type(tmp_path):
    with pytest.raises(UserError, match=r"r.yaml:3: invalid YAML"):
        load_recipe(write(tmp_path, "name: x\nstages: [a\n  b: c\n"))
    with pytest.raises(UserError, match="unknown step 'evl'.*did you mean 'eval'"):
        load_recipe(write(tmp_path, "name: x\nstages:\n  - {name: a, type: evl}\n"))
    with pytest.raises(UserError, match="undefined variable"):
        load_recipe(write(tmp_path, "name: x\nstages:\n  - {name: a, type: eval, limit: '${nope}'}\n"))


def test_cli_exit_code_2_for_a_bad_recipe(tmp_path, capsys):
    p = write(tmp_path, RECIPE)
    assert main(["run", str(p), "stages.pairs.n=x"]) == 2
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err


RECIPES = __import__("pathlib").Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("name", ["demo", "dpo_curriculum", "lintseq", "gift", "codeact"])
def test_shipped_recipes_load(name):
    assert load_recipe(RECIPES / f"{name}.yaml").stages


def test_every_eval_stage_field_reaches_the_eval_harness():
    """An eval stage field the harness does not know would be silently dropped by run_eval."""
    import dataclasses

    from codeloop.evaluation.harness import EvalConfig
    from codeloop.pipeline.stages import EvalStageConfig

    stage_fields = {f.name for f in dataclasses.fields(EvalStageConfig)} - {"adapter_from"}
    assert stage_fields <= set(EvalConfig.__dataclass_fields__)
