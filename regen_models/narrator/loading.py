"""The base LM, optionally 4-bit (QLoRA), and its LoRA adapter: new for training, saved for use.

An adapter records the base model it was trained on by the name it was asked for: `"embedded"`
for the embedded Gemma (never the machine-local folder it is cached in), a Hub id as it is, a
local folder as its absolute path. Loading it onto another base is an error that says which.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Sequence

from regen_models import base
from regen_models.narrator.configuration_narrator import NarratorConfig, base_signature
from regen_models.vocabulary_io import local_snapshot


class BaseModelMismatchError(ValueError):
    """An adapter asked onto a base model other than the one it was trained on."""


def base_model_name(name_or_path: str) -> str:
    """The name an adapter records for its base: stable across machines where it can be."""
    if name_or_path == base.EMBEDDED:
        return base.EMBEDDED
    if os.path.exists(name_or_path):
        return os.path.realpath(name_or_path)
    return name_or_path


def four_bit_problem() -> str | None:
    """Why bitsandbytes cannot load a model in 4 bits here, or None where it can."""
    import importlib.util

    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed (pip install bitsandbytes)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible, and bitsandbytes' 4-bit layers need one"
    return None


def load_base(name_or_path: str = base.EMBEDDED, *, load_in_4bit: bool = False, dtype=None):
    """(model, tokenizer): the base LM in float32 (or `dtype`), or 4-bit NF4 for QLoRA."""
    if not load_in_4bit:
        return base.load_causal_lm(name_or_path, dtype=dtype)
    problem = four_bit_problem()
    if problem:
        raise RuntimeError(f"cannot load {name_or_path} in 4 bits: {problem}")
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = dtype or torch.bfloat16
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    model = AutoModelForCausalLM.from_pretrained(
        base.resolve(name_or_path), quantization_config=quantization, dtype=compute
    )
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model), base.load_tokenizer(name_or_path)


def add_lora(
    model,
    base_name: str,
    *,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: Sequence[str] | str = "all-linear",
):
    """`model` wrapped in a new, trainable LoRA adapter that records `base_name`."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        task_type="CAUSAL_LM",
    )
    with _without_peft_deprecation_notice():
        peft_model = get_peft_model(model, config)
    # peft would record the folder the weights came from (for "embedded", a cache path).
    peft_model.peft_config["default"].base_model_name_or_path = base_model_name(base_name)
    # The narrator never resizes the vocabulary, so an adapter needs no copy of the embedding
    # matrices. Left to decide ("auto"), peft looks the recorded base up on the Hub at every save.
    peft_model.save_pretrained = functools.partial(
        peft_model.save_pretrained, save_embedding_layers=False
    )
    return peft_model


def recorded_base(adapter_dir: str | os.PathLike) -> str:
    from peft import PeftConfig

    return PeftConfig.from_pretrained(os.fspath(adapter_dir)).base_model_name_or_path


def base_to_load(adapter_dir, recorded: str, asked: str | None) -> str:
    """The base to load the adapter onto: the one it records, or, where that was a local folder
    that is no longer there, the folder `asked` names (its moved copy; the shape is checked
    after loading)."""
    moved = os.path.isabs(recorded) and not os.path.exists(recorded)
    if asked is None:
        if moved:
            raise FileNotFoundError(
                f"the narrator adapter {adapter_dir} was trained on the base model in the local "
                f"folder {recorded}, which is not there any more: name the base's new folder "
                "(`base=` in Python, `--base_model` on the command line)"
            )
        return recorded
    if base_model_name(asked) == recorded:
        return recorded
    if moved and os.path.isdir(asked):
        return os.path.realpath(asked)
    raise BaseModelMismatchError(
        f"the narrator adapter {adapter_dir} was trained on the base model {recorded!r}, not "
        f"{asked!r}: load it onto that base (leave the base out, or name it: `base=` in Python, "
        "`--base_model` on the command line), or train an adapter on this one"
    )


def load_adapter(adapter_dir: str | os.PathLike, base_name: str | None = None, *, dtype=None):
    """(peft model in eval mode, tokenizer, NarratorConfig) from an adapter folder.

    `base_name` None loads the base the adapter records; any other name must be that one, or the
    new place of a recorded local folder that has moved.
    """
    from peft import PeftModel

    adapter_dir = local_snapshot(adapter_dir, "narrator adapter folder")
    settings = NarratorConfig.load(adapter_dir)
    base_path = base_to_load(adapter_dir, recorded_base(adapter_dir), base_name)
    model, _ = base.load_causal_lm(base_path, dtype=dtype)
    found = base_signature(model.config)
    if found != settings.base_signature:
        raise BaseModelMismatchError(
            f"the base model {base_path!r} is not the one the adapter {adapter_dir} was trained "
            f"on: its shape is {found}, the adapter's base had {settings.base_signature}"
        )
    with _without_peft_deprecation_notice():
        model = PeftModel.from_pretrained(model, os.fspath(adapter_dir)).eval()
    has_tokenizer = os.path.exists(os.path.join(adapter_dir, "tokenizer_config.json"))
    tokenizer = base.load_tokenizer(os.fspath(adapter_dir) if has_tokenizer else base_path)
    return model, tokenizer, settings


@contextlib.contextmanager
def _without_peft_deprecation_notice():
    """peft reads `is_gradient_checkpointing`, which transformers 5 renamed, and each wrap
    prints a FutureWarning that the user can do nothing about."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield
