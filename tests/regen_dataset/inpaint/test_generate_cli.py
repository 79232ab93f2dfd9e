"""`regen dataset generate` end to end: raw Amazon files -> LLM (fake OpenAI server) -> build."""

import json

import datasets

from tests.conftest import SAMPLES
from tests.regen_dataset.inpaint.fake_servers import FakeOpenAI
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
    review_path, meta_path = tmp_path / "Office_Products.json", tmp_path / "meta_Office_Products.json"
    review_path.write_text("".join(json.dumps(r) + "\n" for r in reviews))
    meta_path.write_text("".join(json.dumps(m) + "\n" for m in meta.values()))
    return review_path, meta_path


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
        main(["dataset", "rate", "--data", str(out), "--out", str(rated), *llm])
        assert [json.loads(line)["metadata"] for line in rated.read_text().splitlines()] == [
            user["metadata"] for user in lines
        ]
        bias = tmp_path / "bias.json"
        main(["dataset", "bias-check", "--data", str(out), "--out", str(bias), "--samples", "5", *llm])
        assert "| real | 100% | 0% | 100% | 5 |" in capsys.readouterr().out
        assert json.loads(bias.read_text())["history_swapped"]["rated"] == 5
    assert first_calls > 12 * 10 and "sk-test-not-a-secret" not in out.read_text()
    assert manifest["backend"] == {"name": "openai", "model": "gpt-4o-mini", "batch": False}
    assert manifest["prompts"]["version"] and manifest["source"]["preprocessing"]["users_kept"] == 12
    assert any(e["critique"] != "<NO_CRITIQUE>" for u in lines for e in u["purchase_history"])
    assert all(u["last_purchase"]["endorsement"].startswith("You will love") for u in lines)
    assert all(set(u["metadata"]) >= {"user", "last_purchase", "endorsement", "example"} for u in lines)

    main(["dataset", "build", "--source", f"office={out}", "--out", str(tmp_path / "regen")])
    office = datasets.load_dataset(str(tmp_path / "regen"), "office", cache_dir=str(tmp_path / "c"))
    assert office["test"].num_rows == 12
    assert office["test"][0]["narratives"]["user_profile"] == "Organised office worker"
