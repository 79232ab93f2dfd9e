import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, SAMPLES, user, write_lines
from training.cli import main


def test_build_and_report(tmp_path, capsys):
    out = tmp_path / "regen"
    main(
        ["dataset", "build", "--source", str(SAMPLES / "office_synthetic.jsonl"), "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert "office: train 300, validation 300, test 300" in printed
    assert f'load_dataset("{out}", "office")' in printed
    plot = tmp_path / "report.png"
    main(["dataset", "report", "--folder", str(out), "--plot", str(plot)])
    printed = capsys.readouterr().out
    assert "office: 300 users" in printed and "office_no_critique: 300 users" in printed
    assert plot.stat().st_size > 10_000


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    source = write_lines(tmp_path / "office.jsonl", [user("U1", 5), user("U2", 5), "{oops"])
    out = tmp_path / "regen"
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", "build", "--source", str(source), "--out", str(out)])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert f"regen: error: {source}, line 3, field <json>: malformed JSON" in error
    assert not out.exists()
    main(["dataset", "build", "--source", str(source), "--out", str(out), "--skip-bad-lines"])
    assert "skipped 1 bad lines" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["dataset", "build", "--source", str(source), "--out", str(out)])
    assert "exists" in capsys.readouterr().err


def test_synthesize(tmp_path, capsys):
    out = tmp_path / "clothing_synthetic.jsonl"
    main(["dataset", "synthesize", "--category", "clothing", "--users", "20", "--out", str(out)])
    assert len(out.read_text().splitlines()) == 20
    assert "SYNTHETIC" in capsys.readouterr().out
    for bad in ("0", "-5"):  # 0 used to write the paper's 89,489 users, -5 an empty file
        with pytest.raises(SystemExit):
            main(["dataset", "synthesize", "--category", "office", "--users", bad, "--out",
                  str(tmp_path / "bad.jsonl")])  # fmt: skip
        assert "--users" in capsys.readouterr().err and not (tmp_path / "bad.jsonl").exists()


@pytest.mark.smoke
@pytest.mark.usefixtures("alone_among_gemma_checkpoint_writers")
def test_demo_runs_from_the_console_script(tmp_path):
    regen = os.path.join(os.path.dirname(sys.executable), "regen")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        # The language models on 2 users after 2 training steps, narratives of at most 8
        # tokens: the code path, in less time.
        [
            regen,
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--text-users",
            "2",
            "--lm-max-steps",
            "2",
            "--max-new-tokens",
            "8",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "clothing: 300 users" in result.stdout and "office: 300 users" in result.stdout
    assert "SYNTHETIC" in result.stdout
    assert (tmp_path / "demo" / "regen_report.png").exists()
    assert (tmp_path / "demo" / "regen" / "data" / "office_no_critique").is_dir()
    assert "Scored on the first 2 of" in result.stdout
    assert "Purchase reason: hybrid" in result.stdout and "Purchase reason: lumen" in result.stdout
    text = json.loads((tmp_path / "demo" / "eval-text" / "results.json").read_text())
    assert {(r["model"], r["config"]) for r in text["runs"]} >= {
        (model, config)
        for model in ("hybrid", "lumen")
        for config in ("office", "office_no_critique")
    }


def test_train_help_lists_the_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    assert "{flare,fusion,lumen,narrator}" in capsys.readouterr().out


def test_help_lists_every_command_and_a_command_loads_its_own_module_only(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "{dataset,train,predict,eval,demo,space,release}" in capsys.readouterr().out
    # In a fresh interpreter (this one has imported everything): `regen dataset ...` starts
    # without torch, transformers or TRL, which take seconds to import.
    # The overview (`regen --help`) imports no command's module.
    for argv in (["dataset", "report"], []):
        code = (
            f"import sys; from training.cli import make_parser; make_parser({argv}); "
            "print([m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules])"
        )
        loaded = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        )
        assert loaded.stdout.strip() == "[]", argv


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--frist", "20", "--run", "m", "office", "p.jsonl"], "--frist (did you mean --first?)"),
        (
            ["--datset", "regen", "--run", "m", "office", "p.jsonl"],
            "--datset (did you mean --dataset?)",
        ),
    ],
)
def test_a_misspelled_eval_option_is_named(argv, named, capsys):
    with pytest.raises(SystemExit):
        main(["eval", *argv])
    error = capsys.readouterr().err
    assert f"unrecognized arguments: {named}" in error and "invalid choice" not in error


@pytest.mark.parametrize(
    "argv, usage, named",
    [
        (
            ["predict", "--model", "m", "--dataset_name", "d", "--out", "p", "--limt", "3"],
            "usage: regen predict",
            "--limt (did you mean --limit?)",
        ),
        (
            ["dataset", "build", "--source", "s", "--out", "o", "--overwite"],
            "usage: regen dataset build",
            "--overwite (did you mean --overwrite?)",
        ),
    ],
)
def test_a_misspelled_option_is_named_under_its_commands_usage(argv, usage, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(usage) and f"unrecognized arguments: {named}" in error


def test_an_unreachable_hub_is_one_line(monkeypatch, capsys):
    import httpx2

    from regen_dataset import export

    def refused(*args, **kwargs):
        raise httpx2.ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr(export, "push_folder", refused)
    with pytest.raises(SystemExit):
        main(["dataset", "push", "--repo-id", "org/x"])
    error = capsys.readouterr().err
    assert "the Hub could not be reached" in error and "Connection refused" in error


@pytest.mark.parametrize("name", ["demo_out/nope", "nope"])
def test_a_mistyped_dataset_folder_is_named_as_one(name, tmp_path, monkeypatch, capsys):
    """datasets tries a missing folder as a Hub id and reports only the Hub (offline here)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit):
        main(["eval", "baselines", "--dataset", name, "--config", "office", "--out", "preds"])
    error = capsys.readouterr().err
    assert error.startswith(f"regen: error: there is no local folder {name}, and as a Hub id:")
    (tmp_path / name).mkdir(parents=True)  # a folder there: datasets' own error, untouched
    with pytest.raises(SystemExit):
        main(["eval", "baselines", "--dataset", name, "--config", "office", "--out", "preds"])
    assert "there is no local folder" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, named",
    [
        (["predcit", "--model", "x", "--out", "p.jsonl"], "invalid choice: 'predcit'"),
        (["dataset", "biuld", "--source", "x", "--out", "y"], "invalid choice: 'biuld'"),
    ],
)
def test_a_misspelled_subcommand_is_named_with_the_choices(argv, named, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    error = capsys.readouterr().err
    assert named in error and "(choose from" in error and "unrecognized" not in error


def test_table_options_before_an_eval_subcommand_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--dataset", "elsewhere", "baselines", "--config", "office"])
    error = capsys.readouterr().err
    assert "--dataset before `baselines`: of the table, not of `baselines`; give --dataset" in error
    with pytest.raises(SystemExit):  # an option the subcommand has not: not said to move it
        main(["eval", "--first", "0", "baselines", "--config", "office"])
    assert "`baselines` has no such option" in capsys.readouterr().err


def test_demo_counts_are_checked_before_anything_trains(capsys):
    for option in ("--text-users", "--lm-max-steps"):
        with pytest.raises(SystemExit):
            main(["demo", option, "0"])
        assert f"argument {option}: expected a positive count, got 0" in capsys.readouterr().err
