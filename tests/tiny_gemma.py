"""A tiny random Gemma 3 and a byte-level BPE tokenizer with Gemma's chat template, built
in-process and saved as a base-model folder, for tests of the LM-based models."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SAMPLES

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def sample_texts() -> list[str]:
    """Every string of the shipped office sample: what the tokenizer learns its merges from."""
    texts: list[str] = []

    def collect(value) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for inner in value.values():
                collect(inner)
        elif isinstance(value, list):
            for inner in value:
                collect(inner)

    with open(SAMPLES / "office_synthetic.jsonl", encoding="utf-8") as handle:
        for line in handle:
            collect(json.loads(line))
    return texts


def tiny_tokenizer(vocab_size: int = 1500):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from regen_models.base import GEMMA_CHAT_TEMPLATE

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(sample_texts(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    return tokenizer


def tiny_sizes(tokenizer) -> dict:
    """The config fields the tiny Gemmas share: a few layers of width 32, the tokenizer's ids."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "sliding_window": 256,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }


def tiny_gemma(tokenizer, seed: int = 0):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        **tiny_sizes(tokenizer), max_position_embeddings=4096, initializer_range=0.5
    )
    model = Gemma3ForCausalLM(config)
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
    return model


def tiny_gemma2(tokenizer, seed: int = 0):
    """A tiny random Gemma 2 (the papers' LM family): its soft-capped attention has no sdpa, so
    transformers gives it eager attention."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(seed)
    return Gemma2ForCausalLM(Gemma2Config(**tiny_sizes(tokenizer)))


def save_tiny_gemma(folder: Path, seed: int = 0) -> Path:
    """A base-model folder (weights, config, tokenizer) that `--base_model FOLDER` loads."""
    tokenizer = tiny_tokenizer()
    tiny_gemma(tokenizer, seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
