"""How a history prompt reaches the LM: as one user turn of the tokenizer's chat template where
it has one, else as plain text. Training and generation both go through here, so the model
writes from exactly the context it was trained on."""

from __future__ import annotations

from regen_models.prompts import TokenCounter


def uses_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def plain_prompt(prompt: str) -> str:
    # The completion follows on a new line; TRL adds the end-of-sequence token after it.
    return prompt + "\n"


def training_example(tokenizer, prompt: str, completion: str) -> dict:
    """A TRL prompt-completion example: conversational where the tokenizer has a template."""
    if uses_chat_template(tokenizer):
        return {
            "prompt": messages(prompt),
            "completion": [{"role": "assistant", "content": completion}],
        }
    return {"prompt": plain_prompt(prompt), "completion": completion}


def generation_text(tokenizer, prompt: str) -> str:
    """The text the model continues: the prompt and the opening of the model's turn."""
    if uses_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            messages(prompt), add_generation_prompt=True, tokenize=False
        )
    return plain_prompt(prompt)


def encode_for_generation(tokenizer, prompt: str) -> list[int]:
    text = generation_text(tokenizer, prompt)
    # A chat template writes its own begin-of-sequence token.
    add_special = not uses_chat_template(tokenizer)
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def prompt_token_counter(tokenizer) -> TokenCounter:
    """Tokens the model reads for a prompt text, chat template included."""
    return lambda prompt: len(encode_for_generation(tokenizer, prompt))


def completion_token_counter(tokenizer) -> TokenCounter:
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """End-of-sequence ids: the model's own, the tokenizer's and a chat turn's end where known."""
    ids: list[int] = []
    configured = getattr(generation_config, "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured]
    ids.append(tokenizer.eos_token_id)
    if uses_chat_template(tokenizer):
        end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
            ids.append(end_of_turn)
    return sorted({i for i in ids if i is not None})
