import inspect
import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import evaluate
import pytest
import yaml

import regen_dataset
from regen_models import metrics
from regen_models.regen_metric import regen_metric
from tests.conftest import REPO, WordCountEncoder
from tests.isolated_venv import NOT_IMPORTABLE_CHECK, isolated_env, make_isolated_venv

MODULE = str(REPO / "regen_models" / "regen_metric")
RANKED = [["B1", "B2", "B3"], ["B4", "B5", "B6"], ["B7", "B8", "B9"]]
TARGETS = ["B2", "B0", "B9"]
PREDICTIONS = ["A sturdy stapler for your desk.", "Navy running shoes that fit well.", ""]
REFERENCES = ["This stapler is a sturdy pick.", "Running shoes in navy, true to size.", "Any text."]


def test_text_config_matches_the_harness():
    module = evaluate.load(MODULE, "text")
    encoder = WordCountEncoder()
    result = module.compute(predictions=PREDICTIONS, references=REFERENCES, encoder=encoder)
    assert result == pytest.approx(
        metrics.text_metrics(PREDICTIONS, REFERENCES, WordCountEncoder())
    )
    assert set(result) == {"BLEU", "ROUGE", "SemSim"}


def test_ranking_config():
    module = evaluate.load(MODULE, "ranking")
    one_cutoff = module.compute(predictions=[["B1", "B2"]], references=["B2"], ks=2)
    assert one_cutoff["Recall@2"] == 1
    result = module.compute(
        predictions=[["B1", "B2", "B3"], ["B4", "B5", "B6"]], references=["B2", "B9"], ks=[1, 3]
    )
    assert result == pytest.approx(
        {
            "Recall@1": 0,
            "HitRate@1": 0,
            "NDCG@1": 0,
            "MRR@1": 0,
            "Recall@3": 0.5,
            "HitRate@3": 0.5,
            "NDCG@3": 0.5 * 0.6309297535714575,
            "MRR@3": 0.25,
        }
    )


def test_unknown_config():
    with pytest.raises(ValueError, match="config must be one of"):
        evaluate.load(MODULE, "bleu")


def test_the_citation_is_the_datasets():
    assert regen_metric.CITATION == regen_dataset.CITATION
    assert regen_metric.HOMEPAGE == regen_dataset.HOMEPAGE


# Runs in a fresh environment where only third-party packages exist; prints the module's results.
_STANDALONE = (
    NOT_IMPORTABLE_CHECK
    + "import json, sys\n"
    + "import evaluate\n"
    + "ENCODER\n"
    + "folder, ranked, targets, predictions, references = json.loads(sys.argv[1])\n"
    + "ranking = evaluate.load(folder, 'ranking').compute(\n"
    + "    predictions=ranked, references=targets, ks=[1, 2, 10])\n"
    + "text = evaluate.load(folder, 'text').compute(\n"
    + "    predictions=predictions, references=references, encoder=WordCountEncoder())\n"
    + "print(json.dumps({'ranking': ranking, 'text': text}))\n"
)


def test_the_module_runs_outside_the_repository_with_only_its_folder(tmp_path):
    """The folder alone, copied out of the repository, in an environment where neither
    `regen_dataset` nor `regen_models` can be imported, computes what `regen eval` computes."""
    folder = tmp_path / "elsewhere" / "regen_metric"
    shutil.copytree(MODULE, folder, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    python = make_isolated_venv(tmp_path / "venv")
    script = _STANDALONE.replace("ENCODER", inspect.getsource(WordCountEncoder))
    payload = json.dumps([str(folder), RANKED, TARGETS, PREDICTIONS, REFERENCES])
    result = subprocess.run(
        [str(python), "-I", "-c", script, payload],
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    standalone = json.loads(result.stdout.strip().splitlines()[-1])
    ranks = metrics.ranks_from_lists(RANKED, TARGETS)
    assert standalone["ranking"] == pytest.approx(metrics.ranking_metrics(ranks, ks=(1, 2, 10)))
    assert standalone["ranking"]["MRR@10"] == pytest.approx((1 / 2 + 1 / 3) / 3)
    assert standalone["text"] == pytest.approx(
        metrics.text_metrics(PREDICTIONS, REFERENCES, WordCountEncoder())
    )


SPACE = "test-org/regen_metric"  # evaluate fetches `<name>.py` from a Space named like the folder


class _SpaceFiles(BaseHTTPRequestHandler):
    """A Hub on 127.0.0.1 that serves the files of one Space at its `main` revision."""

    folder: Path
    served: list[str]

    def do_GET(self) -> None:
        prefix = f"/spaces/{SPACE}/resolve/main/"
        name = self.path.split("?")[0].removeprefix(prefix)
        path = self.folder / name
        if not self.path.startswith(prefix) or "/" in name or not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        self.served.append(name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hash(data)}"')
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)

    do_HEAD = do_GET

    def log_message(self, format, *args) -> None:
        pass


def test_the_module_loads_from_a_hub_space_with_its_definitions(tmp_path):
    """`evaluate.load("ORG/regen_metric")` fetches regen_metric.py, finds the relative import and
    fetches metric_definitions.py beside it: the Space needs nothing else."""
    handler = type("Handler", (_SpaceFiles,), {"folder": Path(MODULE), "served": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        python = make_isolated_venv(tmp_path / "venv")
        script = _STANDALONE.replace("ENCODER", inspect.getsource(WordCountEncoder))
        payload = json.dumps([SPACE, RANKED, TARGETS, PREDICTIONS, REFERENCES])
        env = isolated_env(
            tmp_path,
            HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
            HF_HUB_OFFLINE="0",
            HF_UPDATE_DOWNLOAD_COUNTS="0",
            NO_PROXY="127.0.0.1",
        )
        result = subprocess.run(
            [str(python), "-I", "-c", script, payload],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"regen_metric.py", "metric_definitions.py"} <= set(handler.served)
    from_hub = json.loads(result.stdout.strip().splitlines()[-1])
    ranks = metrics.ranks_from_lists(RANKED, TARGETS)
    assert from_hub["ranking"] == pytest.approx(metrics.ranking_metrics(ranks, ks=(1, 2, 10)))


def test_the_metric_space_app_builds_its_page_and_scores(tmp_path, monkeypatch):
    """The Space's app.py on current Gradio (evaluate's own widget needs Gradio 3's
    components), from a copy of the folder as the Hub holds it."""
    import importlib.util

    import gradio as gr

    folder = tmp_path / "regen_metric"
    shutil.copytree(MODULE, folder, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("metric_space_app", folder / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert isinstance(app.build(), gr.Blocks)
    ranked = "\n".join(", ".join(items) for items in RANKED)
    scores = app.score_ranking(ranked, "\n".join(TARGETS), 2)
    ranks = metrics.ranks_from_lists(RANKED, TARGETS)
    assert scores == pytest.approx(metrics.ranking_metrics(ranks, ks=(2,)))
    with pytest.raises(gr.Error, match="3 prediction lines and 2 reference lines"):
        app.score_ranking(ranked, "B2\nB0", 10)
    text = app.score_text("A sturdy stapler.\nNavy shoes.", "A sturdy stapler.\nRed shoes.")
    assert set(text) == {"BLEU", "ROUGE", "SemSim"} and 0 < text["ROUGE"] < 100
    header = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert header["sdk_version"] == gr.__version__


def test_inputs_the_prediction_files_refuse_are_refused_here_too():
    ranking = evaluate.load(MODULE, "ranking")
    with pytest.raises(ValueError, match=r"predictions\[0\]: item 'B2' is ranked twice"):
        ranking.compute(predictions=[["B1", "B2", "B2"]], references=["B2"])
    with pytest.raises(ValueError, match=r"references\[1\]: no held-out item"):
        ranking.compute(predictions=[["B1"], ["B2"]], references=["B1", ""])
    with pytest.raises(ValueError, match="cut-offs must be positive integers"):
        ranking.compute(predictions=[["B1"]], references=["B1"], ks=[])
    assert set(ranking.compute(predictions=[["B1"]], references=["B1"], ks=[10.0])) == {
        "Recall@10", "HitRate@10", "NDCG@10", "MRR@10"
    }  # fmt: skip
    text = evaluate.load(MODULE, "text")
    with pytest.raises(ValueError, match=r"references\[1\] is blank"):
        text.compute(predictions=["a", "b"], references=["a", "  "], encoder=WordCountEncoder())
