import pytest
import torch

from regen_models import base


@pytest.mark.smoke
def test_embedded_gemma_loads_from_its_cache_and_generates():
    model, tokenizer = base.load_causal_lm("embedded")
    folder = base.embedded_model_path()
    assert (folder / "model.safetensors").exists()  # converted once, then read directly
    assert model.config.model_type == "gemma3_text" and model.config.hidden_size == 640
    assert 260e6 < sum(p.numel() for p in model.parameters()) < 280e6
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
    ]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<bos><start_of_turn>user\nBe brief.\n\nName a colour.<end_of_turn>")
    assert text.endswith("<start_of_turn>model\n")
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    top = tokenizer.convert_ids_to_tokens(logits.topk(5).indices.tolist())
    assert any("Paris" in token for token in top), top


def test_hub_ids_and_paths_pass_through():
    assert base.resolve("google/gemma-2-2b") == "google/gemma-2-2b"
    assert base.resolve("/models/mine") == "/models/mine"
