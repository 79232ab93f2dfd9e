"""`regen dataset generate` end to end: raw Amazon files -> LLM (fake OpenAI server) -> build."""

import json
import socket
import subprocess
import sys
import time

import datasets
import pytest

from tests.conftest import SAMPLES
from tests.regen_dataset.inpaint.fake_servers import FakeGemini, FakeOpenAI
from tests.regen_dataset.inpaint.scripted import scripted_answer
from training.cli import main


def _raw_amazon_files(tmp_path, users: int = 12):
    """The first users of the synthetic office sample, as raw Amazon 2018 review and meta lines."""
    reviews, meta = [], {}
    with open(SAMPLES / "office_synthetic.jsonl") as handle:
        for line, _ in zip(handle, range(users), strict=False):
            user = json.loads(line)
            for entry in user["purchase_history"]:
                item, review = entry["item"], entry["review"]
                reviews.append(
                    {
                        "reviewerID": user["reviewer_id"],
                        "asin": item["asin"],
                        "overall": float(review["rating"]),
                        "summary": review["summary"],
                        "reviewText": review["text"],
                        "unixReviewTime": review["timestamp"],
                        "verified": True,
                    }
                )
                meta[item["asin"]] = {
                    "asin": item["asin"],
                    "title": item["title"],
                    "category": item["category"].split(" - "),
                    "description": [item["description"]],
                    "price": f"${item['price']:.2f}" if item["price"] else "",
                }
    review_path, meta_path = (
        tmp_path / "Office_Products.json",
        tmp_path / "meta_Office_Products.json",
    )
    review_path.write_text("".join(json.dumps(r) + "\n" for r in reviews))
    meta_path.write_text("".join(json.dumps(m) + "\n" for m in meta.values()))
    return review_path, meta_path


def _every_score_two(prompt: str) -> str:
    """The scripted answers, except that a rater gives 2 to every attribute, and refuses to rate
    endorsements."""
    if "Rate it:" in prompt:
        return "I refuse to rate endorsements."
    answer = json.loads(scripted_answer(prompt))
    return json.dumps(dict.fromkeys(answer, 2) if "confidence" in answer else answer)


def test_generate_then_build(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    reviews, meta = _raw_amazon_files(tmp_path)
    out = tmp_path / "office.jsonl"
    with FakeOpenAI(scripted_answer) as server:
        command = [
            "dataset", "generate", "--reviews", str(reviews), "--meta", str(meta),
            "--backend", "openai", "--base-url", server.base_url, "--out", str(out),
            "--concurrency", "4", "--ensemble", "2", "--chunk-users", "5",
        ]  # fmt: skip
        main(command)
        printed = capsys.readouterr().out
        first_calls = len(server.calls())
        assert "12 users" in printed and f"wrote 12 users to {out}" in printed
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        manifest = json.loads((tmp_path / "office.jsonl.manifest.json").read_text())
        # A second run with the same cache pays for nothing and writes the same file.
        main(command)
        assert len(server.calls()) == first_calls
        assert [json.loads(line) for line in out.read_text().splitlines()] == lines
        llm = ["--backend", "openai", "--base-url", server.base_url, "--ensemble", "2"]
        rated = tmp_path / "rated.jsonl"
        with FakeOpenAI(_every_score_two) as rater_server:  # another rater: its own scores
            rerate = ["--backend", "openai", "--base-url", rater_server.base_url]
            main(["dataset", "rate", "--data", str(out), "--out", str(rated), *rerate])
        before = [user["metadata"] for user in lines]
        after = [json.loads(line)["metadata"] for line in rated.read_text().splitlines()]
        assert any(s != 2 for m in before for g in m.values() if g for s in g.values())
        for old, new in zip(before, after, strict=True):  # endorsements: the old scores go
            assert old["endorsement"] and new["endorsement"] is None
            rated_before = {g for g, s in old.items() if s and g != "endorsement"}
            assert {g for g, s in new.items() if s} == rated_before
            assert all(s == 2 for g in new.values() if g for s in g.values())
        bias = tmp_path / "bias.json"
        main(
            [
                "dataset",
                "bias-check",
                "--data",
                str(out),
                "--out",
                str(bias),
                "--samples",
                "5",
                *llm,
            ]
        )
        assert "| real | 100% | 0% | 100% | 5 |" in capsys.readouterr().out
        assert json.loads(bias.read_text())["history_swapped"]["rated"] == 5
    # per user at least: narratives, endorsement, and one rating request for each of 3 groups
    assert first_calls >= 12 * 5 and "sk-test-not-a-secret" not in out.read_text()
    assert manifest["backend"] == {
        "name": "openai",
        "model": "gpt-4o-mini",
        "base_url": server.base_url,
        "batch": False,
        "thinking_budget": None,
    }
    assert (manifest["source"]["category"], manifest["source"]["max_users"]) == ("office", None)
    assert "asking for 2 candidates (`n`)" in manifest["rater_sampling"]
    assert (
        manifest["prompts"]["version"] and manifest["source"]["preprocessing"]["users_kept"] == 12
    )
    assert any(e["critique"] != "<NO_CRITIQUE>" for u in lines for e in u["purchase_history"])
    assert all(u["last_purchase"]["endorsement"].startswith("You will love") for u in lines)
    assert all(
        set(u["metadata"]) >= {"user", "last_purchase", "endorsement", "example"} for u in lines
    )

    main(["dataset", "build", "--source", f"office={out}", "--out", str(tmp_path / "regen")])
    office = datasets.load_dataset(str(tmp_path / "regen"), "office", cache_dir=str(tmp_path / "c"))
    assert office["test"].num_rows == 12
    assert office["test"][0]["narratives"]["user_profile"] == "Organised office worker"


def test_max_users_counts_the_items_of_the_users_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    reviews, meta = _raw_amazon_files(tmp_path, users=3)
    out = tmp_path / "office.jsonl"
    with FakeOpenAI(scripted_answer) as server:
        main([*_generate(reviews, meta, out, server.base_url), "--no-rate", "--max-users", "1"])
    (line,) = [json.loads(line) for line in out.read_text().splitlines()]
    items = len({entry["item"]["asin"] for entry in line["purchase_history"]})
    manifest = json.loads((tmp_path / "office.jsonl.manifest.json").read_text())
    preprocessing = manifest["source"]["preprocessing"]
    assert preprocessing["items_kept"] == items > 0
    assert manifest["source"]["max_users"] == preprocessing["max_users"] == 1
    assert (preprocessing["users_read"], preprocessing["users_over_max_users"]) == (3, 2)
    assert f"kept 1 users, {len(line['purchase_history'])} interactions, {items} items" in (
        capsys.readouterr().out
    )


# -- a remote service that fails: one line, no traceback, no key, no wasted retries -------------


def _generate(reviews, meta, out, base_url, backend="openai"):
    return [
        "dataset", "generate", "--reviews", str(reviews), "--meta", str(meta),
        "--backend", backend, "--base-url", base_url, "--out", str(out), "--ensemble", "1", "--concurrency", "1",
    ]  # fmt: skip


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "Traceback" not in printed
    errors = [line for line in captured.err.splitlines() if line.startswith("regen: error:")]
    assert len(errors) == 1, captured.err
    return errors[0]


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_a_rejected_key_is_one_line_without_the_key(tmp_path, monkeypatch, capsys, backend):
    wrong = (
        "sk-wrong-key-that-the-server-echoes" if backend == "openai" else "AIza-wrong-echoed-key"
    )
    variable = "OPENAI_API_KEY" if backend == "openai" else "GEMINI_API_KEY"
    monkeypatch.setenv(variable, wrong)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    reviews, meta = _raw_amazon_files(tmp_path, users=3)
    out = tmp_path / "office.jsonl"
    server_type = FakeOpenAI if backend == "openai" else FakeGemini
    with server_type(api_key="the-right-key") as server:
        url = server.base_url
        with pytest.raises(SystemExit) as stopped:
            main(_generate(reviews, meta, out, url, backend))
        assert len(server.calls()) == 1  # refused keys are not retried
    assert stopped.value.code == 1
    line = _one_error_line(capsys)
    assert wrong not in line and "<redacted>" in line
    assert ("HTTP 401" if backend == "openai" else "HTTP 400") in line
    assert variable in line  # what to check
    # Nothing half-written is left beside the output; the cache stays for a resume.
    assert sorted(p.name for p in tmp_path.glob("office.jsonl*")) == ["office.jsonl.cache.sqlite"]


def test_an_unreachable_server_is_one_line_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    reviews, meta = _raw_amazon_files(tmp_path, users=3)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    started = time.perf_counter()
    with pytest.raises(SystemExit):
        main(_generate(reviews, meta, tmp_path / "office.jsonl", url))
    assert time.perf_counter() - started < 5  # no backoff against a refused loopback port
    line = _one_error_line(capsys)
    assert "connection refused" in line and url in line and "--base-url" in line
    assert "sk-test-not-a-secret" not in line


# -- a run that fails, resumed: nothing half-written left, the manifest pays for every call ----


def test_resumed_run_manifest_counts_every_paid_call(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    reviews, meta = _raw_amazon_files(tmp_path, users=4)
    price = ["--price", "2", "8"]
    with FakeOpenAI(scripted_answer) as server:  # one run, never interrupted
        main([*_generate(reviews, meta, tmp_path / "whole.jsonl", server.base_url), *price])
        whole = json.loads((tmp_path / "whole.jsonl.manifest.json").read_text())["usage"]
    assert whole["output"]["calls"] == whole["this_process"]["calls"] == server.completed

    out = tmp_path / "office.jsonl"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    leftover = tmp_path / f"office.partial-{int(dead.stdout)}.jsonl"  # of a killed writer
    leftover.write_text("half a line")
    answered = 0

    def fails_midway(prompt: str) -> str:
        nonlocal answered
        answered += 1
        if answered == 15:
            server.fail_all = "400"  # the next requests are refused: the run stops
        return scripted_answer(prompt)

    with FakeOpenAI(fails_midway) as server:
        with pytest.raises(SystemExit):
            main([*_generate(reviews, meta, out, server.base_url), *price])
        assert not out.exists() and not leftover.exists()
        server.fail_all = None
        main([*_generate(reviews, meta, out, server.base_url), *price])
    usage = json.loads((tmp_path / "office.jsonl.manifest.json").read_text())["usage"]
    assert usage["this_process"]["calls"] == server.completed - 15
    assert usage["output"] == {
        **whole["output"],
        "cost_usd": pytest.approx(whole["output"]["cost_usd"]),
    }
    assert usage["output"]["cost_usd"] > 0
    assert sorted(p.name for p in tmp_path.glob("office*")) == [
        "office.jsonl", "office.jsonl.cache.sqlite", "office.jsonl.manifest.json"
    ]  # fmt: skip


def test_a_missing_sdk_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-test-not-a-secret")
    monkeypatch.setitem(sys.modules, "google.generativeai", None)  # as if not installed
    reviews, meta = _raw_amazon_files(tmp_path, users=2)
    url = "http://127.0.0.1:9"
    with pytest.raises(SystemExit):
        main(_generate(reviews, meta, tmp_path / "office.jsonl", url, backend="gemini-legacy"))
    assert "the gemini-legacy backend cannot start" in _one_error_line(capsys)


# -- arguments refused at once -------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("--chunk-users", "0"),
        ("--max-users", "0"),
        ("--ensemble", "0"),
        ("--ensemble", "-2"),
        ("--concurrency", "0"),
        ("--timeout", "0"),
        ("--timeout", "-1"),
    ],
)
def test_counts_below_one_are_refused_at_parsing(tmp_path, capsys, option, value):
    reviews, meta = tmp_path / "r.json", tmp_path / "m.json"
    with pytest.raises(SystemExit) as stopped:
        main(
            [
                *_generate(reviews, meta, tmp_path / "o.jsonl", "http://127.0.0.1:9/v1"),
                option,
                value,
            ]
        )
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}: must be" in error and value in error


def test_a_base_url_without_a_scheme_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    reviews, meta = _raw_amazon_files(tmp_path, users=2)
    with pytest.raises(SystemExit):
        main(_generate(reviews, meta, tmp_path / "office.jsonl", "127.0.0.1:8000/v1"))
    assert "needs a scheme: http://127.0.0.1:8000/v1" in _one_error_line(capsys)


def test_batch_against_a_server_without_a_batch_api_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    reviews, meta = _raw_amazon_files(tmp_path, users=2)
    with FakeOpenAI(scripted_answer, batch_api=False) as server:
        with pytest.raises(SystemExit):
            main([*_generate(reviews, meta, tmp_path / "o.jsonl", server.base_url), "--batch"])
    assert "the server has no batch API: run without --batch" in _one_error_line(capsys)


def test_timeout_is_the_one_given(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    reviews, meta = _raw_amazon_files(tmp_path, users=1)
    out = tmp_path / "office.jsonl"
    with FakeOpenAI(scripted_answer, slow_seconds=1.0) as server:
        server.push_faults("slow")  # 1 s: too slow for --timeout 0.3, the call is retried
        command = [*_generate(reviews, meta, out, server.base_url), "--no-rate"]
        main([*command, "--timeout", "0.3"])
    usage = json.loads((tmp_path / "office.jsonl.manifest.json").read_text())["usage"]
    assert usage["this_process"]["retries"] == 1


# -- answers that are no answers, and invalid answers in the cache -------------------------------


@pytest.fixture
def no_backoff(monkeypatch):
    from regen_dataset.inpaint.runner import Runner

    monkeypatch.setattr(Runner, "_backoff", lambda self, attempt, retry_after: 0.0)


@pytest.mark.parametrize("fault", ["no-choices", "html"])
def test_rating_with_200_answers_that_hold_none_is_one_line(
    tmp_path, monkeypatch, capsys, no_backoff, fault
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    data = tmp_path / "office.jsonl"
    data.write_text((SAMPLES / "office_synthetic.jsonl").read_text().splitlines()[0] + "\n")
    with FakeOpenAI(scripted_answer) as server:
        server.fail_all = fault
        llm = ["--backend", "openai", "--base-url", server.base_url, "--ensemble", "3"]
        with pytest.raises(SystemExit):
            main(["dataset", "rate", "--data", str(data), "--out", str(tmp_path / "r.jsonl"), *llm])
        assert len(server.calls()) == 6  # retried like a 5xx
    line = _one_error_line(capsys)
    assert f"gave up after 6 attempts: openai model 'gpt-4o-mini' at {server.base_url}" in line
    assert "HTTP 200" in line
    assert ("model is overloaded" if fault == "no-choices" else "the body is not JSON") in line


def test_a_line_without_purchase_history_names_file_line_and_field(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    first = (SAMPLES / "office_synthetic.jsonl").read_text().splitlines()[0]
    data = tmp_path / "office.jsonl"
    data.write_text(first + "\n" + json.dumps({"reviewer_id": "U2"}) + "\n")
    with pytest.raises(SystemExit):
        main(["dataset", "rate", "--data", str(data), "--out", str(tmp_path / "r.jsonl"),
              "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"])  # fmt: skip
    assert f"{data}, line 2, field purchase_history: " in _one_error_line(capsys)


def test_retry_invalid_asks_again_for_cached_invalid_answers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    reviews, meta = _raw_amazon_files(tmp_path, users=2)
    out = tmp_path / "office.jsonl"
    cut_off = True

    def answer(prompt: str) -> str:  # endorsements cut off at the token limit, for now
        text = scripted_answer(prompt)
        return text[:20] if cut_off and "RECOMMENDED ITEM" in prompt else text

    with FakeOpenAI(answer) as server:
        command = [*_generate(reviews, meta, out, server.base_url), "--no-rate"]
        main(command)
        assert "endorsement 2" in capsys.readouterr().out
        cut_off = False
        calls = len(server.calls())
        main(command)  # the default: every cached answer reused, for free
        assert "endorsement 2" in capsys.readouterr().out and len(server.calls()) == calls
        main([*command, "--retry-invalid"])
        printed = capsys.readouterr().out
        assert len(server.calls()) == calls + 2
    assert "endorsement" not in printed and "2 cached invalid asked again" in printed
    usage = json.loads((tmp_path / "office.jsonl.manifest.json").read_text())["usage"]
    assert usage["this_process"]["asked_again"] == 2
    assert all(json.loads(line)["last_purchase"]["endorsement"] for line in out.open())


def test_the_thinking_budget_reaches_gemini_and_the_manifest(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-test-not-a-secret")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    reviews, meta = _raw_amazon_files(tmp_path, users=3)
    out = tmp_path / "office.jsonl"
    with FakeGemini(api_key="gemini-test-not-a-secret") as server:
        main(_generate(reviews, meta, out, server.base_url, backend="gemini")
             + ["--model", "gemini-2.5-flash", "--thinking-budget", "64"])  # fmt: skip
        configs = [call.json()["generationConfig"] for call in server.called("POST", "generate")]
    budgets = {
        value for config in configs for key, value in config["thinkingConfig"].items()
    }  # protobuf JSON takes either spelling of the key
    assert budgets == {64}
    manifest = json.loads((tmp_path / "office.jsonl.manifest.json").read_text())
    assert manifest["backend"]["thinking_budget"] == 64
    with pytest.raises(SystemExit):
        main(_generate(reviews, meta, out, server.base_url) + ["--thinking-budget", "lots"])
    assert "expected auto, model, -1 or a number of tokens" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["rate", "bias-check"])
def test_a_missing_data_file_is_named_and_leaves_no_cache(tmp_path, capsys, command):
    out = tmp_path / ("r.jsonl" if command == "rate" else "b.json")
    with pytest.raises(SystemExit):
        main(["dataset", command, "--data", str(tmp_path / "nope.jsonl"), "--backend", "local",
              "--out", str(out)])  # fmt: skip
    assert f"--data {tmp_path / 'nope.jsonl'}: no such file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_reviews_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["dataset", "generate", "--reviews", str(tmp_path / "r.json.gz"), "--meta",
              str(tmp_path / "m.json.gz"), "--backend", "local", "--out", str(tmp_path / "g.jsonl")])  # fmt: skip
    assert "r.json.gz: no such reviews file" in capsys.readouterr().err
