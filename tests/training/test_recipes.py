"""Every shipped recipe parses with its training script's own parser: a key that a script does
not know is an error there, so a recipe that drifts from its script fails here first."""

import re
from pathlib import Path

import pytest
import yaml

from training import train_flare, train_fusion, train_lumen, train_narrator

RECIPES = Path(__file__).resolve().parents[2] / "training" / "recipes"
SCRIPTS = {
    "flare": train_flare,
    "fusion": train_fusion,
    "lumen": train_lumen,
    "narrator": train_narrator,
}


@pytest.mark.parametrize(
    "recipe", sorted(RECIPES.glob("*/*.yaml")), ids=lambda path: f"{path.parent.name}/{path.name}"
)
def test_the_recipe_parses_with_its_script(recipe, tmp_path):
    script = SCRIPTS[recipe.parent.name]
    argv = ["--config", str(recipe), "--dataset_name", "data", "--output_dir", str(tmp_path)]
    # The paper recipes train in bf16 on GPUs; this machine has none.
    parsed = script.make_parser().parse_args_and_config([*argv, "--use_cpu", "true"])
    training_args = parsed[-1]
    assert training_args.output_dir == str(tmp_path)
    # Every key takes effect: none is parsed and then dropped (an alias overridden by a default).
    for key, value in yaml.safe_load(recipe.read_text()).items():
        holders = [arguments for arguments in parsed if hasattr(arguments, key)]
        assert holders, key
        assert all(getattr(arguments, key) == value for arguments in holders), key


def test_every_script_has_the_three_recipes():
    for name in SCRIPTS:
        assert {"tiny", "cpu", "paper"} <= {path.stem for path in (RECIPES / name).glob("*.yaml")}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_key_the_script_does_not_know_names_the_recipe(name, tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text((RECIPES / name / "tiny.yaml").read_text() + "lerning_rate: 0.1\nzzz: 1\n")
    argv = ["--config", str(recipe), "--dataset_name", "data", "--output_dir", str(tmp_path)]
    expected = f"{recipe}: no argument is called lerning_rate (did you mean learning_rate?), zzz"
    with pytest.raises(ValueError, match=re.escape(expected)):
        SCRIPTS[name].make_parser().parse_args_and_config(argv)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_help_names_the_command_and_the_recipes(name, monkeypatch, capsys):
    from training import cli

    monkeypatch.setattr("sys.argv", ["regen", "train", name, "--help"])
    with pytest.raises(SystemExit):
        cli.main(["train", name, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert shown.startswith(f"usage: regen train {name} ")
    recipes = ", ".join(sorted(path.stem for path in (RECIPES / name).glob("*.yaml")))
    assert "--config RECIPE reads the arguments from a YAML recipe" in shown and recipes in shown


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_shipped_recipe_is_also_taken_by_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where no file is called "tiny"
    argv = ["--dataset_name", "data", "--output_dir", str(tmp_path), "--use_cpu", "true"]
    parser = SCRIPTS[name].make_parser()
    by_path = parser.parse_args_and_config(["--config", str(RECIPES / name / "tiny.yaml"), *argv])
    by_name = SCRIPTS[name].make_parser().parse_args_and_config(["--config", "tiny", *argv])
    assert by_name == by_path
    by_file_name = (
        SCRIPTS[name].make_parser().parse_args_and_config(["--config", "tiny.yaml", *argv])
    )
    assert by_file_name == by_path
    with pytest.raises(FileNotFoundError, match="--config tny: no such recipe file .* tiny"):
        SCRIPTS[name].make_parser().parse_args_and_config(["--config", "tny", *argv])


def test_the_fusion_ablation_takes_a_shipped_recipe_by_name_too(monkeypatch, tmp_path):
    from training.arguments import recipe_file

    monkeypatch.chdir(tmp_path)
    assert recipe_file("fusion", "tiny") == str(RECIPES / "fusion" / "tiny.yaml")
    assert recipe_file("fusion", "cpu.yaml") == str(RECIPES / "fusion" / "cpu.yaml")
    (tmp_path / "mine.yaml").write_text("learning_rate: 0.1\n")
    assert recipe_file("fusion", "mine.yaml") == "mine.yaml"
    with pytest.raises(FileNotFoundError, match="--recipe tny: no such recipe file .* tiny"):
        recipe_file("fusion", "tny")


@pytest.mark.parametrize("name", ["fusion", "lumen", "narrator"])
@pytest.mark.parametrize(
    "option, refusal",
    [
        (["--max_length", "64"], "--max_length is refused: TRL would cut the completions"),
        (["--packing", "true"], "--packing is not supported"),
    ],
)
def test_trl_options_that_would_cut_or_join_examples_are_refused(name, option, refusal, tmp_path):
    argv = ["--config", "tiny", "--dataset_name", str(tmp_path), "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match=re.escape(refusal)):
        SCRIPTS[name].run([*argv, *option])


@pytest.mark.parametrize("name", ["flare", "lumen"])
def test_without_evaluations_the_last_weights_are_kept_without_early_stopping(name, tmp_path):
    from training.arguments import early_stopping

    argv = ["--config", "tiny", "--dataset_name", "data", "--output_dir", str(tmp_path)]
    validated = SCRIPTS[name].make_parser().parse_args_and_config(argv)[-1]
    assert validated.load_best_model_at_end and len(early_stopping(validated, 2)) == 1
    argv += ["--eval_strategy", "no"]
    unvalidated = SCRIPTS[name].make_parser().parse_args_and_config(argv)[-1]
    assert not unvalidated.load_best_model_at_end and early_stopping(unvalidated, 2) == []


@pytest.mark.parametrize("name", sorted(SCRIPTS))
@pytest.mark.parametrize("option", ["dataset_streaming", "ignore_bias_buffers"])
def test_trl_script_options_the_scripts_do_not_act_on_are_refused(name, option, tmp_path):
    argv = ["--config", "tiny", "--dataset_name", str(tmp_path), "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match=f"--{option} is not supported"):
        SCRIPTS[name].run([*argv, f"--{option}", "true"])
