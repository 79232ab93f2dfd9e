"""benchmarks/bench_synthetic.py end to end on a few users: the figures of BENCHMARKS.md's
"Synthetic data realism" come from it, so it must keep running as the package changes."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_synthetic.py"


def test_the_realism_benchmark_runs_on_a_few_users(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_synthetic", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "results.json"
    bench.main(
        ["--users", "150", "--speed-users", "50", "--out", str(out), "--work", str(tmp_path)]
    )
    results = json.loads(out.read_text())["this"]
    for category in ("office", "clothing"):
        measured = results["categories"][category]
        assert measured["users"] == 150 and measured["items"] > 10
        assert all(0 <= value <= 1 for value in measured["recall@10"].values())
    assert "Recall@10 transition" in capsys.readouterr().out
