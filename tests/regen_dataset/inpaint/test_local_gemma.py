import pytest

from regen_dataset.inpaint.backends import make_backend
from regen_dataset.inpaint.runner import LLMRequest, Runner


@pytest.mark.smoke
def test_local_backend_runs_on_the_embedded_gemma(tmp_path):
    backend = make_backend("local")
    assert backend.model == "embedded"
    runner = Runner(backend, tmp_path / "cache.sqlite", progress=False)
    request = LLMRequest(
        "Name one colour of ink for a pen.",
        system="Answer in a few words.",
        temperature=0.0,
        max_output_tokens=12,
        json_output=False,
    )
    (answer,) = runner.run([request], lambda text: text)
    assert isinstance(answer, str) and answer.strip()
    assert runner.usage.calls == 1 and 0 < runner.usage.output_tokens <= 12
    assert runner.usage.input_tokens > 10
    (again,) = Runner(backend, tmp_path / "cache.sqlite", progress=False).run([request], str)
    assert again == answer  # served from the cache
