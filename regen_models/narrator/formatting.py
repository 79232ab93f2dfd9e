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
        ids.append(end_of_turn_id(tokenizer))
    return sorted({i for i in ids if i is not None})


END_OF_TURN_MARKER = "Narrative ends here."


def end_of_turn_id(tokenizer) -> int | None:
    """The special token that the chat template closes the model's turn with (Gemma's
    `<end_of_turn>`, ChatML's `<|im_end|>`, Llama 3's `<|eot_id|>`), or None where what follows
    the model's text is no special token.

    A narrator learns to write this token after a narrative (TRL renders the completion with the
    template), so generation stops there rather than at `max_new_tokens`.
    """
    conversation = messages("Write.") + [{"role": "assistant", "content": END_OF_TURN_MARKER}]
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    _, found, after = text.partition(END_OF_TURN_MARKER)
    ids = tokenizer(after.lstrip(), add_special_tokens=False)["input_ids"] if found else []
    if not ids:
        return None
    added = tokenizer.added_tokens_decoder.get(ids[0])
    return ids[0] if added is not None and added.special else None
